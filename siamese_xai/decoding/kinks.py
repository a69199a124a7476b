"""The exact change of a ReLU chain decoder as a short sum of exact sources: one small matmul per draw.

Every layer of a chain decoder except its activations is affine, so along the
unperturbed pass's ReLU pattern the change is linear in d. A draw is non-zero
on s coordinates, so before the first ReLU its change is `|eps| @ basis`, a
combination of s rows. Through each ReLU layer, a unit that no draw moves
across its kink (z_u + dz_u on the same side of 0 as z_u; z_u = 0 counts as
the negative side) passes its change on linearly (times its 0/1 mask); a unit
that some draw moves across is taken out of the linear pattern and becomes a
source of its own, with its exact change `relu(z + dz) - relu(z) = max(dz, -z)
+ min(z, 0)` per draw as the coefficient. So at every layer

    dz = coef @ S,   coef: `(N, r)` the sources' exact per-draw changes
    (|eps| for the s basis rows, then the crossed units'),
    S: `(r, units)` the sources' images through the linear pattern,

with S computed in float64 by pushing r rows through the affine layers.
Which units a draw can move across is found without computing every unit's
dz: |dz_u| <= sum_r |S[r, u]| max_i |coef_ir| (the unit's bound); only the
units whose |z_u| is within it (the candidates, a few in thousands at the
paper's sigma) get their dz for every draw, and those that some draw moves
across become sources. The change before the last activation is then
`coef @ S_final` (about 2 r P FLOPs per draw instead of the decoder's), and
the last activation's exact rule (`siamese_xai.decoding.rules`) gives the image
change: the same function as `ExactChain.sums_from_basis`, to float32 precision.

Where more than `cap` units of one layer are candidates (a large sigma), the
sources would not be few: `prepare` says so and the caller takes the
layer-by-layer path. `kink_plan(chain)` returns None where an activation
before the last one is not relu or linear.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from siamese_xai.decoding import rules
from siamese_xai.decoding.exact import ExactChain

# The draws' changes summed in one step (`KinkPlan.sums`: the float32 block `coef @ jac` and its last
# activation's rule) are kept to about this many bytes, so that the block stays in the CPU's cache between
# the matmul and the rule: at 96x96x3 (27,648 values per row) blocks of 1000 draws (110 MB) took 9.9 s per
# image with N = 5000 and blocks of 40 draws 1.3 s, with the same sums to float32 precision. Table 1's
# 784-pixel images keep their 1000 draws per block (`block_rows`), so the MNIST results do not move.
BLOCK_BYTES = 4 << 20
# A unit's bound is widened by this relative margin, so that rounding of the
# float64 bound can only add candidates (a candidate that no draw moves across
# stays in the linear pattern; a missed crossing would change the result).
_BOUND_MARGIN = 1e-6


def _first(mask, k):
    """The positions of the True entries of each row of `mask` `(G, U)`, first k (padding: False rows); and validity."""
    order = tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1, stable=True)[:, :k]
    return order, tf.gather(mask, order, batch_dims=1)


class KinkPlan:
    """How the chain's change splits into sources at its ReLU layers (see the module docstring)."""

    def __init__(self, chain: ExactChain, last: int, width: int, keep=None, size=None):
        """
        Args:
            chain: the exact change evaluation.
            last: the index of its last step that is not a rearrangement.
            width: the values per row of that step's output that reach the
                image (the columns of `prepare`'s `jac`).
            keep: the positions of that step's (flattened, `size` long)
                output that reach the image, where the others are padding of
                an internal layout; None: all.
            size: that output's length (with `keep`).
        """
        self.chain, self.last = chain, last
        self.keep, self.size = keep, size
        self.width = int(width)
        # the ReLU layers whose crossed units become sources (at most `cap` candidates each)
        self.relu_layers = sum(1 for i, st in enumerate(chain.steps) if i != last and st.kind != "shape"
                               and st.act == "relu")

    def prepare(self, codes, basis, eps, cap):
        """The float64 pass of the codes and of the sources through the layers.

        Args:
            codes: `(G, D)` float32 codes h.
            basis: `(G, s, D)` float32 code change per unit |eps_j|.
            eps: `(N, s)` float32 |eps|, all the draws.
            cap: the most candidate units per input and layer.

        Returns:
            A dict: `x0` the output g(h) `(G, ...)` in the internal layout,
            float32; `terms` the exact path's per-step terms (as
            `ExactChain.base`); `coef` `(G, N, r)` and `jac` `(G, r, P)`
            float32 (the last pre-activation's change at the `keep`
            positions is `coef @ jac`); `last_terms` the last activation's
            terms at those positions; `last_shape` its output's shape per row;
            `ok` (scalar bool: no layer had more than `cap` candidates);
            `candidates` and `crossed` (scalar int64: units summed over the
            inputs and layers); `crossing_draws` `(G, N)` bool, the draws
            that move some unit across its kink.
        """
        groups, dim = tf.shape(codes)[0], basis.shape[2]
        x = tf.cast(codes, tf.float64)
        rows = tf.reshape(tf.cast(basis, tf.float64), (-1, dim))  # (G * r, ...): the sources' images
        coef = tf.tile(tf.cast(eps, tf.float64)[None], tf.stack([groups, 1, 1]))
        stats = {"ok": tf.constant(True), "candidates": tf.constant(0, tf.int64), "crossed": tf.constant(0, tf.int64),
                 "crossing_draws": tf.zeros(tf.stack([groups, tf.shape(eps)[0]]), tf.bool)}
        terms, jac = [], None
        for i, st in enumerate(self.chain.steps):
            if st.kind == "shape":
                terms.append(None)
                x = st.fn(x)
                if i < self.last:
                    rows = st.fn(rows)
                continue
            z = x
            if st.kind == "affine":
                z, rows = st.fn(x), st.fn(rows)
                if st.bias is not None:
                    z = tf.nn.bias_add(z, tf.cast(st.bias(), tf.float64))
            terms.append(rules.act_base(st.act, tf.cast(z, tf.float32)))
            x = rules.apply_act(st.act, z)
            if i == self.last:
                last_shape = tf.shape(z)[1:]
                jac = tf.cast(tf.reshape(rows, tf.stack([groups, tf.shape(coef)[2], -1])), tf.float32)
                last_terms = None if terms[-1] is None else tuple(tf.reshape(t, (groups, 1, -1)) for t in terms[-1])
                if self.keep is not None:
                    jac = tf.gather(jac, self.keep, axis=2)
                    last_terms = None if last_terms is None else tuple(tf.gather(t, self.keep, axis=2)
                                                                       for t in last_terms)
            elif st.act == "relu":
                rows, coef = self._through_relu(z, rows, coef, cap, stats)
        return {"x0": tf.cast(x, tf.float32), "terms": terms, "coef": tf.cast(coef, tf.float32), "jac": jac,
                "last_terms": last_terms, "last_shape": last_shape, **stats}

    @staticmethod
    def _through_relu(z, rows, coef, cap, stats):
        """The sources past one ReLU layer: crossed units become sources, the other units pass on their mask."""
        groups, r = tf.shape(z)[0], tf.shape(coef)[2]
        zf = tf.reshape(z, (groups, -1))
        units = tf.shape(zf)[1]
        images = tf.reshape(rows, (groups, r, -1))  # (G, r, U)
        bound = tf.einsum("gru,gr->gu", tf.abs(images), tf.reduce_max(tf.abs(coef), axis=1)) * (1 + _BOUND_MARGIN)
        cand = tf.abs(zf) <= bound
        counts = tf.reduce_sum(tf.cast(cand, tf.int32), axis=1)
        stats["ok"] = tf.logical_and(stats["ok"], tf.reduce_max(counts) <= cap)
        stats["candidates"] += tf.cast(tf.reduce_sum(counts), tf.int64)
        order, valid = _first(cand, tf.minimum(tf.reduce_max(counts), cap))
        zc = tf.gather(zf, order, batch_dims=1)  # (G, k)
        dz = tf.matmul(coef, tf.gather(images, order, axis=2, batch_dims=1))  # (G, N, k): exact for every draw
        moved = zc[:, None] + dz
        crosses = tf.logical_and(tf.where(zc[:, None] > 0, moved < 0, moved > 0), valid[:, None])
        crossed = tf.reduce_any(crosses, axis=1)  # (G, k)
        stats["crossing_draws"] = tf.logical_or(stats["crossing_draws"], tf.reduce_any(crosses, axis=2))
        pick, keep = _first(crossed, tf.reduce_max(tf.reduce_sum(tf.cast(crossed, tf.int32), axis=1)))
        stats["crossed"] += tf.cast(tf.reduce_sum(tf.cast(crossed, tf.int32)), tf.int64)
        zk = tf.gather(zc, pick, batch_dims=1)[:, None]  # (G, 1, k2)
        dzk = tf.gather(dz, pick, axis=2, batch_dims=1)  # (G, N, k2)
        keep64 = tf.cast(keep, tf.float64)
        da = (tf.maximum(dzk, -zk) + tf.minimum(zk, 0.0)) * keep64[:, None]  # relu's exact change
        hot = tf.one_hot(tf.gather(order, pick, batch_dims=1), units, dtype=tf.float64) * keep64[..., None]
        linear = tf.cast(zf > 0, tf.float64) * (1.0 - tf.reduce_sum(hot, axis=1))  # (G, U)
        images = tf.concat([images * linear[:, None], hot], axis=1)  # (G, r + k2, U)
        rows = tf.reshape(images, tf.concat([[-1], tf.shape(z)[1:]], 0))
        return rows, tf.concat([coef, da], axis=2)

    def block_rows(self, group: int) -> int:
        """The draws per step of `sums` for `group` inputs: their float32 (group * rows, width) block in BLOCK_BYTES."""
        return max(1, BLOCK_BYTES // (4 * self.width * max(1, int(group))))

    def sums(self, prepared, lo, hi):
        """Sums over draws lo..hi-1 of |change| and change, `(G, ...)` each in the internal layout."""
        coef, jac = prepared["coef"][:, lo:hi], prepared["jac"]
        groups = tf.shape(coef)[0]
        dz = tf.reshape(tf.matmul(coef, jac), (-1, tf.shape(jac)[2]))  # (G * n, P)
        sums = rules.act_sums(self.chain.steps[self.last].act, prepared["last_terms"], dz, groups)
        if self.keep is not None:  # zeros at the padding positions
            inverse = np.full(self.size, len(self.keep), np.int64)
            inverse[self.keep] = np.arange(len(self.keep))
            sums = tuple(tf.gather(tf.pad(t, [[0, 0], [0, 1]]), inverse, axis=1) for t in sums)
        shape = tf.concat([[groups], prepared["last_shape"]], 0)
        sums = tuple(tf.reshape(t, shape) for t in sums)
        for tail in self.chain.steps[self.last + 1 :]:  # rearrangements of each row commute with the sums
            sums = tuple(tail.fn(t) for t in sums)
        return sums


def kink_plan(chain, to_image, dim):
    """A `KinkPlan` for an `ExactChain`, or None where an activation before the last is not relu or linear.

    Args:
        chain: an `ExactChain`.
        to_image: the rearrangement of the chain's output into the image.
        dim: D, the length of a code.
    """
    active = [i for i, st in enumerate(chain.steps) if st.kind != "shape"]
    if not active or any(chain.steps[i].act not in ("relu", "linear") for i in active[:-1]):
        return None
    last = active[-1]
    keep, size = _image_positions(chain, last, to_image, dim)
    return KinkPlan(chain, last, len(keep) if keep is not None else size, keep, size)


def _image_positions(chain, last, to_image, dim):
    """The positions of step `last`'s output that reach the image and its length; `(None, length)`: all of them."""
    x = tf.zeros((1, dim), tf.float64)
    for st in chain.steps[: last + 1]:
        x = st.fn(x) if st.kind != "act" else x
    size = int(np.prod(x.shape[1:]))
    y = tf.reshape(tf.range(size, dtype=tf.float64), x.shape)
    for st in chain.steps[last + 1 :]:
        y = st.fn(y)
    keep = np.unique(to_image(y).numpy().astype(np.int64))
    return (keep, size) if len(keep) < size else (None, size)
