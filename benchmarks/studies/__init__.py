"""Studies that fixed a design choice, each kept with its frozen outputs: the decoder study, the probe's defaults, the training schedule."""
