"""Synthetic ground-truth sets: images whose class is decided by a known region.

- `make_synthetic` (constant): a 4x4 square at a fixed position per class over
  a random MNIST digit. A case built for the paper's method to fail: the
  method perturbs h toward the class's own prototype and only sees what varies
  within a class, and this square never varies.
- `make_varying_synthetic` (varying): the square varies in position (two
  cells of a 4-pixel grid per class) and intensity. It was designed together
  with the template-contrast method, and its squares lie on a 4-pixel grid.
- `make_shapes` (shapes): fixed before any method was scored on it (see
  docs/evaluation.md): glyphs at random positions off any grid, distractor
  glyphs of other classes, and a class decided by missing ink (a gap).
- `make_photos` (photos): colour images of any size (96x96 and 224x224 in
  `benchmarks/speed/photos.py`): one object of five kinds at a random position,
  size and colour on a coloured, noisy background, with its mask.

Every generator is seeded (the same seed gives the same set), draws its
labels first with `balanced_labels`, and returns the true region of each image;
the two square generators share their start (`_digit_backed_draw`) too.
"""

from __future__ import annotations

import numpy as np

# Ten 4x4 squares, five along the top edge and five along the bottom edge,
# outside the 20x20 box in which MNIST centres its digits.
SQUARE = 4
SQUARE_POSITIONS = tuple((r, c) for r in (0, 24) for c in (0, 6, 12, 18, 24))


def balanced_labels(rng, n: int, num_classes: int) -> np.ndarray:
    """`(n,)` int64 classes, balanced (counts differ by at most one) and shuffled: the first draw of `rng`.

    Every generator here draws its labels this way, first, so a set's
    random stream is fixed by its seed alone.
    """
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _digit_backed_draw(digits, n: int, seed: int, num_classes: int, max_classes: int):
    """The start both square generators share: checks, balanced labels, then a random digit per image.

    Args:
        digits: `(m, 28, 28, 1)` float images in [0, 1].
        n: images to make.
        seed: the seed of the returned generator.
        num_classes: classes, at most `max_classes`.
        max_classes: the generator's number of class layouts.

    Returns:
        `(rng, y, x)`: the generator after its first two draws, `(n,)` int64
        labels (`balanced_labels`) and `(n, 28, 28, 1)` float32 copies of
        random digits (their own labels ignored).
    """
    digits = np.asarray(digits, np.float32)
    if digits.ndim != 4 or digits.shape[1:] != (28, 28, 1):
        raise ValueError(f"`digits` must be (m, 28, 28, 1) images. Received: digits.shape={digits.shape}")
    if not 1 <= num_classes <= max_classes:
        raise ValueError(f"`num_classes` must be in [1, {max_classes}]. Received: num_classes={num_classes}")
    if n < 1:
        raise ValueError(f"`n` must be positive. Received: n={n}")
    rng = np.random.default_rng(seed)
    y = balanced_labels(rng, n, num_classes)
    x = digits[rng.integers(0, len(digits), n)].copy()
    return rng, y, x


def make_synthetic(digits, n: int, seed: int = 0, num_classes: int = 10):
    """Images whose class is decided by a bright square drawn over an unrelated digit.

    Image i takes a random digit from `digits` (its own label is ignored) and
    draws a 4x4 square of intensity 1 at the position of class y_i (five
    positions along the top edge, five along the bottom edge, outside the
    box where MNIST centres its digits).

    Args:
        digits: `(m, 28, 28, 1)` float images in [0, 1] (e.g. MNIST).
        n: images to make.
        seed: the same seed gives the same data set.
        num_classes: at most 10.

    Returns:
        `(x, y, regions)`: `(n, 28, 28, 1)` float32, `(n,)` int64 classes
        (balanced, shuffled), `(n, 28, 28)` bool the square of each image.
    """
    _, y, x = _digit_backed_draw(digits, n, seed, num_classes, len(SQUARE_POSITIONS))
    regions = np.zeros((n, 28, 28), bool)
    for k, (r, c) in enumerate(SQUARE_POSITIONS[:num_classes]):
        regions[y == k, r : r + SQUARE, c : c + SQUARE] = True
    x[regions] = 1.0
    return x, y, regions


CELL = 4  # the square's side, and the grid it sits on
# The 24 cells of the border ring of the 7x7 grid of 4x4 cells, clockwise from the top-left corner.
RING = (
    [(0, 4 * c) for c in range(7)]
    + [(4 * r, 24) for r in range(1, 6)]
    + [(24, 4 * c) for c in range(6, -1, -1)]
    + [(4 * r, 0) for r in range(5, 0, -1)]
)
# Class k's two cells: adjacent on the ring; four ring cells are left empty as gaps between classes.
LAYOUT = "001122_334455_667788_99_"  # one character per ring cell: the class, or _ for a gap
CLASS_CELLS = tuple(
    tuple(RING[i] for i, ch in enumerate(LAYOUT) if ch == str(k)) for k in range(10)
)
INTENSITY = (0.4, 1.0)


def make_varying_synthetic(digits, n: int, seed: int = 0, num_classes: int = 10):
    """Images whose class is decided by a square whose position and intensity vary within the class.

    Args:
        digits: `(m, 28, 28, 1)` float images in [0, 1] (MNIST digits).
        n: images to make.
        seed: the same seed gives the same set.
        num_classes: at most 10.

    Returns:
        `(x, y, regions, cell)`: `(n, 28, 28, 1)` float32 images, `(n,)` int64
        classes (balanced, shuffled), `(n, 28, 28)` bool the square of each
        image, `(n,)` int64 which of its class's two cells (0 or 1).
    """
    rng, y, x = _digit_backed_draw(digits, n, seed, num_classes, len(CLASS_CELLS))
    which = rng.integers(0, 2, n).astype(np.int64)
    level = rng.uniform(*INTENSITY, n).astype(np.float32)
    regions = np.zeros((n, 28, 28), bool)
    for i in range(n):
        r, c = CLASS_CELLS[y[i]][which[i]]
        regions[i, r : r + CELL, c : c + CELL] = True
        x[i, r : r + CELL, c : c + CELL, 0] = level[i]
    return x, y, regions, which


# 5x5 glyphs: the first 2 * num_pair_classes are the pair classes' (A_k, B_k), the rest are neutral.
_GLYPHS = (
    "..#..|..#..|#####|..#..|..#..",  # plus
    "#...#|.#.#.|..#..|.#.#.|#...#",  # cross
    "#####|#...#|#...#|#...#|#####",  # ring
    "..#..|.#.#.|#...#|.#.#.|..#..",  # diamond
    "#####|..#..|..#..|..#..|..#..",  # T
    "#....|#....|#....|#....|#####",  # L
    "#...#|#...#|#####|#...#|#...#",  # H
    "#.#.#|.....|#.#.#|.....|#.#.#",  # dots
    "....#|...#.|..#..|.#...|#....",  # slash
    "#####|.....|#####|.....|#####",  # stripes
    "##...|##...|..#..|...##|...##",  # steps
    "#...#|.....|..#..|.....|#...#",  # five dots
)
GLYPHS = tuple(np.array([[ch == "#" for ch in row] for row in g.split("|")]) for g in _GLYPHS)
GLYPH = 5
BAR = (2, 12)  # the bar every image holds (rows, columns)
GAP = (2, 3)  # the missing ink that decides the gap class


def _place(occupied, size, rng):
    """A random top-left corner where a `size` box and its one-pixel border are free, or None."""
    h, w = occupied.shape
    for _ in range(200):
        r, c = int(rng.integers(0, h - size[0] + 1)), int(rng.integers(0, w - size[1] + 1))
        if not occupied[max(r - 1, 0) : r + size[0] + 1, max(c - 1, 0) : c + size[1] + 1].any():
            occupied[r : r + size[0], c : c + size[1]] = True
            return r, c
    return None


def _shapes_image(k, num_pair_classes, distractors, rng, size=28):
    """One image of class k: `(image (size, size), region (size, size) bool)`, or None when the items do not fit."""
    img = np.zeros((size, size), np.float32)
    region = np.zeros((size, size), bool)
    occupied = np.zeros((size, size), bool)
    gap_class = k == num_pair_classes
    pos = _place(occupied, BAR, rng)
    if pos is None:
        return None
    img[pos[0] : pos[0] + BAR[0], pos[1] : pos[1] + BAR[1]] = 1.0
    if gap_class:
        g = pos[1] + int(rng.integers(2, BAR[1] - GAP[1] - 1))  # never at an end: a gap, not a shorter bar
        img[pos[0] : pos[0] + GAP[0], g : g + GAP[1]] = 0.0
        region[pos[0] : pos[0] + GAP[0], g : g + GAP[1]] = True
        pair = int(rng.integers(0, num_pair_classes))  # only the gap tells the image from this pair class
    else:
        pair = k
    items = [(GLYPHS[2 * pair], not gap_class), (GLYPHS[2 * pair + 1], not gap_class)]
    others = [j for j in range(num_pair_classes) if j != pair]
    neutral = GLYPHS[2 * num_pair_classes :]
    for i in range(distractors):
        if i % 2 == 0 and others:  # one glyph of another pair class: alone it decides nothing
            items.append((GLYPHS[2 * int(rng.choice(others)) + int(rng.integers(0, 2))], False))
        else:
            items.append((neutral[int(rng.integers(0, len(neutral)))], False))
    for glyph, true in items:
        pos = _place(occupied, (GLYPH, GLYPH), rng)
        if pos is None:
            return None
        box = (slice(pos[0], pos[0] + GLYPH), slice(pos[1], pos[1] + GLYPH))
        img[box] = np.maximum(img[box], glyph)
        if true:
            region[box] |= glyph
    return img, region


def make_shapes(n: int, seed: int = 0, num_pair_classes: int = 4, distractors: int = 2, noise: float = 0.0):
    """Glyph images whose class is decided by a pair of glyphs, or by a gap in a bar (docs/evaluation.md).

    Every image holds a 2 x 12 bar at a random position. A pair class k
    (k < `num_pair_classes`) adds its two glyphs A_k, B_k at random positions
    (any integer offset; no grid); the gap class (k = `num_pair_classes`) cuts
    a 2 x 3 gap out of the bar and adds the two glyphs of a random pair class,
    so that only the missing ink tells the two apart. Each image also holds
    `distractors` glyphs, alternately one of another pair class and a
    neutral one. Items never overlap or touch.

    Args:
        n: images to make.
        seed: the same seed gives the same set.
        num_pair_classes: pair classes (1 to 4); the classes are 0..num_pair_classes.
        distractors: distractor glyphs per image (0 to 3).
        noise: standard deviation of Gaussian background noise (clipped to [0, 1]).

    Returns:
        `(x, y, regions)`: `(n, 28, 28, 1)` float32 in [0, 1], `(n,)` int64
        classes (balanced, shuffled), `(n, 28, 28)` bool the true region (the
        ink of A_k and B_k, or the gap's pixels, where x is 0 without noise).
    """
    if n < 1:
        raise ValueError(f"`n` must be positive. Received: n={n}")
    if not 1 <= num_pair_classes <= 4:
        raise ValueError(f"`num_pair_classes` must be in [1, 4]. Received: num_pair_classes={num_pair_classes}")
    if not 0 <= distractors <= 3:
        raise ValueError(f"`distractors` must be in [0, 3]. Received: distractors={distractors}")
    if not 0 <= noise < 1:
        raise ValueError(f"`noise` must be in [0, 1). Received: noise={noise}")
    rng = np.random.default_rng(seed)
    y = balanced_labels(rng, n, num_pair_classes + 1)
    x = np.zeros((n, 28, 28, 1), np.float32)
    regions = np.zeros((n, 28, 28), bool)
    for i, k in enumerate(y):
        made = None
        while made is None:
            made = _shapes_image(int(k), num_pair_classes, distractors, rng)
        x[i, ..., 0], regions[i] = made
    if noise:
        x = np.clip(x + rng.normal(0.0, noise, x.shape).astype(np.float32), 0.0, 1.0)
    return x, y, regions


PHOTO_CLASSES = ("disc", "square", "triangle", "ring", "cross")


def _photo_mask(k, size, rng):
    """The object's `(size, size)` bool mask: kind k, half-extent 14-24% of the side, at a random place inside."""
    r = rng.uniform(0.14, 0.24) * size
    cy, cx = rng.uniform(r + 1, size - r - 1, size=2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dy, dx = (yy - cy) / r, (xx - cx) / r
    if k == 0:
        return dy ** 2 + dx ** 2 <= 1
    if k == 1:
        return (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8)
    if k == 2:
        return (dy <= 0.8) & (dy >= -1) & (np.abs(dx) <= (dy + 1) / 1.8 * 0.95)
    if k == 3:
        return (dy ** 2 + dx ** 2 <= 1) & (dy ** 2 + dx ** 2 >= 0.45)
    return ((np.abs(dy) <= 1) & (np.abs(dx) <= 0.3)) | ((np.abs(dx) <= 1) & (np.abs(dy) <= 0.3))


def photo_image(k: int, size: int, rng):
    """One photo of kind k: `(image (size, size, 3) uint8, mask (size, size) bool)`.

    The background is a linear gradient between two random colours in a random
    direction plus Gaussian noise (sd 0.06); the object is a flat random colour
    at least 0.35 away (mean over the channels) from the background under it,
    with the same noise, so that the class is the object's outline only.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip((np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5, 0, 1)[..., None]
    c0, c1 = rng.uniform(0.1, 0.9, size=(2, 3))
    image = c0 + (c1 - c0) * t
    mask = _photo_mask(k, size, rng)
    under = image[mask].mean(0)
    colour = rng.uniform(0, 1, 3)
    for _ in range(20):
        if np.abs(colour - under).mean() >= 0.35:
            break
        colour = rng.uniform(0, 1, 3)
    else:
        colour = np.where(under > 0.5, 0.05, 0.95)
    image[mask] = colour
    image = image + rng.normal(0.0, 0.06, image.shape)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def make_photos(n: int, size: int = 96, seed: int = 0):
    """Colour photos of five kinds of object (`PHOTO_CLASSES`) on varied backgrounds, with their masks.

    The labels are drawn first (`balanced_labels`, seeded by `seed`); image i
    is then drawn by `photo_image` from its own generator seeded by
    `(seed, i)`, so that a class-folder tree can be written one image at a
    time (`benchmarks/speed/photos.py make-data`).

    Args:
        n: images to make.
        size: the side in pixels (96 and 224 in the benchmark; any side >= 16).
        seed: the same seed gives the same set.

    Returns:
        `(x, y, masks)`: `(n, size, size, 3)` float32 in [0, 1] (multiples of
        1/255, as read back from PNG files), `(n,)` int64 classes (balanced,
        shuffled), `(n, size, size)` bool the object's pixels.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive integer. Received: n={n!r}")
    if not isinstance(size, int) or size < 16:
        raise ValueError(f"`size` must be an integer of at least 16. Received: size={size!r}")
    y = balanced_labels(np.random.default_rng(seed), n, len(PHOTO_CLASSES))
    x = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), bool)
    for i, k in enumerate(y):
        image, masks[i] = photo_image(int(k), size, np.random.default_rng([seed, i]))
        x[i] = image / np.float32(255)
    return x, y, masks
