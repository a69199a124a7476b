"""Judging explanations: the scalars and margins they are scored on and the statistics (`metrics`), removal
curves and ROAD (`faithfulness`), the baselines (`baselines`) and the synthetic sets with known answers
(`synthetic`)."""
