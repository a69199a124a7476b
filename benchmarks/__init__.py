"""The evaluation harness: benchmarks run as modules, e.g. `python -m benchmarks.evaluate` (shares code with reproduce/ only through siamese_xai)."""
