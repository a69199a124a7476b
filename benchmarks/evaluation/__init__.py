"""The explanation benchmarks: faithfulness and ground truth of every method (`evaluate`), the randomisation check, the pair benchmark with known answers."""
