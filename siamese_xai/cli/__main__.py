"""`python -m siamese_xai.cli`: the command line."""

import sys

from siamese_xai.cli import main

sys.exit(main())
