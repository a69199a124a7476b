"""Fig. 8 of the paper: a 2 whose poor reconstruction makes the explanation go wrong.

Command (run by `make reproduce` after training):

    .venv/bin/python -m reproduce.fig8 --run runs/paper --out figures

Run time: about 8 seconds on a 2-core CPU (4 s of it the explanation and plot). Writes figures/fig8.png (the
quadruple: input, reconstruction g(f(x)), input with the mask, the mask) and
figures/fig8.json (test index, classes, distances, J, sigma, s, q, N). The
test image is chosen by the rule in `reproduce/paper.py`'s docstring.
"""

from reproduce._figure import main

if __name__ == "__main__":
    main("fig8", __doc__)
