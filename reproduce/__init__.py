"""The paper's reproduction: Figs. 4-9 and their claims, the report, the seeds study.

A package of scripts, run from the project root as modules, e.g.
`.venv/bin/python -m reproduce.figures --run runs/paper --out figures` (the
Makefile's `make reproduce` runs them through `siamese_xai.startup`). They share
code with each other as `reproduce.paper`, `reproduce.bands`, ..., and with the
tests and benchmarks through this package; the library (`siamese_xai`) never
imports it.
"""
