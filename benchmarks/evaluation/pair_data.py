"""The pair set with known answers: identities made of glyphs at known places, over clutter.

An identity is a layout and a choice of glyph in each of its slots:

- `LAYOUTS` layouts, each with `SLOTS` slots: 5x5 boxes at random integer
  positions (no grid; drawn once from the set's seed), never overlapping or
  touching each other or the distractors;
- each slot of each layout has two glyphs to choose from (of
  `siamese_xai.evaluation.synthetic.GLYPHS`' first eight), so a layout holds
  2 ** SLOTS identities and two identities of a layout may differ in one
  slot only (`LAYOUTS * 2 ** SLOTS` = 32 identities);
- `DISTRACTORS` distractor glyphs at the same places in every image of every
  identity (shared evidence that tells no identity from another);
- clutter: short faint strokes (intensity 0.2-0.55) anywhere, drawn anew for
  every image; the glyphs (intensity 0.8-1, one draw per image) lie over it.

Pairs (`make_pairs`):

- a *mate* pair is two images of one identity with different clutter and
  intensity; the evidence that makes them the same is the identity's slots
  (the union of its slot boxes, the same place in both images);
- a *non-mate* pair is an image and its twin with one slot's glyph swapped
  (the identity next to it in that slot), the same clutter and intensity:
  the two images differ in that slot's 5x5 box and nowhere else, and the
  region is that box in both images.

Images are quantised to multiples of 1/255 (what a PNG holds), so the
training folder (`write_folder`) and the pairs are the same kind of image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamese_xai.evaluation.synthetic import GLYPH, GLYPHS

SIZE = 28
LAYOUTS = 4
SLOTS = 3
DISTRACTORS = 2
IDENTITIES = LAYOUTS * 2**SLOTS
SLOT_GLYPHS = 8  # the slots choose among GLYPHS[:8]; the distractors are GLYPHS[8:8 + DISTRACTORS]
CLUTTER_STROKES = (8, 14)  # strokes per image (low, high inclusive)
CLUTTER_INTENSITY = (0.2, 0.55)
GLYPH_INTENSITY = (0.8, 1.0)


@dataclass(frozen=True)
class Layouts:
    """Where everything lies, drawn once from a seed.

    Attributes:
        distractors: `(DISTRACTORS, 2)` top-left corners, the same in every image.
        slots: `(LAYOUTS, SLOTS, 2)` top-left corners of each layout's slots.
        options: `(LAYOUTS, SLOTS, 2)` the two glyph indices each slot chooses from.
    """

    distractors: np.ndarray
    slots: np.ndarray
    options: np.ndarray


def _free(occupied, r, c):
    return not occupied[max(r - 1, 0): r + GLYPH + 1, max(c - 1, 0): c + GLYPH + 1].any()


def make_layouts(seed: int = 0) -> Layouts:
    """The distractors' places, every layout's slots and their glyph options (seeded)."""
    rng = np.random.default_rng(seed)
    while True:  # a draw where every box fits; redraw the whole set otherwise
        base = np.zeros((SIZE, SIZE), bool)
        distractors = [_draw_box(base, rng) for _ in range(DISTRACTORS)]
        slots, ok = [], True
        for _ in range(LAYOUTS):
            occupied = base.copy()
            boxes = [_draw_box(occupied, rng) for _ in range(SLOTS)]
            ok &= all(b[0] is not None for b in boxes)
            slots.append(boxes)
        if ok and all(d[0] is not None for d in distractors):
            break
    options = np.stack([np.stack([rng.choice(SLOT_GLYPHS, 2, replace=False) for _ in range(SLOTS)])
                        for _ in range(LAYOUTS)])
    return Layouts(np.array(distractors, np.int64), np.array(slots, np.int64), options.astype(np.int64))


def _draw_box(occupied, rng):
    for _ in range(500):
        r, c = int(rng.integers(0, SIZE - GLYPH + 1)), int(rng.integers(0, SIZE - GLYPH + 1))
        if _free(occupied, r, c):
            occupied[r: r + GLYPH, c: c + GLYPH] = True
            return r, c
    return None, None


def identity_parts(identity: int) -> tuple[int, tuple[int, ...]]:
    """`(layout, choice per slot)` of an identity in [0, IDENTITIES): layout = id // 2**SLOTS, slot s = bit s."""
    if not 0 <= identity < IDENTITIES:
        raise ValueError(f"`identity` must be in [0, {IDENTITIES}). Received: identity={identity}")
    layout, bits = divmod(int(identity), 2**SLOTS)
    return layout, tuple((bits >> s) & 1 for s in range(SLOTS))


def swap_slot(identity: int, slot: int) -> int:
    """The identity that differs from `identity` in `slot`'s glyph only."""
    return int(identity) ^ (1 << slot)


def box_mask(corner) -> np.ndarray:
    """`(SIZE, SIZE)` bool, the 5x5 box at `corner`."""
    m = np.zeros((SIZE, SIZE), bool)
    m[corner[0]: corner[0] + GLYPH, corner[1]: corner[1] + GLYPH] = True
    return m


def clutter(rng) -> np.ndarray:
    """`(SIZE, SIZE)` float32 short faint strokes: 2-4 px, horizontal, vertical or diagonal."""
    img = np.zeros((SIZE, SIZE), np.float32)
    for _ in range(int(rng.integers(CLUTTER_STROKES[0], CLUTTER_STROKES[1] + 1))):
        length = int(rng.integers(2, 5))
        dr, dc = ((0, 1), (1, 0), (1, 1), (1, -1))[int(rng.integers(0, 4))]
        r, c = int(rng.integers(0, SIZE)), int(rng.integers(0, SIZE))
        v = rng.uniform(*CLUTTER_INTENSITY)
        for t in range(length):
            rr, cc = r + t * dr, c + t * dc
            if 0 <= rr < SIZE and 0 <= cc < SIZE:
                img[rr, cc] = max(img[rr, cc], v)
    return img


def render(identity: int, layouts: Layouts, background, intensity: float) -> np.ndarray:
    """`(SIZE, SIZE)` float32 in [0, 1], quantised to 1/255: the identity's glyphs and the distractors over `background`."""
    layout, choice = identity_parts(identity)
    img = np.array(background, np.float32)
    items = [(layouts.slots[layout, s], layouts.options[layout, s, choice[s]]) for s in range(SLOTS)]
    items += [(layouts.distractors[j], SLOT_GLYPHS + j) for j in range(DISTRACTORS)]
    for (r, c), g in items:
        box = img[r: r + GLYPH, c: c + GLYPH]
        img[r: r + GLYPH, c: c + GLYPH] = np.where(GLYPHS[g], np.maximum(box, intensity), box)
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


def evidence_mask(identity: int, layouts: Layouts) -> np.ndarray:
    """`(SIZE, SIZE)` bool, the union of the identity's slot boxes (what makes two of its images the same)."""
    layout, _ = identity_parts(identity)
    return np.any([box_mask(layouts.slots[layout, s]) for s in range(SLOTS)], axis=0)


def distractor_mask(layouts: Layouts) -> np.ndarray:
    """`(SIZE, SIZE)` bool, the union of the distractors' boxes (in every image)."""
    return np.any([box_mask(d) for d in layouts.distractors], axis=0)


def make_identity_images(n: int, seed: int = 0, layout_seed: int = 0):
    """Labelled images for training and calibration: `(x (n, 28, 28, 1), y (n,))`, identities balanced."""
    if n < 1:
        raise ValueError(f"`n` must be positive. Received: n={n}")
    layouts = make_layouts(layout_seed)
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % IDENTITIES).astype(np.int64)
    x = np.stack([render(int(k), layouts, clutter(rng), rng.uniform(*GLYPH_INTENSITY)) for k in y])
    return x[..., None], y


def make_pairs(n_mates: int, n_nonmates: int, seed: int = 0, layout_seed: int = 0) -> dict:
    """Mate and non-mate pairs with their true regions (mates first, then non-mates).

    Returns:
        A dict of arrays, n = n_mates + n_nonmates rows: `x1`, `x2` `(n, 28, 28, 1)`
        float32; `same` `(n,)` bool; `identity1`, `identity2` `(n,)`; `slot` `(n,)`
        the swapped slot (-1 for mates); `region1`, `region2` `(n, 28, 28)` bool
        (mates: the identity's slot boxes; non-mates: the swapped slot's box);
        `distractors` `(n, 28, 28)` bool.
    """
    layouts = make_layouts(layout_seed)
    rng = np.random.default_rng(seed)
    n = n_mates + n_nonmates
    out = {k: [] for k in ("x1", "x2", "identity1", "identity2", "slot", "region1", "region2")}
    for i in range(n):
        a = int(rng.integers(0, IDENTITIES))
        if i < n_mates:
            b, slot = a, -1
            x1 = render(a, layouts, clutter(rng), rng.uniform(*GLYPH_INTENSITY))
            x2 = render(b, layouts, clutter(rng), rng.uniform(*GLYPH_INTENSITY))
            region = evidence_mask(a, layouts)
        else:
            slot = int(rng.integers(0, SLOTS))
            b = swap_slot(a, slot)
            background, v = clutter(rng), rng.uniform(*GLYPH_INTENSITY)
            x1, x2 = render(a, layouts, background, v), render(b, layouts, background, v)
            region = box_mask(layouts.slots[identity_parts(a)[0], slot])
        for key, value in (("x1", x1), ("x2", x2), ("identity1", a), ("identity2", b), ("slot", slot),
                           ("region1", region), ("region2", region)):
            out[key].append(value)
    arrays = {k: np.asarray(v) for k, v in out.items()}
    arrays["x1"], arrays["x2"] = arrays["x1"][..., None], arrays["x2"][..., None]
    arrays["same"] = np.arange(n) < n_mates
    arrays["distractors"] = np.repeat(distractor_mask(layouts)[None], n, axis=0)
    return arrays


def write_folder(root, x, y) -> Path:
    """Writes `x` as PNGs in `root/<identity>/<index>.png` (the `siamese-xai train --data-dir` layout)."""
    from PIL import Image

    root = Path(root)
    for i, (img, k) in enumerate(zip(x, y)):
        folder = root / f"id{int(k):02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img[..., 0] * 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    return root
