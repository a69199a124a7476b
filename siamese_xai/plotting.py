"""Drawing explanations: the paper's quadruple (Fig. 4-9) and its panels.

Every function takes an `Explanation`, the `index` of the input to draw (an
Explanation holds a batch; 0 by default) and an optional matplotlib `ax` (or
`axes`), draws into it, and returns it; nothing here calls `plt.show()`.
"""

from __future__ import annotations

import textwrap
import types

import matplotlib.pyplot as plt
import numpy as np

from siamese_xai.explainers.explanation import Explanation
from siamese_xai.explainers.probe_explanation import ProbeExplanation
from siamese_xai.explainers.results import BatchResult

MASK_COLOR = (1.0, 0.15, 0.1)
TITLE_SIZE = 9
PANEL_INCHES = 2.1  # the width of one panel of a new quadruple figure


def _check(explanation, index):
    """The explanation of input `index`, as `(H, W, C)` arrays and Python scalars."""
    if not isinstance(explanation, Explanation):
        raise TypeError(f"`explanation` must be an Explanation. Received: {type(explanation).__name__}")
    b = len(explanation)
    if not isinstance(index, (int, np.integer)) or not -b <= index < b:
        raise ValueError(f"`index` must be an integer in [-{b}, {b}) for an Explanation of {b} inputs. Received: index={index!r}")
    one = {k: getattr(explanation, k)[index] for k in ("input", "reconstruction", "mask", "mean_signed_change")}
    one.update(
        predicted_class=explanation.class_name(explanation.predicted_class[index]),
        explained_class=int(explanation.explained_class[index]),
        explained_name=explanation.class_name(explanation.explained_class[index]),
        contrast_name=(explanation.class_name(explanation.contrast_class[index])
                       if explanation.asks_contrast else None),
        q=explanation.config.q,
    )
    return types.SimpleNamespace(**one)


def _image(a):
    """`(H, W, 1)` -> `(H, W)` for a gray image; RGB stays `(H, W, 3)`."""
    a = np.asarray(a)
    return a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a


def _mask2d(explanation):
    m = np.asarray(explanation.mask)
    return m.any(axis=-1) if m.ndim == 3 else m


def _new_ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(2.4, 2.4))
    return ax


def _show(ax, img, title, **kwargs):
    kwargs.setdefault("vmin", 0.0)
    kwargs.setdefault("vmax", 1.0)
    if np.ndim(img) == 2:
        kwargs.setdefault("cmap", "gray")
    ax.imshow(img, interpolation="nearest", **kwargs)
    # titles hold class names, which are data: shown as written, never parsed as mathtext ("$...$")
    ax.set_title(_fit(ax, title), fontsize=TITLE_SIZE, parse_math=False)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _fit(ax, title):
    """`title` wrapped to the width of `ax`, so that neighbouring titles never run into each other."""
    spec = ax.get_subplotspec()
    if spec is not None:  # the grid cell: what a constrained (or tight) layout gives the panel and its title
        grid = spec.get_gridspec()
        cols = spec.colspan
        share = (cols.stop - cols.start) / grid.ncols
    else:
        share = ax.get_position().width
    width_pt = 0.92 * share * ax.figure.get_figwidth() * 72
    chars = max(8, int(width_pt / (0.56 * TITLE_SIZE)))  # 0.56 em: an average glyph of the default sans font
    return textwrap.fill(title, chars, break_long_words=True, break_on_hyphens=False)


def _subject(explanation):
    if explanation.explained_class < 0:
        return "the pair"
    if explanation.contrast_name is not None:
        other = "the reference" if explanation.contrast_name == "-" else explanation.contrast_name
        return f"{explanation.explained_name} vs {other}"
    return f"class {explanation.explained_name}"


def plot_input(explanation, ax=None, *, index: int = 0):
    """Draws the explained image, titled with the SNN's class. Returns `ax`."""
    explanation = _check(explanation, index)
    return _show(_new_ax(ax), _image(explanation.input), f"input (SNN: {explanation.predicted_class})")


def plot_reconstruction(explanation, ax=None, *, index: int = 0):
    """Draws g(h), the decoder's image of the embedding. Returns `ax`."""
    explanation = _check(explanation, index)
    return _show(_new_ax(ax), _image(np.clip(explanation.reconstruction, 0, 1)), "reconstruction g(h)")


def plot_overlay(explanation, ax=None, *, index: int = 0, color=MASK_COLOR, alpha: float = 0.7):
    """Draws the input with the explanation mask over it (panel 3 of the quadruple).

    Args:
        explanation: an `Explanation`.
        ax: a matplotlib Axes; a new figure when None.
        color: RGB of the mask.
        alpha: opacity of the mask.

    Returns:
        The Axes.
    """
    explanation = _check(explanation, index)
    ax = _show(_new_ax(ax), _image(explanation.input), f"explanation of {_subject(explanation)}")
    mask = _mask2d(explanation)
    layer = np.zeros(mask.shape + (4,))
    layer[..., :3] = color
    layer[..., 3] = np.where(mask, alpha, 0.0)
    ax.imshow(layer, interpolation="nearest")
    return ax


def plot_mask(explanation, ax=None, *, index: int = 0):
    """Draws the mask alone (panel 4 of the quadruple). Returns `ax`."""
    explanation = _check(explanation, index)
    title = f"mask (q={explanation.q}, {int(_mask2d(explanation).sum())} px)"
    return _show(_new_ax(ax), _mask2d(explanation).astype(float), title)


def plot_signed_change(explanation, ax=None, *, index: int = 0, cmap: str = "RdBu_r"):
    """Draws the signed mean change: red pixels brighten, blue darken, moving toward c.

    Returns:
        The Axes.
    """
    explanation = _check(explanation, index)
    change = np.asarray(explanation.mean_signed_change)
    change = change.mean(axis=-1) if change.ndim == 3 else change
    bound = float(np.abs(change).max()) or 1.0
    return _show(_new_ax(ax), change, "signed mean change", cmap=cmap, vmin=-bound, vmax=bound)


def plot_explanation(explanation, axes=None, *, index: int = 0):
    """Draws the paper's quadruple: input, reconstruction, input with mask, mask.

    Args:
        explanation: an `Explanation`.
        index: which of its inputs to draw.
        axes: four matplotlib Axes (any shape holding 4); a new 1 x 4 figure
            when None, sized to the image's aspect (constrained layout, so
            that neither the images nor the titles, wrapped to their panel's
            width, leave much white space or overlap, whatever the image size
            and the class names' length).

    Returns:
        The four Axes, as a `(4,)` object array.
    """
    original = explanation
    one = _check(explanation, index)
    flat = _four_panels(axes, np.shape(one.input)[:2])
    plot_input(original, flat[0], index=index)
    plot_reconstruction(original, flat[1], index=index)
    plot_overlay(original, flat[2], index=index)
    plot_mask(original, flat[3], index=index)
    if axes is None:
        _fit_height(flat, np.shape(one.input)[:2])
    return flat


def _four_panels(axes, image_hw):
    """`axes` as a `(4,)` array (a ValueError naming it otherwise), or a new 1 x 4 figure sized to the image's aspect.

    The new figure has a constrained layout and room for two lines of title
    above each panel, so that neither the images nor the titles (wrapped to
    their panel's width, `_fit`) leave much white space or overlap, whatever
    the image size and the class names' length.
    """
    if axes is None:
        h, w = image_hw
        size = (4 * PANEL_INCHES, PANEL_INCHES * h / w + 2.6 * TITLE_SIZE / 72 + 0.15)
        _, axes = plt.subplots(1, 4, figsize=size, layout="constrained")
    flat = np.asarray(axes, dtype=object).ravel()
    if flat.size != 4:
        raise ValueError(f"`axes` must hold 4 matplotlib Axes. Received: {flat.size}")
    return flat


def _fit_height(flat, image_hw) -> None:
    """Makes a new figure of `_four_panels` as tall as its longest (wrapped) title needs.

    The height is estimated from the title's lines, then the layout is drawn
    and the figure grown by what the tallest title still stands out over its
    top edge beyond a pixel (the constrained layout under-reserves some tall titles), twice
    at most.
    """
    h, w = image_hw
    fig = flat[0].figure
    lines = max(ax.get_title().count("\n") + 1 for ax in flat)
    fig.set_figheight(PANEL_INCHES * h / w + 1.5 * lines * TITLE_SIZE / 72 + 0.2)
    for _ in range(2):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        over = max(ax.title.get_window_extent(renderer).y1 for ax in flat) - fig.bbox.y1
        if over <= 1:  # a pixel: where the layout puts a title that fits (0.03 px over, measured)
            break
        fig.set_figheight(fig.get_figheight() + (over + 2) / fig.dpi)


def _check_index(result, index) -> None:
    """Raises the ValueError naming `index` unless it picks one of the result's B explanations."""
    b = len(result)
    if not isinstance(index, (int, np.integer)) or not -b <= index < b:
        raise ValueError(f"`index` must be an integer in [-{b}, {b}) for {b} explanations. Received: index={index!r}")


def _probe_titles(e, index):
    """The four panels' titles of `plot_probe`, in the words of the question asked."""
    kind, n = e.question.get("kind", "contrast"), int(e.set_size[index])
    flipped = bool(e.flips[index])
    if kind in ("class", "contrast"):
        k, l = e.class_name(e.explained_class[index]), e.class_name(e.contrast_class[index])
        return (f"input: {k} rather than {l}?", f"proposal (as {l})", "",
                f"{n} regions painted, f: {l if flipped else 'not ' + l}")
    d = float(np.linalg.norm(e.embedding[index].astype(np.float64) - e.target[index]))
    if kind == "pair":
        return (f"input: why d = {d:.3g}\nfrom the other image?", "proposal", "", f"{n} regions hold the distance")
    if kind == "verify":
        tau = e.question["threshold"]
        accepted = d <= tau
        verdict = "accepted" if accepted else "rejected"
        after = ("rejected" if accepted else "accepted") if flipped else f"still {verdict}"
        return (f"input: {verdict}\n(d = {d:.3g} {'<=' if accepted else '>'} {tau:.3g})", "proposal", "",
                f"{n} regions painted,\nf: {after}")
    return ("query: why a above b?", "proposal (from b)", "",
            f"{n} regions painted,\nf: {'b above a' if flipped else 'a still above b'}")


def plot_probe(explanation, axes=None, *, index: int = 0):
    """Draws a `ProbeExplanation`: input, proposal, the measured map, and the image f classed l.

    Panels: the input (titled with k); the proposal p painted into the
    regions; `drop_map` (red: painting there moved f toward l, blue: away);
    the counterfactual (x with the found set painted) with the set outlined,
    titled with f's verdict.

    Args:
        explanation: a `ProbeExplanation`.
        axes: four matplotlib Axes; a new 1 x 4 figure when None, laid out as
            `plot_explanation`'s (sized to the image's aspect, titles wrapped
            to their panel).
        index: which of its inputs to draw.

    Returns:
        The four Axes, as a `(4,)` object array.
    """
    if not isinstance(explanation, ProbeExplanation):
        raise TypeError(f"`explanation` must be a ProbeExplanation. Received: {type(explanation).__name__}")
    _check_index(explanation, index)
    image_hw = np.shape(explanation.input)[1:3]
    flat = _four_panels(axes, image_hw)
    e = explanation
    titles = _probe_titles(e, index)
    _show(flat[0], _image(e.input[index]), titles[0])
    _show(flat[1], _image(e.proposal[index]), titles[1])
    change = np.asarray(e.drop_map[index]).mean(axis=-1)
    bound = float(np.abs(change).max()) or 1.0
    _show(flat[2], change, "margin drop measured by f", cmap="RdBu_r", vmin=-bound, vmax=bound)
    _show(flat[3], _image(e.counterfactual[index]), titles[3])
    flat[3].contour(np.asarray(e.mask[index]).any(axis=-1).astype(float), levels=[0.5], colors=[MASK_COLOR], linewidths=0.8)
    if axes is None:
        _fit_height(flat, image_hw)
    return flat


def plot_any(result, axes=None, *, index: int = 0):
    """Draws any `BatchResult` from the fields every result holds: the input, its signed map, the mask over the input.

    The signed map is the result class's `MAP_FIELD` (its `ranking` where it declares none); the third panel's
    title is the result's one-line `summary`.

    Args:
        result: a `siamese_xai.explainers.results.BatchResult` of B explanations.
        axes: 3 matplotlib Axes; a new figure when None.
        index: which of the B explanations to draw.

    Returns:
        The Axes drawn into, as an object array.
    """
    if not isinstance(result, BatchResult):
        raise TypeError(f"`result` must be an explainer's result (a BatchResult). Received: {type(result).__name__}")
    _check_index(result, index)
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(3 * PANEL_INCHES, 2.6))
    flat = np.asarray(axes, dtype=object).ravel()
    if flat.size != 3:
        raise ValueError(f"`axes` must hold 3 matplotlib Axes. Received: {flat.size}")
    name = result.MAP_FIELD or "ranking"
    x = np.asarray(result.input[index])
    _show(flat[0], _image(x), "input")
    change = np.asarray(getattr(result, name)[index], np.float64)
    change = change.mean(axis=-1) if change.ndim == 3 else change
    bound = float(np.abs(change).max()) or 1.0
    _show(flat[1], change, name, cmap="RdBu_r", vmin=-bound, vmax=bound)
    _show(flat[2], _image(x), result.summary(index))
    flat[2].contour(np.asarray(result.mask[index]).reshape(x.shape[:2] + (-1,)).any(axis=-1).astype(float),
                    levels=[0.5], colors=[MASK_COLOR], linewidths=0.8)
    return flat


def plot_result(result, axes=None, *, index: int = 0):
    """Draws any explainer's result: `plot_explanation` for an `Explanation`, `plot_probe` for a
    `ProbeExplanation`, `plot_any` for every other result class.

    Returns:
        The Axes drawn into, as an object array.
    """
    if isinstance(result, ProbeExplanation):
        return plot_probe(result, axes, index=index)
    if isinstance(result, Explanation):
        return np.asarray(plot_explanation(result, axes, index=index), dtype=object)
    return plot_any(result, axes, index=index)


def plot_reconstructions(images, from_embedding, from_code, axes=None):
    """Draws test images beside their reconstructions g(f(x)) and g(e(x)).

    Args:
        images: `(n, 28, 28, 1)` originals.
        from_embedding: `(n, 28, 28, 1)` g(f(x)), what the explainer perturbs.
        from_code: `(n, 28, 28, 1)` g(e(x)), the autoencoder's own output.
        axes: `(3, n)` matplotlib Axes (rows: original, g(f(x)), g(e(x))); a
            new figure when None.

    Returns:
        The matplotlib Figure.
    """
    rows = (("x", images), ("g(f(x))", from_embedding), ("g(e(x))", from_code))
    n = len(images)
    if any(len(r) != n for _, r in rows):
        raise ValueError(
            "`images`, `from_embedding` and `from_code` must hold the same number of images. "
            f"Received: {[len(r) for _, r in rows]}"
        )
    if axes is None:
        _, axes = plt.subplots(3, n, figsize=(0.9 * n, 3.0))
    axes = np.asarray(axes, dtype=object).reshape(3, n)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            _show(axes[r, c], _image(np.clip(imgs[c], 0, 1)), "")
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig = axes[0, 0].figure
    fig.tight_layout()
    return fig


def save_figure(fig, path, dpi: int = 120) -> None:
    """Saves a matplotlib figure to PNG atomically and closes it."""
    from siamese_xai.files import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
