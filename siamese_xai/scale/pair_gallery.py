"""The `report` page of a list of pairs (`explain-split --pairs CSV`): one self-contained page, no server, no network.

`write_pair_report(split_dir)` reads the folder's shards and the pair list its
manifest names (`siamese_xai.data.sources.PairListSource`; the images checked
against the manifest's SHA-256 by `gallery.load_images`, as for a split) and
writes one HTML file. Each pair was asked the `Pair` question about its first
image: why f(first) lies as far as it does from f(second). A pair's shard
holds one map, the first image's (toward the second), so each item draws:

- the first image, the first image with its mask (red), and its signed map
  (`gallery.signed_map`: for the decoder estimators the mean signed change as
  the embedding moves toward f(second); for the probe the drop of the
  distance measured per region painted from the second image);
- the second image, as read (the result holds no map of it: a pair listed
  the other way round gives one);
- the counterfactual where the folder's estimator painted the found set from
  the second image (the probe's proposal "other", or "auto", which a `Pair`
  resolves to "other"): the first image with its mask's pixels taken from
  the second. The shard keeps the mask, not the painted image; the two images
  and the mask give it back exactly (`counterfactuals`).

Each item says the two files as the pair list names them (`pair_names`), the
class of the first image's nearest prototype, and where the folder holds
them (the probe's) the distance d(f(first), f(second)) (its margin), the
found set's size and the f calls it took. A `Pair` question has no threshold,
so the page gives the distance and no same / different verdict; the decoder
estimators' shards do not keep the pair's distance (`reference_distance` is
not a shard field), so their items give none. A `Pair` never flips (`flips`
False, `final_margin` not measured), so neither is shown.

Names and paths are data: escaped for HTML (`html.escape`), written for the
script with `page.script_json`, shown through `textContent`, under the same
Content-Security-Policy as the split's page (docs/escaping.md).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from siamese_xai import files
from siamese_xai.data import sources
from siamese_xai.scale import gallery, shards
from siamese_xai.scale.page import content_security_policy, script_json

# What the third panel shows, by the folder's map field (`BatchResult.MAP_FIELD`), in a pair's words.
MAP_WORDS = {
    "mean_signed_change": "the first image's mean signed change as its embedding moves toward f(second) (red: "
                          "brighter, blue: darker)",
    "drop_map": "the drop of the distance measured per region of the first image painted from the second (red: the "
                "region holds some of the distance, blue: painting it moves them apart)",
}


def holds_pairs(split_dir) -> bool:
    """Whether an explain-split folder explains a list of pairs (its manifest's `"question": "pair"`)."""
    path = Path(split_dir) / shards.MANIFEST_FILE
    return path.is_file() and files.read_json(path).get("question") == "pair"


def pair_names(source) -> list:
    """`[(first, second)]` each pair's two files as its list names them (relative to the list's folder where inside it).

    Args:
        source: a `sources.PairListSource`.
    """
    folder = os.path.dirname(os.path.abspath(source.path)) + os.sep
    return [tuple(p.removeprefix(folder) for p in paths) for _, *paths in source.rows()]


def counterfactuals(results, pairs):
    """`(n, H, W, C)` each first image with its found set painted from the second, or None.

    Args:
        results: a pair folder's `shards.SplitResults`.
        pairs: `(n, 2, H, W, C)` its pairs in [0, 1], in the order of `results.index`.

    Returns:
        `where(mask, second, first)`, the probe's `counterfactual` (its found
        set's cells painted with the proposal, here the second image), or None
        where the folder holds no found set or painted with another proposal.
    """
    proposal = results.manifest.get("explain_config", {}).get("proposal")
    if getattr(results, "set_size", None) is None or proposal not in ("auto", "other"):
        return None
    return np.where(results.mask, np.clip(pairs[:, 1], 0, 1), pairs[:, 0]).astype(np.float32)


def pair_tiles(pairs, masks, maps, painted=None) -> np.ndarray:
    """Each pair as one RGB strip: first | first with its mask | its map | second [| counterfactual].

    Args:
        pairs: `(n, 2, H, W, C)` in [0, 1].
        masks, maps: `(n, H, W, C)` the first image's mask and signed map (`gallery.tiles`).
        painted: `(n, H, W, C)` the counterfactuals, or None (four panels).

    Returns:
        `(n, H, P W + P - 1, 3)` float32 in [0, 1], P = 5 or 4 panels, a one-pixel white gap between panels.
    """
    n, _, h, w = pairs.shape[:4]
    parts = [gallery.tiles(pairs[:, 0], masks, maps)]
    for extra in (pairs[:, 1], painted):
        if extra is not None:
            parts += [np.ones((n, h, 1, 3), np.float32), np.stack([gallery.gray_rgb(x) for x in extra])
                      if n else np.zeros((0, h, w, 3), np.float32)]
    return np.concatenate(parts, axis=2)


def _found(results, i) -> str | None:
    """What pair i's found set did, where the folder holds one (the probe's `set_size`, `n_calls`), else None."""
    if getattr(results, "set_size", None) is None:
        return None
    size, calls = int(results.set_size[i]), int(results.n_calls[i])
    return f"{size} region{'' if size == 1 else 's'} hold{'s' if size == 1 else ''} some of the distance ({calls} f calls)"


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
    if manifest.get("question") != "pair":
        raise ValueError(f"`split_dir` must be a folder of pairs (explain-split --pairs). Received: {str(split_dir)!r}, "
                         "a split's folder: its page is gallery.write_report's")
    results = results[: len(results) if limit is None else limit]
    pairs = gallery.load_images(manifest, results.index, None)
    names = pair_names(sources.from_description(manifest["source"]))
    painted = counterfactuals(results, pairs)
    sheet = gallery.sprite_sheet(pair_tiles(pairs, results.mask, gallery.signed_map(results), painted))
    h, w = manifest["image_shape"][:2]
    panels = 4 if painted is None else 5
    distance = getattr(results, "margin", None)  # a Pair's margin is the distance itself
    items = [[int(k), *names[int(k)], int(results.predicted_class[i]),
              None if distance is None else round(float(distance[i]), 5), i, _found(results, i)]
             for i, k in enumerate(results.index)]
    style = gallery.STYLE.format(sheet=gallery.sheet_uri(sheet), shades="") + _PAIR_STYLE
    field = results.result_class.MAP_FIELD
    page = _PAGE.format(
        csp=html.escape(content_security_policy(style, _SCRIPT)),
        style=style,
        title=html.escape(f"Explanations of {len(results)} pairs"),
        meta=html.escape(gallery.meta_text(manifest)),
        map_words=html.escape(MAP_WORDS.get(field, gallery.map_titles(results)[1])),
        painted_words="" if painted is None else (" | the counterfactual: the first image with its found set "
                                                  "painted from the second"),
        distance_words=("d: the distance d(f(first), f(second)) f gives the pair" if distance is not None else
                        "this estimator's shards do not keep the pair's distance"),
        sort_options="" if distance is None else ('<option value="dist-asc">distance, smallest first</option>'
                                                  '<option value="dist-desc">distance, largest first</option>'),
        data=script_json({"items": items, "names": [str(c) for c in results.class_names],
                          "columns": gallery.SHEET_COLUMNS, "tile": [panels * w + panels - 1, h],
                          "pageSize": gallery.PAGE_SIZE}),
        script=_SCRIPT,
    )
    out = split_dir / gallery.REPORT_FILE if out is None else Path(out)
    with files.atomic_path(out, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


_PAIR_STYLE = """
.item.pair { max-width: 40em; }
"""

# An item: [position, first file, second file, the first's nearest class, distance or null, place, found or null].
_SCRIPT = gallery.SCRIPT_HELPERS + """
for (const r of DATA.items) if (r[4] === null) r[4] = Infinity;
let shown = DATA.pageSize;
function current() {
  const [key, dir] = el("sort").value.split("-"), sign = dir === "desc" ? -1 : 1;
  return DATA.items.slice().sort((a, b) => (key === "dist" ? sign * (a[4] - b[4]) : 0) || a[0] - b[0]);
}
function item(r) {
  const node = div("item pair");
  Object.assign(node.dataset, {index: r[0], dist: r[4]});
  const verdict = Number.isFinite(r[4]) ? ` \\u00b7 d ${r[4].toFixed(3)}` : "";
  node.append(tile(r[5]), div("first", `#${r[0]} first: ${r[1]}`), div("second", `second: ${r[2]}`),
    div("verdict", `first classed ${DATA.names[r[3]]}${verdict}`));
  if (r[6] !== null) node.append(div("found", r[6]));
  return node;
}
function render() {
  const rows = current();
  const items = document.createDocumentFragment();
  for (const r of rows.slice(0, shown)) items.appendChild(item(r));
  el("gallery").replaceChildren(items);
  el("count").textContent = `${Math.min(shown, rows.length)} of ${rows.length} shown`;
  el("more").style.display = rows.length > shown ? "" : "none";
}
el("sort").addEventListener("change", () => { shown = DATA.pageSize; render(); });
el("more").addEventListener("click", () => { shown += DATA.pageSize; render(); });
render();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{style}</style></head>
<body>
<h1>{title}</h1>
<div class="meta">{meta}</div>
<h2>Pairs</h2>
<p class="meta">Each pair was asked why f(first) lies as far as it does from f(second). Each item: the first
image | the first with its mask (red) | {map_words} | the second image{painted_words}; {distance_words}. The
question has no threshold: the page says no same / different verdict.</p>
<div id="controls">
<label>sort <select id="sort"><option value="index">position</option>{sort_options}</select></label>
<span id="count"></span>
</div>
<div id="gallery"></div>
<p><button id="more" type="button">more</button></p>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body></html>
"""
