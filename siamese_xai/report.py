"""A static HTML gallery of an explain-split folder: one self-contained page, no server, no network.

`write_report(split_dir)` reads the folder's shards (`shards.load_split_results`)
and the images its manifest's `source` names (checked against the manifest's
SHA-256), and writes one HTML file holding:

- the summary: counts per true and per predicted class, the confusion of the
  nearest-prototype decision (rows: true class, columns: predicted), and the
  distribution of the margin;
- per class (the explained class) the mean mask (the share of images whose
  mask holds each pixel) and the mean signed change;
- a gallery of every explanation (input, input with its mask, signed change),
  sortable and filterable by true class, predicted class, margin and distance,
  with "misclassified" and "near the boundary" one click away.

The margin of an image is the distance to the second-nearest prototype minus
the distance to the nearest (the predicted class): small margins lie near the
decision boundary. The distance is the one to the predicted class's prototype.

Images are PNGs drawn with matplotlib and embedded as data URIs; the gallery's
tiles are one sprite sheet, so a page of 10,000 explanations is one image.
The page's script only sorts, filters and pages the items.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from siamese_xai import files, shards, sources  # noqa: E402

REPORT_FILE = "report.html"
PAGE_SIZE = 120  # gallery items drawn at once; "more" adds as many again
SHEET_COLUMNS = 40  # tiles per row of the sprite sheet
MASK_COLOR = np.array([1.0, 0.15, 0.1])


def margins(distances) -> np.ndarray:
    """`(n, C)` distances to the prototypes -> `(n,)` second-nearest minus nearest (>= 0)."""
    d = np.sort(np.asarray(distances, np.float64), axis=1)
    return d[:, 1] - d[:, 0] if d.shape[1] > 1 else np.full(len(d), np.inf)


def summarize(results, num_classes: int) -> dict:
    """Counts, confusion and margins of a split's results.

    Args:
        results: a `shards.SplitResults` (`shards.load_split_results`), or
            anything with its `label`, `predicted_class` and `distances`.
        num_classes: C.

    Returns:
        A dict: `true_counts` `(C,)` (labels -1 are not counted),
        `predicted_counts` `(C,)`, `confusion` `(C, C)` (rows true, columns
        predicted; labelled images only), `accuracy` (labelled images; NaN
        without labels), `margin` `(n,)`, `distance` `(n,)`.
    """
    y, pred = results.label, results.predicted_class
    labelled = y >= 0
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (y[labelled], pred[labelled]), 1)
    return {
        "true_counts": np.bincount(y[labelled], minlength=num_classes),
        "predicted_counts": np.bincount(pred, minlength=num_classes),
        "confusion": confusion,
        "accuracy": float((y[labelled] == pred[labelled]).mean()) if labelled.any() else float("nan"),
        "margin": margins(results.distances),
        "distance": np.take_along_axis(results.distances, pred[:, None], axis=1)[:, 0].astype(np.float64),
    }


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _gray_rgb(image):
    """`(H, W, C)` in [0, 1] -> `(H, W, 3)`."""
    image = np.clip(np.asarray(image, np.float32), 0, 1)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


def tiles(images, masks, signed_changes, alpha: float = 0.7) -> np.ndarray:
    """Each explanation as one RGB strip: input | input with the mask | signed change (red +, blue -).

    Args:
        images: `(n, H, W, C)` in [0, 1].
        masks: `(n, H, W, C)` bool.
        signed_changes: `(n, H, W, C)`; each is scaled by its own largest |value|.

    Returns:
        `(n, H, 3 W + 2, 3)` float32 in [0, 1], a one-pixel white gap between panels.
    """
    n, h, w = images.shape[:3]
    out = np.ones((n, h, 3 * w + 2, 3), np.float32)
    rgb = np.stack([_gray_rgb(x) for x in images]) if n else np.zeros((0, h, w, 3), np.float32)
    mask = np.asarray(masks).any(axis=-1)[..., None]
    change = np.asarray(signed_changes, np.float32).mean(axis=-1)
    bound = np.abs(change).reshape(n, -1).max(axis=1) if n else np.zeros(0)
    scaled = change / np.where(bound > 0, bound, 1.0)[:, None, None]
    colored = matplotlib.colormaps["RdBu_r"]((scaled + 1) / 2)[..., :3]
    out[:, :, :w] = rgb
    out[:, :, w + 1:2 * w + 1] = np.where(mask, (1 - alpha) * rgb + alpha * MASK_COLOR, rgb)
    out[:, :, 2 * w + 2:] = colored
    return out


def sprite_sheet(strips, columns: int = SHEET_COLUMNS) -> np.ndarray:
    """`(n, h, w, 3)` strips -> one `(rows * (h + 1), columns * (w + 1), 3)` image, row-major."""
    n, h, w = strips.shape[:3]
    rows = max(1, -(-n // columns))
    sheet = np.ones((rows * (h + 1), columns * (w + 1), 3), np.float32)
    for i, strip in enumerate(strips):
        r, c = divmod(i, columns)
        sheet[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = strip
    return sheet


def _sheet_uri(sheet) -> str:
    buf = io.BytesIO()
    plt.imsave(buf, np.clip(sheet, 0, 1), format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plot_margins(margin, correct, ax=None):
    """Histogram of the margin, correct and misclassified images stacked. Returns `ax`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 2.6))
    finite = np.isfinite(margin)
    bins = np.histogram_bin_edges(margin[finite], bins=40) if finite.any() else 10
    ax.hist([margin[finite & correct], margin[finite & ~correct]], bins=bins, stacked=True,
            color=["#4c72b0", "#dd4444"], label=["correct", "misclassified"])
    ax.set_xlabel("margin: distance to the 2nd-nearest prototype minus to the nearest")
    ax.set_ylabel("images")
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_class_means(results, class_names, axes=None):
    """Per explained class: the share of images whose mask holds each pixel, and the mean signed change.

    Args:
        results: a `shards.SplitResults` (`shards.load_split_results`).
        class_names: the C names.
        axes: `(2, C)` matplotlib Axes, or None for a new figure.

    Returns:
        The `(2, C)` Axes.
    """
    c = len(class_names)
    if axes is None:
        _, axes = plt.subplots(2, c, figsize=(1.25 * c + 0.6, 3.1), squeeze=False, layout="constrained")
    axes = np.asarray(axes, dtype=object).reshape(2, c)
    for k in range(c):
        members = results.explained_class == k
        shape = results.mask.shape[1:3]
        mask = results.mask[members].any(axis=-1).mean(axis=0) if members.any() else np.zeros(shape)
        change = results.mean_signed_change[members].mean(axis=(0, -1)) if members.any() else np.zeros(shape)
        bound = float(np.abs(change).max()) or 1.0
        axes[0, k].imshow(mask, cmap="magma", vmin=0, vmax=max(float(mask.max()), 1e-9), interpolation="nearest")
        axes[1, k].imshow(change, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        # a class name is data, never mathtext; wrapped here, as matplotlib's wrap=True would parse it
        name = textwrap.fill(str(class_names[k]), 20, break_long_words=True, max_lines=3, placeholder=" ...")
        axes[0, k].set_title(f"{name}\n(n={int(members.sum())})", fontsize=8, parse_math=False)
        for ax in axes[:, k]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("mean mask", fontsize=8)
    axes[1, 0].set_ylabel("mean signed\nchange", fontsize=8)
    return axes


def _load_images(manifest, index, data_dir):
    """The explained images, from the manifest's source, checked against its SHA-256."""
    source = sources.from_description(manifest.get("source"), data_dir)
    images, labels = source.load()
    images = np.asarray(images, np.float32).reshape((-1,) + tuple(manifest["image_shape"]))
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(np.asarray(labels, np.int64)).tobytes())
    if digest.hexdigest() != manifest["images_sha256"]:
        raise ValueError(f"the images of source {manifest.get('source')!r} differ from those the folder's manifest "
                         "records (images_sha256): the data changed since the folder was computed")
    return images[index]


def _table(rows, header, shade=None) -> str:
    top = float(np.max(shade)) if shade is not None and np.size(shade) else 0.0
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
    for r, row in enumerate(rows):
        cells = [f"<th>{html.escape(str(row[0]))}</th>"]
        for c, value in enumerate(row[1:]):
            style = ""
            if shade is not None and top > 0:
                style = f' style="background: rgba(76,114,176,{0.85 * shade[r][c] / top:.3f})"'
            cells.append(f"<td{style}>{html.escape(str(value))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def write_report(split_dir, out=None, *, data_dir=None, limit: int | None = None) -> Path:
    """Writes the gallery page of an explain-split folder.

    Args:
        split_dir: the folder (`shards.explain_split` or `beam.explain_split_beam`).
        out: the HTML file (default `split_dir/report.html`).
        data_dir: MNIST's location, for a folder of MNIST images (None: `TFDS_DATA_DIR`).
        limit: the gallery holds the `limit` images with the smallest margin
            (misclassified ones first); None holds every image. The summary
            always counts every image.

    Returns:
        The page's path.

    Raises:
        FileNotFoundError: not a finished explain-split folder.
        ValueError: the images its source gives differ from those it was computed on.
    """
    split_dir = Path(split_dir)
    results = shards.load_split_results(split_dir)
    manifest = results.manifest
    num_classes = results.distances.shape[1]
    names = list(results.class_names)
    summary = summarize(results, num_classes)
    margin, distance = summary["margin"], summary["distance"]
    wrong = (results.label >= 0) & (results.label != results.predicted_class)
    order = np.arange(len(margin))
    if limit is not None:
        order = np.lexsort((margin, ~wrong))[:limit]  # misclassified first, then by margin
        order.sort()
    images = _load_images(manifest, results.index[order], data_dir)
    sheet = sprite_sheet(tiles(images, results.mask[order], results.mean_signed_change[order]))
    h, w = manifest["image_shape"][:2]

    items = [[int(results.index[i]), int(results.label[i]), int(results.predicted_class[i]),
              round(float(margin[i]), 5), round(float(distance[i]), 5), j] for j, i in enumerate(order)]
    correct = ~wrong
    counts = [[names[k], int(summary["true_counts"][k]), int(summary["predicted_counts"][k])] for k in range(num_classes)]
    confusion = [[names[k]] + summary["confusion"][k].tolist() for k in range(num_classes)]
    config = manifest.get("explain_config", {})
    page = _PAGE.format(
        title=html.escape(f"Explanations of {manifest['num_images']} images"),
        meta=html.escape(f"run {manifest['run_id']} · source {json.dumps(manifest.get('source'))} · estimator "
                         f"{config.get('estimator', config.get('method'))} · s={config.get('s')} q={config.get('q')} "
                         f"N={config.get('n_perturbations', config.get('n_path_points'))} · seed {manifest['seed']}"),
        accuracy="n/a" if np.isnan(summary["accuracy"]) else f"{100 * summary['accuracy']:.2f} %",
        num_wrong=int(wrong.sum()),
        counts=_table(counts, ["class", "true", "predicted"]),
        confusion=_table(confusion, ["true \\ predicted"] + list(names), shade=summary["confusion"]),
        margins=_png(plot_margins(margin, correct).figure),
        means=_png(plot_class_means(results, names)[0, 0].figure),
        class_options="".join(f'<option value="{k}">{html.escape(n)}</option>' for k, n in enumerate(names)),
        shown_note=("every image" if limit is None else f"the {len(order)} images nearest the boundary "
                    "(misclassified first)"),
        sheet=_sheet_uri(sheet),
        data=json.dumps({"items": items, "names": list(names), "columns": SHEET_COLUMNS, "tile": [3 * w + 2, h],
                         "pageSize": PAGE_SIZE}),
    )
    out = split_dir / REPORT_FILE if out is None else Path(out)
    with files.atomic_path(out, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="icon" href="data:,">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 2em; color: #222; }}
h1 {{ font-size: 1.4em; margin-bottom: 0.1em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; }}
.meta {{ color: #666; font-size: 0.9em; }}
.row {{ display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; }}
img.plot {{ max-width: 100%; }}
#controls {{ position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; z-index: 1; }}
#controls label {{ margin-right: 1em; }}
#gallery {{ display: flex; flex-wrap: wrap; gap: 8px; margin-top: 0.8em; }}
.item {{ border: 2px solid #ccc; padding: 3px; font-size: 11px; }}
.item.wrong {{ border-color: #d33; }}
.tile {{ background-image: url({sheet}); image-rendering: pixelated; }}
</style></head>
<body>
<h1>{title}</h1>
<div class="meta">{meta}</div>
<h2>Summary</h2>
<p>Nearest-prototype accuracy {accuracy}; {num_wrong} misclassified.</p>
<div class="row">
<div><h3>Counts per class</h3>{counts}</div>
<div><h3>Confusion (rows: true class, columns: predicted)</h3>{confusion}</div>
</div>
<h3>Margin distribution</h3>
<img class="plot" alt="margin histogram" src="{margins}">
<h2>Per class: mean mask and mean signed change</h2>
<img class="plot" alt="per-class means" src="{means}">
<h2>Gallery</h2>
<p class="meta">Each item: the input, the input with its mask (red), the signed mean change (red: brighter, blue:
darker). Red frame: misclassified. The gallery holds {shown_note}.</p>
<div id="controls">
<label>true <select id="true"><option value="">all</option>{class_options}</select></label>
<label>predicted <select id="pred"><option value="">all</option>{class_options}</select></label>
<label>sort <select id="sort">
<option value="index">position</option><option value="margin-asc">margin, smallest first</option>
<option value="margin-desc">margin, largest first</option><option value="dist-asc">distance, smallest first</option>
<option value="dist-desc">distance, largest first</option></select></label>
<label>margin below <input id="maxmargin" type="number" step="any" min="0" style="width: 6em"></label>
<label><input id="wrong" type="checkbox"> misclassified only</label>
<button id="near" type="button">near the boundary</button>
<button id="reset" type="button">reset</button>
<span id="count"></span>
</div>
<div id="gallery"></div>
<p><button id="more" type="button">more</button></p>
<script>
"use strict";
const DATA = {data};
const SCALE = 2;
const el = (id) => document.getElementById(id);
let shown = DATA.pageSize;
function current() {{
  const t = el("true").value, p = el("pred").value, wrongOnly = el("wrong").checked;
  const maxMargin = el("maxmargin").value === "" ? Infinity : Number(el("maxmargin").value);
  let rows = DATA.items.filter((r) => (t === "" || r[1] === Number(t)) && (p === "" || r[2] === Number(p))
    && (!wrongOnly || (r[1] >= 0 && r[1] !== r[2])) && r[3] <= maxMargin);
  const [key, dir] = el("sort").value.split("-");
  const col = {{index: 0, margin: 3, dist: 4}}[key];
  const sign = dir === "desc" ? -1 : 1;
  rows.sort((a, b) => sign * (a[col] - b[col]) || a[0] - b[0]);
  return rows;
}}
function render() {{
  const rows = current();
  const [tw, th] = DATA.tile;
  const parts = rows.slice(0, shown).map((r) => {{
    const x = (r[5] % DATA.columns) * (tw + 1) * SCALE, y = Math.floor(r[5] / DATA.columns) * (th + 1) * SCALE;
    const truth = r[1] >= 0 ? DATA.names[r[1]] : "?";
    const wrong = r[1] >= 0 && r[1] !== r[2];
    return `<div class="item${{wrong ? " wrong" : ""}}" data-index="${{r[0]}}" data-true="${{r[1]}}" data-pred="${{r[2]}}"` +
      ` data-margin="${{r[3]}}" data-dist="${{r[4]}}"><div class="tile" style="width:${{tw * SCALE}}px;height:${{th * SCALE}}px;` +
      `background-position:-${{x}}px -${{y}}px;background-size:${{DATA.columns * (tw + 1) * SCALE}}px auto"></div>` +
      `<div>#${{r[0]}} true ${{truth}} &rarr; ${{DATA.names[r[2]]}}</div><div>margin ${{r[3].toFixed(3)}} · d ${{r[4].toFixed(3)}}</div></div>`;
  }});
  el("gallery").innerHTML = parts.join("");
  el("count").textContent = `${{Math.min(shown, rows.length)}} of ${{rows.length}} shown`;
  el("more").style.display = rows.length > shown ? "" : "none";
}}
function changed() {{ shown = DATA.pageSize; render(); }}
for (const id of ["true", "pred", "sort", "wrong"]) el(id).addEventListener("change", changed);
el("maxmargin").addEventListener("input", changed);
el("near").addEventListener("click", () => {{ el("sort").value = "margin-asc"; changed(); }});
el("reset").addEventListener("click", () => {{
  el("true").value = ""; el("pred").value = ""; el("sort").value = "index"; el("maxmargin").value = "";
  el("wrong").checked = false; changed();
}});
el("more").addEventListener("click", () => {{ shown += DATA.pageSize; render(); }});
render();
</script>
</body></html>
"""
