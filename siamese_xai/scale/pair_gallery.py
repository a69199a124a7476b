"""The `report` page of a list of pairs (`explain-split --pairs CSV`): one self-contained page, no server, no network.

`write_pair_report(split_dir)` reads the folder's shards and the pair list its
manifest names (`siamese_xai.data.sources.PairListSource`; the images checked
against the manifest's SHA-256 by `gallery.load_images`, as for a split) and
writes one HTML file. Each image of each pair was explained toward the other
(`siamese_xai.scale.shards`), so each item draws two rows, the first image's
and the second's:

- the image, the image with its mask (red), and its signed map
  (`gallery.signed_map`: for the decoder estimators the mean signed change as
  the embedding moves toward the other image's; for the probe the drop of
  the question's margin measured per region painted from the other image);
- the counterfactual, where the folder's estimator holds a found set (the
  probe's): the image with its mask's pixels painted as the probe painted
  them, from the other image where the change moves the two together, with
  the image's blur where it moves them apart (an accepted pair). The shard
  keeps the mask, not the painted image; the two images and the mask give it
  back exactly (`counterfactuals`).

Each item says the two files as the pair list names them (`pair_names`), the
class of each image's nearest prototype, the distance d(f(first), f(second))
(`pair_distance`) and, where the folder was explained with a threshold tau
(`explain-split --threshold`), the verdict: same where d <= tau, else
different. Where the folder holds a found set (the probe's), each row says its
size and f calls and, with a threshold, whether painting it flips the verdict
(the probe was asked `Verify`); without one a pair question has no verdict to
flip, and the page says so.

Names and paths are data: escaped for HTML (`html.escape`), written for the
script with `page.script_json`, shown through `textContent`, under the same
Content-Security-Policy as the split's page (`page.document`; docs/escaping.md).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from siamese_xai import files
from siamese_xai.data import sources
from siamese_xai.explainers import regions
from siamese_xai.scale import gallery, pair_shards, shards
from siamese_xai.scale.page import SCRIPT_END, document

# What the third panel of each row shows, by the folder's map field (`BatchResult.MAP_FIELD`), in a pair's words.
MAP_WORDS = {
    "mean_signed_change": "its mean signed change as its embedding moves toward the other image's (red: brighter, "
                          "blue: darker)",
    "drop_map": "the drop of {margin} measured per region of the image painted from the other (red: the region "
                "holds some of it, blue: painting it raises it)",
}
# What the probe's margin is, by the manifest's question.
MARGIN_WORDS = {"pair": "the distance", "verify": "the verdict's margin |d - tau|"}


def holds_pairs(split_dir) -> bool:
    """Whether an explain-split folder explains a list of pairs (`pair_shards.holds_pairs` of its manifest)."""
    path = Path(split_dir) / shards.MANIFEST_FILE
    return path.is_file() and pair_shards.holds_pairs(files.read_json(path))


def pair_names(source) -> list:
    """`[(first, second)]` each pair's two files as its list names them (relative to the list's folder where inside it).

    Args:
        source: a `sources.PairListSource`.
    """
    folder = os.path.dirname(os.path.abspath(source.path)) + os.sep
    return [tuple(p.removeprefix(folder) for p in paths) for _, *paths in source.rows()]


def counterfactuals(results, pairs):
    """`(n, 2, H, W, C)` each image of each pair with its found set painted as the probe painted it, or None.

    Args:
        results: a pair folder's `shards.SplitResults`.
        pairs: `(n, 2, H, W, C)` its pairs in [0, 1], in the order of `results.index`.

    Returns:
        The probe's `counterfactual` of each image, given back from the two
        images and its mask: the found set's cells painted with the proposal
        it was painted with, the other image ("other"; what "auto" is for a
        `Pair`, and for a `Verify` the pair rejected: the change moves the
        two together) or the image blurred by its cell size ("blur"; what
        "auto" is for a `Verify` the pair accepted: the change moves them
        apart). None where the folder holds no found set or painted with
        another proposal.
    """
    kinds = painted_with(results)
    if kinds is None or not np.isin(kinds, ("other", "blur")).all():
        return None
    pairs = np.clip(np.asarray(pairs, np.float32), 0, 1)
    cell = shards.config_from_dict(results.manifest["explain_config"]).cell_for(tuple(results.image_shape))
    blurred = regions.smoothed(pairs.reshape((-1,) + pairs.shape[2:]), float(cell)).reshape(pairs.shape)
    blur = (kinds == "blur")[(...,) + (None,) * (pairs.ndim - 2)]
    paint = np.where(blur, np.clip(blurred, 0, 1), pairs[:, ::-1])
    return np.where(results.mask, paint, pairs).astype(np.float32)


def painted_with(results):
    """`(n, 2)` the proposal each image's found set was painted with (`ProbeConfig.proposal`, "auto" resolved as
    the pair questions resolve it), or None where the folder holds no found set."""
    proposal = results.manifest.get("explain_config", {}).get("proposal")
    if getattr(results, "set_size", None) is None:
        return None
    n = len(results)
    if proposal != "auto":
        return np.full((n, 2), proposal, object)
    manifest = results.manifest
    accepted = (results.pair_distance <= manifest["threshold"] if manifest["question"] == "verify"
                else np.zeros(n, bool))
    config = manifest["explain_config"]
    blur = "mean" if config.get("infill") == "mean" and config.get("examples_per_class") else "blur"
    return np.repeat(np.where(accepted, blur, "other")[:, None], 2, axis=1).astype(object)


def pair_tiles(pairs, masks, maps, painted=None) -> np.ndarray:
    """Each pair as one RGB tile of two rows, the first image's and the second's: image | with its mask | its map
    [| its counterfactual].

    Args:
        pairs: `(n, 2, H, W, C)` in [0, 1].
        masks, maps: `(n, 2, H, W, C)` each image's mask and signed map (`gallery.tiles`).
        painted: `(n, 2, H, W, C)` the counterfactuals, or None (three panels a row).

    Returns:
        `(n, 2 H + 1, P W + P - 1, 3)` float32 in [0, 1], P = 4 or 3 panels, a one-pixel white gap between panels
        and between the rows.
    """
    n, _, h, w = pairs.shape[:4]
    rows = []
    for role in (0, 1):
        parts = [gallery.tiles(pairs[:, role], masks[:, role], maps[:, role])]
        if painted is not None:
            parts += [np.ones((n, h, 1, 3), np.float32), np.stack([gallery.gray_rgb(x) for x in painted[:, role]])
                      if n else np.zeros((0, h, w, 3), np.float32)]
        rows.append(np.concatenate(parts, axis=2))
    return np.concatenate([rows[0], np.ones((n, 1) + rows[0].shape[2:], np.float32), rows[1]], axis=1)


def verdict(distance: float, threshold) -> str:
    """The pair's verdict at the threshold as the page says it: `same: d 0.41 <= tau 0.5`, or the distance alone."""
    if threshold is None:
        return f"d {distance:.4g} (no threshold given: no verdict)"
    same, tau = distance <= threshold, "\u03c4"
    return f"{'same' if same else 'different'}: d {distance:.4g} {'<=' if same else '>'} {tau} {threshold:.4g}"


def _found(results, i, role) -> str | None:
    """What the found set of image `role` of pair i did (the probe's), else None."""
    if getattr(results, "set_size", None) is None:
        return None
    size, calls = int(results.set_size[i, role]), int(results.n_calls[i, role])
    regions = f"{size} region{'' if size == 1 else 's'}"
    if results.manifest.get("question") == "verify":
        flips = "flips" if results.flips[i, role] else "does not flip"
        how = "blurring" if painted_with(results)[i, role] == "blur" else "painting from the other image"
        return f"{how} {regions} {flips} the verdict ({calls} f calls)"
    return f"{regions} hold{'s' if size == 1 else ''} some of the distance ({calls} f calls)"


def write_pair_report(split_dir, out=None, *, limit: int | None = None) -> Path:
    """Writes the page of an explain-split folder of pairs (module docstring: what it draws).

    Args:
        split_dir: the folder (`explain-split --pairs`, `shards.explain_split(..., pairs=True)`).
        out: the HTML file (default `split_dir/report.html`).
        limit: the page holds the first `limit` pairs; None holds every pair.

    Returns:
        The page's path.

    Raises:
        FileNotFoundError: not a finished explain-split folder.
        ValueError: not a folder of pairs, or the pair list's images differ from those it was computed on.
    """
    split_dir = Path(split_dir)
    results = shards.load_split_results(split_dir)
    manifest = results.manifest
    if not pair_shards.holds_pairs(manifest):
        raise ValueError(f"`split_dir` must be a folder of pairs (explain-split --pairs). Received: {str(split_dir)!r}, "
                         "a split's folder: its page is gallery.write_report's")
    results = results[: len(results) if limit is None else limit]
    pairs = gallery.load_images(manifest, results.index, None)
    names = pair_names(sources.from_description(manifest["source"]))
    painted = counterfactuals(results, pairs)
    sheet = gallery.sprite_sheet(pair_tiles(pairs, results.mask, gallery.signed_map(results), painted))
    h, w = manifest["image_shape"][:2]
    panels = 3 if painted is None else 4
    threshold = manifest.get("threshold")
    question = manifest["question"]
    items = [[int(k), *names[int(k)], [int(c) for c in results.predicted_class[i]],
              round(float(results.pair_distance[i]), 5), verdict(float(results.pair_distance[i]), threshold), i,
              [_found(results, i, 0), _found(results, i, 1)]]
             for i, k in enumerate(results.index)]
    style = gallery.STYLE.format(sheet=gallery.sheet_uri(sheet), shades="") + _PAIR_STYLE
    field = results.result_class.MAP_FIELD
    map_words = MAP_WORDS.get(field, gallery.map_titles(results)[1]).format(margin=MARGIN_WORDS[question])
    asked = ("each image was asked why f finds the pair the same or different at the threshold \u03c4 = "
             f"{threshold:.4g} (same where d \u2264 \u03c4)" if threshold is not None else
             "each image was asked why it lies at its distance from the other; no threshold was given "
             "(explain-split --threshold), so the page gives the distance and no same / different verdict")
    body = _BODY.format(
        asked=html.escape(asked),
        map_words=html.escape(map_words),
        painted_words="" if painted is None else (" | its counterfactual: the image with its found set painted from "
                                                  "the other image where the change brings the two together, blurred "
                                                  "where it moves them apart (a pair found the same)"),
    )
    page = document(title=f"Explanations of {len(results)} pairs", meta=gallery.meta_text(manifest), style=style,
                    body=body, data={"items": items, "names": [str(c) for c in results.class_names],
                                     "columns": gallery.SHEET_COLUMNS, "tile": [panels * w + panels - 1, 2 * h + 1],
                                     "pageSize": gallery.PAGE_SIZE}, script=_SCRIPT)
    out = split_dir / gallery.REPORT_FILE if out is None else Path(out)
    with files.atomic_path(out, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


_PAIR_STYLE = """
.item.pair.same { border-color: #3a3; }
"""

# An item: [position, first file, second file, [each image's nearest class], distance, verdict text, place,
# [what each image's found set did, or null]].
_SCRIPT = gallery.SCRIPT_HELPERS + """
let shown = DATA.pageSize;
function current() {
  const [key, dir] = el("sort").value.split("-"), sign = dir === "desc" ? -1 : 1;
  return DATA.items.slice().sort((a, b) => (key === "dist" ? sign * (a[4] - b[4]) : 0) || a[0] - b[0]);
}
function item(r) {
  const node = div(r[5].startsWith("same") ? "item pair same" : "item pair");
  Object.assign(node.dataset, {index: r[0], dist: r[4]});
  node.append(tile(r[6]), div("verdict", `#${r[0]} ${r[5]}`));
  for (const role of [0, 1]) {
    const who = role === 0 ? "first" : "second";
    node.append(div(who, `${who}: ${r[1 + role]} \u00b7 nearest class ${DATA.names[r[3][role]]}`));
    if (r[7][role] !== null) node.append(div("found", `${who}: ${r[7][role]}`));
  }
  return node;
}
el("sort").addEventListener("change", () => { shown = DATA.pageSize; render(); });
""" + SCRIPT_END

# The page's body (`page.document` adds the frame).
_BODY = """<h2>Pairs</h2>
<p class="meta">Each image of each pair was explained toward the other: {asked}. Each item: top row the first
image | with its mask (red) | {map_words}{painted_words}; bottom row the same for the second image. Green frame:
same.</p>
<div id="controls">
<label>sort <select id="sort"><option value="index">position</option>
<option value="dist-asc">distance, smallest first</option><option value="dist-desc">distance, largest first</option>
</select></label>
<span id="count"></span>
</div>"""
