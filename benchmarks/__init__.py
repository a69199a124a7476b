"""The evaluation harness, run as modules (shares code with reproduce/ only through siamese_xai).

- `benchmarks.evaluation`: how good the explanations are (`python -m benchmarks.evaluation.evaluate`,
  the randomisation check, the pair benchmark);
- `benchmarks.speed`: what they cost in time and memory (`python -m benchmarks.speed.bench_speed`, ...);
- `benchmarks.studies`: one-off studies that fixed a design choice, each beside its frozen outputs.
"""
