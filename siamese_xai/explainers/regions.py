"""The probe's regions and maps (`siamese_xai.explainers.probe`): the grid, the candidates, how a measured drop
is spread over a region's pixels, the smoothing and the order that puts what x has first.

Pure functions of NumPy arrays, each tested by hand in tests/test_probe.py.
"""

from __future__ import annotations

import numpy as np


def grid_cells(weights, cell: int) -> np.ndarray:
    """Cell ids of a `cell`-sided grid anchored on the centroid of `weights`.

    Args:
        weights: `(H, W)` non-negative; the grid's origin is placed so that one
            cell is centred on their centroid (the frame's centre when they are all 0).
        cell: the side in pixels.

    Returns:
        `(H, W)` int64 cell ids (row-major over the shifted grid, starting at 0).
    """
    h, w = weights.shape
    total = weights.sum()
    if total > 0:
        cy = float((weights.sum(1) * np.arange(h)).sum() / total)
        cx = float((weights.sum(0) * np.arange(w)).sum() / total)
    else:
        cy, cx = (h - 1) / 2, (w - 1) / 2
    oy = (int(round(cy)) - cell // 2) % cell
    ox = (int(round(cx)) - cell // 2) % cell
    rows = (np.arange(h) - oy) // cell + 1  # 0 for the partial band above the origin
    cols = (np.arange(w) - ox) // cell + 1
    ncols = (w - 1 - ox) // cell + 2
    return rows[:, None] * ncols + cols[None, :]


def candidate_regions(x, p, cell: int, max_regions: int, rule: str = "change") -> np.ndarray:
    """The candidate regions of one image: grid cells, the largest first by the selection weight.

    Args:
        x, p: `(H, W, C)` the image and the proposal.
        cell, max_regions: as in `ProbeConfig`.
        rule: the selection weight s_p: `"change"`: sum_channels |p - x|
            (cells where painting changes something); `"ink"`: sum_channels x
            (cells holding ink). The grid is anchored on the centroid of s.

    Returns:
        `(H, W)` int32 candidate index (0 = the largest weight; ties: lower
        cell id first), -1 outside every candidate.
    """
    x64 = x.astype(np.float64)
    weight = (np.abs(p.astype(np.float64) - x64) if rule == "change" else x64).sum(-1)
    ids = grid_cells(weight, cell)
    sums = np.bincount(ids.ravel(), weights=weight.ravel())
    if rule == "ink":  # a cell where the proposal equals x would cost a call and change nothing
        moved = np.bincount(ids.ravel(), weights=np.abs(p.astype(np.float64) - x64).sum(-1).ravel(),
                            minlength=len(sums))
        sums = np.where(moved > 0, sums, 0.0)
    live = np.flatnonzero(sums > 0)
    order = live[np.argsort(-sums[live], kind="stable")][:max_regions]
    lookup = np.full(len(sums), -1, np.int32)
    lookup[order] = np.arange(len(order), dtype=np.int32)
    return lookup[ids]


def spread_drops(x, p, regions, drops, rule: str = "change") -> np.ndarray:
    """The per-pixel ranking of one image: each region's measured drop spread over its pixels.

    Args:
        x, p: `(H, W, C)` the image and the proposal.
        regions: `(H, W)` candidate index, -1 outside.
        drops: `(n,)` the measured margin drop of each candidate.
        rule: the pixel weight w_p within a region: `"change"`: |p - x|;
            `"ink"`: x; `"removed"`: max(x - p, 0); `"uniform"`: 1. A region
            whose weights are all 0 shares its drop evenly.

    Returns:
        `(H, W, C)` float32 with sum over region r's pixels = drops[r]; 0 outside.
    """
    x, p = x.astype(np.float64), p.astype(np.float64)
    w = {"change": np.abs(p - x), "ink": x, "removed": np.maximum(x - p, 0.0), "uniform": np.ones_like(x)}[rule]
    n = len(drops)
    inside = regions >= 0
    if n == 0:
        return np.zeros(x.shape, np.float32)
    r = np.maximum(regions, 0)
    total = np.bincount(regions[inside], weights=w[inside].sum(-1), minlength=n)
    size = np.bincount(regions[inside], minlength=n) * x.shape[-1]
    share = np.where((total[r] > 0)[..., None], w / np.maximum(total[r], 1e-300)[..., None], 1.0 / size[r][..., None])
    return np.where(inside[..., None], share * np.asarray(drops, np.float64)[r][..., None], 0.0).astype(np.float32)


def smoothed(maps, sigma: float) -> np.ndarray:
    """`(B, H, W, C)` each map blurred over H and W by a Gaussian of `sigma` px (symmetric borders, 4 sigma)."""
    maps = np.asarray(maps, np.float64)
    if sigma <= 0:
        return maps.astype(np.float32)
    radius = int(4.0 * sigma + 0.5)
    t = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    out = maps
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        out = sum(w * np.take(padded, np.arange(i, i + out.shape[axis]), axis=axis) for i, w in enumerate(kernel))
    return out.astype(np.float32)


def ranking_of(xs, proposal, drop_map, eligible=None) -> np.ndarray:
    """The order of the pixels: the evidence x has first, then the evidence x lacks.

    Where a region's drop is positive, painting p there moves f toward l; its
    pixels where x > p are ink (or colour) of x that p removes, what x *has*
    that makes it k; its pixels where x < p are what x *lacks* of l. Removing
    pixels (what a deletion or imputation does) can act only on the first
    kind, so they come first: ranking = drop_map + L on those pixels, L = 1 +
    max |drop_map| of the image, and drop_map elsewhere. Only its order means
    something; `drop_map` holds the values.

    Args:
        xs, proposal, drop_map: `(B, H, W, C)`.
        eligible: None, or `(B, H, W, C)` bool: only these pixels may be
            lifted (e.g. the found set's cells); None: every pixel.

    Returns:
        `(B, H, W, C)` float32.
    """
    m = drop_map.astype(np.float64)
    lift = 1.0 + np.abs(m).max(axis=tuple(range(1, m.ndim)), initial=0.0)
    has = (m > 0) & (xs > proposal)
    if eligible is not None:
        has &= np.asarray(eligible, bool)
    return np.where(has, m + lift.reshape((-1,) + (1,) * (m.ndim - 1)), m).astype(np.float32)


def post_processed(xs, proposal, drop_map, sigma: float, has_first: bool = True, eligible=None) -> np.ndarray:
    """The probe's ranking of a map: `smoothed` by `sigma`, then (`has_first`) `ranking_of` with the proposal.

    The probe ranks its own `drop_map` so; the benchmark applies the same two
    steps to any other method's map, to compare maps under the same post-processing.

    Args:
        xs, proposal, drop_map: `(B, H, W, C)`.
        sigma: the Gaussian's sigma in pixels (0: no smoothing).
        has_first: lift the positive pixels where x > proposal above all others.
        eligible: None, or `(B, H, W, C)` bool: only these pixels may be lifted (`ranking_of`).

    Returns:
        `(B, H, W, C)` float32.
    """
    smooth = smoothed(drop_map, sigma)
    return ranking_of(xs, proposal, smooth, eligible) if has_first else smooth
