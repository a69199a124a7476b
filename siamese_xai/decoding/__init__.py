"""The decoder g as the explainer evaluates it: fused, exact, split at its ReLU kinks, and a float64 twin.

Modules, each importing only those above it (a contract in `.importlinter`):

- `chain`: the layers of a decoder that is a plain chain of Keras layers.
- `fused`: an `UpSampling2D(nearest) -> Conv2D` pair as one convolution on
  the un-upsampled image, and the evaluation steps of a chain with its pairs
  fused.
- `rules`: the exact change act(z + dz) - act(z) of relu, sigmoid and the
  identity, without subtracting nearby numbers.
- `exact`: the change g(h + d) - g(h) carried through the chain layer by
  layer (`ExactChain`).
- `kinks`: the same change as a few sources split at the ReLU kinks
  (`KinkPlan`), one small matmul per draw.
- `twin`: a float64 evaluation of a chain decoder, for checks.
- `evaluator`: the evaluation the explainer uses, fixed when it is built
  (`decoder_evaluator(decoder, probe_codes, mode=..., fuse=...)`), with its
  mode ("kinks", "layers" or "subtract") and diagnostics.

Nothing here imports the rest of the package except `siamese_xai._checks`.
"""
