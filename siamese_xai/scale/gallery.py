"""A static HTML gallery of an explain-split folder: one self-contained page, no server, no network.

`write_report(split_dir)` reads the folder's shards (`shards.load_split_results`)
and the images its manifest's `source` names (checked against the manifest's
SHA-256), and writes one HTML file holding:

- the summary: counts per true and per predicted class, the confusion of the
  nearest-prototype decision (rows: true class, columns: predicted), and the
  distribution of the margin;
- per class (the explained class) the mean mask (the share of images whose
  mask holds each pixel) and the mean of the estimator's signed map;
- a gallery of every explanation (input, input with its mask, signed map),
  sortable and filterable by true class, predicted class, margin and distance,
  with "misclassified" and "near the boundary" one click away.

A folder of any estimator reads the same way: the signed map is the one its
result class names (`BatchResult.MAP_FIELD`: the decoder estimators' mean
signed change, the probe's measured margin drop), and where the folder holds a
found set's size and flip (the probe's `set_size`, `flips`), each item says
them.

The margin of an image is the distance to the second-nearest prototype minus
the distance to the nearest (the predicted class): small margins lie near the
decision boundary. The distance is the one to the predicted class's prototype.

Images are PNGs drawn with matplotlib and embedded as data URIs; the gallery's
tiles are one sprite sheet, so a page of 10,000 explanations is one image.
The page's script only sorts, filters and pages the items. A folder of pairs
(`explain-split --pairs`) has its own page: `siamese_xai.scale.pair_gallery`.

Class names, paths and run ids are data, never markup or code: they are
escaped where they enter HTML (`html.escape`), written with `page.script_json`
into the JSON the script reads, and shown by the script through `textContent`.
A Content-Security-Policy (`page.content_security_policy`) lets only the page's
own script and stylesheet run (by hash) and only data: images load (docs/escaping.md).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from siamese_xai import files
from siamese_xai.scale import pair_shards, shards
from siamese_xai.scale.page import SCRIPT_END, document
from siamese_xai.data import sources  # noqa: E402
from siamese_xai.explainers.questions import runner_up  # noqa: E402

REPORT_FILE = "report.html"
PAGE_SIZE = 120  # gallery items drawn at once; "more" adds as many again
SHEET_COLUMNS = 40  # tiles per row of the sprite sheet
MASK_COLOR = np.array([1.0, 0.15, 0.1])
SHADES = 20  # levels of the confusion table's shading


def margins(distances) -> np.ndarray:
    """`(n, C)` distances to the prototypes -> `(n,)` the runner-up's distance minus the nearest's (>= 0)."""
    d = np.asarray(distances, np.float64)
    if d.ndim != 2 or d.shape[1] < 2:
        return np.full(len(d), np.inf)
    rows, nearest = np.arange(len(d)), d.argmin(1)
    return d[rows, runner_up(d, nearest)] - d[rows, nearest]


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


def gray_rgb(image):
    """`(H, W, C)` in [0, 1] -> `(H, W, 3)`."""
    image = np.clip(np.asarray(image, np.float32), 0, 1)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]


# The signed maps a folder's result class may name (`MAP_FIELD`), as the page names them:
# (the per-class row's label, the gallery's words for it).
MAP_TITLES = {
    "mean_signed_change": ("mean signed\nchange", "the signed mean change (red: brighter, blue: darker)"),
    "drop_map": ("mean margin\ndrop", "the margin drop f measured per region (red: evidence for the explained "
                 "decision, blue: against it)"),
}


def signed_map(results) -> np.ndarray:
    """`(n, H, W, C)` the folder's signed map: the field its estimator's result class names (`MAP_FIELD`)."""
    return getattr(results, results.result_class.MAP_FIELD)


def map_titles(results) -> tuple:
    """The folder's signed map as the page names it: (the per-class row's label, the gallery's words) (`MAP_TITLES`)."""
    field = results.result_class.MAP_FIELD
    return MAP_TITLES.get(field, (field.replace("_", " "), field.replace("_", " ")))


def tiles(images, masks, signed_changes, alpha: float = 0.7) -> np.ndarray:
    """Each explanation as one RGB strip: input | input with the mask | signed map (red +, blue -).

    Args:
        images: `(n, H, W, C)` in [0, 1].
        masks: `(n, H, W, C)` bool.
        signed_changes: `(n, H, W, C)` the signed map (`signed_map`); each is
            scaled by its own largest |value|.

    Returns:
        `(n, H, 3 W + 2, 3)` float32 in [0, 1], a one-pixel white gap between panels.
    """
    n, h, w = images.shape[:3]
    out = np.ones((n, h, 3 * w + 2, 3), np.float32)
    rgb = np.stack([gray_rgb(x) for x in images]) if n else np.zeros((0, h, w, 3), np.float32)
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


def sheet_uri(sheet) -> str:
    """`(h, w, 3)` in [0, 1] -> the PNG as a data URI (the pages' one sprite sheet)."""
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
    """Per explained class: the share of images whose mask holds each pixel, and the mean signed map (`signed_map`).

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
    signed = signed_map(results)
    for k in range(c):
        members = results.explained_class == k
        shape = results.mask.shape[1:3]
        mask = results.mask[members].any(axis=-1).mean(axis=0) if members.any() else np.zeros(shape)
        change = signed[members].mean(axis=(0, -1)) if members.any() else np.zeros(shape)
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
    axes[1, 0].set_ylabel(map_titles(results)[0], fontsize=8)
    return axes


def load_images(manifest, index, data_dir):
    """`(len(index), *shards.item_shape(manifest))` the explained items (images, or pairs), from the manifest's
    source, checked against its SHA-256."""
    source = sources.from_description(manifest.get("source"), data_dir)
    images, labels = source.load()
    images = np.asarray(images, np.float32).reshape((-1,) + shards.item_shape(manifest))
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
            level = int(round(SHADES * shade[r][c] / top)) if shade is not None and top > 0 else 0
            style = f' class="shade{level}"' if level else ""  # a class: the page's CSP allows no style attribute
            cells.append(f"<td{style}>{html.escape(str(value))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _finite(value):
    """A number for the page's JSON: rounded, None (null, read as Infinity) where not finite (one class)."""
    return round(float(value), 5) if np.isfinite(value) else None


def _config_text(config: dict) -> str:
    """An estimator's parameters as one line: `name=value ...` (N for the decoded codes, as in the paper)."""
    short = {"n_perturbations": "N", "n_path_points": "N"}
    return " ".join(f"{short.get(k, k)}={v}" for k, v in config.items() if k != "estimator")


def _found(results, i):
    """What item i's found set did, where the folder holds one (the probe's `set_size`, `flips`), else None."""
    if getattr(results, "set_size", None) is None or getattr(results, "flips", None) is None:
        return None
    size = int(results.set_size[i])
    return f"{size} region{'' if size == 1 else 's'} painted {'flip' if results.flips[i] else 'do not flip'} f"


def meta_text(manifest: dict) -> str:
    """A folder's provenance as one line of text: its run, source, estimator, parameters and seed."""
    config = manifest.get("explain_config", {})
    return (f"run {manifest['run_id']} · source {_source_text(manifest.get('source'))} · estimator "
            f"{config.get('estimator', config.get('method'))} · {_config_text(config)} · seed {manifest['seed']}")


def _source_text(source) -> str:
    """A manifest's `source` as one line of text, paths as written: `key: value, ...`."""
    if not isinstance(source, dict):
        return str(source)
    return ", ".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in source.items())


def write_report(split_dir, out=None, *, data_dir=None, limit: int | None = None) -> Path:
    """Writes the gallery page of an explain-split folder.

    Args:
        split_dir: the folder (`shards.explain_split` or `beam.explain_split_beam`).
        out: the HTML file (default `split_dir/report.html`).
        data_dir: MNIST's (or a tfds set's) location, for a folder of their images (None: the one the
            manifest records, else `TFDS_DATA_DIR`).
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
    if pair_shards.holds_pairs(manifest):
        raise ValueError(f"{str(split_dir)!r} explains a list of pairs (--pairs): its page is "
                         "pair_gallery.write_pair_report's (`siamese-xai report` picks it)")
    num_classes = results.distances.shape[1]
    names = list(results.class_names)
    summary = summarize(results, num_classes)
    margin, distance = summary["margin"], summary["distance"]
    wrong = (results.label >= 0) & (results.label != results.predicted_class)
    order = np.arange(len(margin))
    if limit is not None:
        order = np.lexsort((margin, ~wrong))[:limit]  # misclassified first, then by margin
        order.sort()
    images = load_images(manifest, results.index[order], data_dir)
    sheet = sprite_sheet(tiles(images, results.mask[order], signed_map(results)[order]))
    h, w = manifest["image_shape"][:2]

    items = [[int(results.index[i]), int(results.label[i]), int(results.predicted_class[i]),
              _finite(margin[i]), _finite(distance[i]), j, _found(results, i)] for j, i in enumerate(order)]
    correct = ~wrong
    counts = [[names[k], int(summary["true_counts"][k]), int(summary["predicted_counts"][k])] for k in range(num_classes)]
    confusion = [[names[k]] + summary["confusion"][k].tolist() for k in range(num_classes)]
    style = STYLE.format(sheet=sheet_uri(sheet), shades="\n".join(
        f".shade{i} {{ background: rgba(76,114,176,{0.85 * i / SHADES:.3f}); }}" for i in range(1, SHADES + 1)))
    body = _BODY.format(
        map_words=html.escape(map_titles(results)[1]),
        accuracy="n/a" if np.isnan(summary["accuracy"]) else f"{100 * summary['accuracy']:.2f} %",
        num_wrong=int(wrong.sum()),
        counts=_table(counts, ["class", "true", "predicted"]),
        confusion=_table(confusion, ["true \\ predicted"] + list(names), shade=summary["confusion"]),
        margins=_png(plot_margins(margin, correct).figure),
        means=_png(plot_class_means(results, names)[0, 0].figure),
        class_options="".join(f'<option value="{k}">{html.escape(n)}</option>' for k, n in enumerate(names)),
        shown_note=("every image" if limit is None else f"the {len(order)} images nearest the boundary "
                    "(misclassified first)"),
    )
    page = document(title=f"Explanations of {manifest['num_images']} images", meta=meta_text(manifest), style=style,
                    body=body, data={"items": items, "names": list(names), "columns": SHEET_COLUMNS,
                                     "tile": [3 * w + 2, h], "pageSize": PAGE_SIZE}, script=_SCRIPT)
    out = split_dir / REPORT_FILE if out is None else Path(out)
    with files.atomic_path(out, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


# The pages' stylesheet (`siamese_xai.scale.pair_gallery` adds its own rules): `{sheet}` the sprite sheet.
STYLE = """
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 2em; color: #222; }}
h1 {{ font-size: 1.4em; margin-bottom: 0.1em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; }}
.meta {{ color: #666; font-size: 0.9em; overflow-wrap: anywhere; }}
.row {{ display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: right; overflow-wrap: anywhere; max-width: 20em; }}
{shades}
img.plot {{ max-width: 100%; }}
#controls {{ position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ddd; z-index: 1; }}
#controls label {{ margin-right: 1em; }}
#controls select {{ max-width: 16em; }}
#maxmargin {{ width: 6em; }}
#gallery {{ display: flex; flex-wrap: wrap; gap: 8px; margin-top: 0.8em; }}
.item {{ border: 2px solid #ccc; padding: 3px; font-size: 11px; width: min-content; min-width: 24em;
  overflow-wrap: anywhere; }}
.item.wrong {{ border-color: #d33; }}
.tile {{ background-image: url({sheet}); image-rendering: pixelated; }}
"""

# Every string from the data enters the page as text: the Python side escapes it for HTML (html.escape), the
# JSON for the script is script_json's, and the script builds the gallery from DOM nodes and textContent.
# The pages' script begins with these: the data, an element by id, a div of text, the sprite sheet's tile `place`.
SCRIPT_HELPERS = """
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const SCALE = 2;
const el = (id) => document.getElementById(id);
function div(className, text) {
  const node = document.createElement("div");
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
function tile(place) {
  const [tw, th] = DATA.tile;
  const x = (place % DATA.columns) * (tw + 1) * SCALE, y = Math.floor(place / DATA.columns) * (th + 1) * SCALE;
  const node = div("tile");
  Object.assign(node.style, {width: `${tw * SCALE}px`, height: `${th * SCALE}px`,
    backgroundPosition: `-${x}px -${y}px`, backgroundSize: `${DATA.columns * (tw + 1) * SCALE}px auto`});
  return node;
}
"""
_SCRIPT = SCRIPT_HELPERS + """
for (const r of DATA.items) for (const col of [3, 4]) if (r[col] === null) r[col] = Infinity;
let shown = DATA.pageSize;
function current() {
  const t = el("true").value, p = el("pred").value, wrongOnly = el("wrong").checked;
  const maxMargin = el("maxmargin").value === "" ? Infinity : Number(el("maxmargin").value);
  let rows = DATA.items.filter((r) => (t === "" || r[1] === Number(t)) && (p === "" || r[2] === Number(p))
    && (!wrongOnly || (r[1] >= 0 && r[1] !== r[2])) && r[3] <= maxMargin);
  const [key, dir] = el("sort").value.split("-");
  const col = {index: 0, margin: 3, dist: 4}[key];
  const sign = dir === "desc" ? -1 : 1;
  rows.sort((a, b) => sign * (a[col] - b[col]) || a[0] - b[0]);
  return rows;
}
function item(r) {
  const truth = r[1] >= 0 ? DATA.names[r[1]] : "?";
  const node = div(r[1] >= 0 && r[1] !== r[2] ? "item wrong" : "item");
  Object.assign(node.dataset, {index: r[0], true: r[1], pred: r[2], margin: r[3], dist: r[4]});
  node.append(tile(r[5]), div("", `#${r[0]} true ${truth} \\u2192 ${DATA.names[r[2]]}`),
    div("", `margin ${r[3].toFixed(3)} \\u00b7 d ${r[4].toFixed(3)}`));
  if (r[6] !== null) node.append(div("found", r[6]));
  return node;
}
function changed() { shown = DATA.pageSize; render(); }
for (const id of ["true", "pred", "sort", "wrong"]) el(id).addEventListener("change", changed);
el("maxmargin").addEventListener("input", changed);
el("near").addEventListener("click", () => { el("sort").value = "margin-asc"; changed(); });
el("reset").addEventListener("click", () => {
  el("true").value = ""; el("pred").value = ""; el("sort").value = "index"; el("maxmargin").value = "";
  el("wrong").checked = false; changed();
});
""" + SCRIPT_END

# The page's body (`page.document` adds the frame); `{...}` the pieces `write_report` writes.
_BODY = """<h2>Summary</h2>
<p>Nearest-prototype accuracy {accuracy}; {num_wrong} misclassified.</p>
<div class="row">
<div><h3>Counts per class</h3>{counts}</div>
<div><h3>Confusion (rows: true class, columns: predicted)</h3>{confusion}</div>
</div>
<h3>Margin distribution</h3>
<img class="plot" alt="margin histogram" src="{margins}">
<h2>Per class: mean mask and mean signed map</h2>
<img class="plot" alt="per-class means" src="{means}">
<h2>Gallery</h2>
<p class="meta">Each item: the input, the input with its mask (red), {map_words}. Red frame: misclassified. The
gallery holds {shown_note}.</p>
<div id="controls">
<label>true <select id="true"><option value="">all</option>{class_options}</select></label>
<label>predicted <select id="pred"><option value="">all</option>{class_options}</select></label>
<label>sort <select id="sort">
<option value="index">position</option><option value="margin-asc">margin, smallest first</option>
<option value="margin-desc">margin, largest first</option><option value="dist-asc">distance, smallest first</option>
<option value="dist-desc">distance, largest first</option></select></label>
<label>margin below <input id="maxmargin" type="number" step="any" min="0"></label>
<label><input id="wrong" type="checkbox"> misclassified only</label>
<button id="near" type="button">near the boundary</button>
<button id="reset" type="button">reset</button>
<span id="count"></span>
</div>"""
