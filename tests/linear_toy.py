"""A toy shared by the metrics and baselines tests: a linear embedding whose distance depends on known pixels."""

import numpy as np

P = 28 * 28


class LinearEmbed:
    """h = x @ W with W non-zero only on a known set S of pixels: d depends on S alone."""

    def __init__(self, support, dim=3, seed=0):
        rng = np.random.default_rng(seed)
        self.w = np.zeros((P, dim))
        self.w[support] = np.abs(rng.normal(1.0, 0.2, (len(support), dim)))
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return (np.asarray(x, np.float64).reshape(len(x), -1) @ self.w).astype(np.float32)


def linear_toy():
    """Images, a linear embedding on a known support, and prototypes c_b = f(x_b): image b is class b.

    Returns:
        `(xs (4, 28, 28, 1), f, prototypes (5, 3), support)`.
    """
    rng = np.random.default_rng(1)
    xs = rng.uniform(0.2, 1.0, (4, 28, 28, 1)).astype(np.float32)
    support = rng.choice(P, 60, replace=False)
    f = LinearEmbed(support)
    h = f(xs)
    protos = np.concatenate([h, h.mean(0, keepdims=True) + 100.0])
    return xs, f, protos, support
