"""Time and memory: the explainer against a FLOP floor, its exactness, the reproduction, explain-split (one process and Beam), photo-sized images."""
