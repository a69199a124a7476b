"""Fig. 6 of the paper: a correctly explained 5.

Command (run by `make reproduce` after training):

    .venv/bin/python -m reproduce.fig6 --run runs/paper --out figures

Run time: about 8 seconds on a 2-core CPU (4 s of it the explanation and plot). Writes figures/fig6.png (the
quadruple: input, reconstruction g(f(x)), input with the mask, the mask) and
figures/fig6.json (test index, classes, distances, J, sigma, s, q, N). The
test image is chosen by the rule in `reproduce/paper.py`'s docstring.
"""

from reproduce._figure import main

if __name__ == "__main__":
    main("fig6", __doc__)
