"""docs/photos.md's result tables, rendered from the JSON files the photo benchmarks wrote.

    python -m benchmarks.speed.photos_report   # rewrites the tables between the page's markers

Each table sits in docs/photos.md between `<!-- table:NAME -->` and
`<!-- /table -->`; tests/test_photos.py checks that the page holds what
`tables()` renders from the committed `photos.json`, `explain_memory.json` and
`photos_objects.json`, so a number on the page cannot drift from its file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent
PAGE = HERE.parents[1] / "docs" / "photos.md"


def _read(name):
    path = HERE / name
    return json.loads(path.read_text()) if path.exists() else None


def _yes(flag):
    return "yes" if flag else "no"


def _run_table(r, t, time_row, seconds, memory) -> str:
    """One run's targets, measurements and whether each was met; `seconds` and `memory` name its stages' parts."""
    load = r["load_during"]
    rows = [
        ("nearest-prototype test accuracy", f">= {t['accuracy']:.0%}", f"{r['prototype_accuracy']:.1%}",
         r["met"]["accuracy"]),
        (time_row, f"<= {t['train_seconds']} s",
         f"{r['seconds_total']:.0f} s ({seconds}; load average {load['min']}-{load['max']}, mean {load['mean']})",
         r["met"]["train_seconds"]),
        ("peak resident memory", f"<= {t['peak_rss_gb']:g} GB", f"{r['peak_rss_gb']:.2f} GB ({memory})",
         r["met"]["peak_rss_gb"]),
        ("g(f(x)) error / class-mean image's", f"<= {t['decoder_to_class_mean']:g}",
         f"{r['recon_sse_decoder']:.0f} / {r['recon_sse_class_mean_image']:.0f} = {r['decoder_to_class_mean']:.2f}",
         r["met"]["decoder_to_class_mean"]),
    ]
    lines = ["| | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {_yes(d)} |" for a, b, c, d in rows]
    return "\n".join(lines)


def train_table(photos) -> str:
    """The 96 px `train` run: targets, measurements, whether each was met."""
    r = photos["train_96"]
    s, p = r["seconds_by_stage"], r["peak_rss_gb_by_stage"]
    return _run_table(r, photos["targets"], "`train` wall time",
                      f"Siamese {s['snn']:.0f} s, autoencoder {s['autoencoder']:.0f} s, decoder {s['decoder']:.0f} s",
                      f"loaded {p['load']:.2f}; Siamese {p['snn']:.2f}; autoencoder {p['autoencoder']:.2f}; decoder "
                      f"{p['decoder']:.2f}")


def fit_table(photos) -> str:
    """The 96 px `fit` run: a tower trained with plain Keras, then `fit_explainer` (the targets of `train`)."""
    r = photos["fit_96"]
    s, p = r["seconds_by_stage"], r["peak_rss_gb_by_stage"]
    return _run_table(r, photos["targets"], "wall time",
                      f"the Keras tower {s['keras_tower']:.0f} s, `fit_explainer` {s['fit']:.0f} s",
                      f"loaded {p['load']:.2f}; Keras tower {p['keras_tower']:.2f}; autoencoder {p['autoencoder']:.2f}; "
                      f"decoder {p['decoder']:.2f}")


def ceiling_table(photos) -> str:
    """The k-nearest-neighbour ceiling of a decoder of f(x) (`photos.ceiling`)."""
    c = photos["ceiling_96"]
    lines = ["| predictor of x (500 test images) | squared error per image | / class-mean image's |",
             "|---|---|---|"]
    base = c["class_mean_test"]
    rows = [("g(f(x)), the trained decoder", c["decoder"]),
            ("class-mean image of the test images", c["class_mean_test"]),
            ("class-mean image of the training images", c["class_mean_train"])]
    for key, space in (("knn_embedding", "f"), ("knn_pixels", "pixels")):
        rows += [(f"mean of the {k} training images nearest in {space}", c[key][k]) for k in sorted(c[key], key=int)]
    lines += [f"| {a} | {v:.0f} | {v / base:.2f} |" for a, v in rows]
    f_best, x_best = c["best_knn_embedding_to_class_mean"], c["best_knn_pixels_to_class_mean"]
    word = lambda r: "no better than" if r >= 1 else f"{1 - r:.0%} below"  # noqa: E731
    lines += ["", f"The best lookup by f is {word(f_best)} the class-mean image ({f_best:.2f} of its error), the best "
              f"lookup by pixels {word(x_best)} it ({x_best:.2f}). The training image nearest in f is of the test "
              f"image's class for {c['nearest_embedding_same_class']:.1%} of the test images."]
    return "\n".join(lines)


def memory_table(memory) -> str:
    """`explain_memory.json`: one row per measurement."""
    lines = ["| image | memory budget | rows per call | draws per kink block | peak resident memory | "
             "seconds per image (first call, with tracing) |", "|---|---|---|---|---|---|"]
    for m in memory["measurements"]:
        if "error" in m:
            continue
        shape = "x".join(str(d) for d in m["image_shape"])
        budget = "1 GiB (default)" if m["memory_budget_mb"] is None else f"{m['memory_budget_mb']:g} MiB"
        lines.append(f"| {shape} | {budget} | {m['chunk_size']} | {m.get('kink_block_rows')} | "
                     f"{m['peak_rss_gb']:.2f} GB | {m['seconds']:.2f} ({m['first_seconds']:.0f}) |")
    targets = memory["targets"]
    met = "; ".join(f"{size} px: " + ", ".join(f"{k} <= {targets[size][k]:g} {_yes(v)}" for k, v in flags.items())
                    for size, flags in memory["met"].items())
    lines += ["", f"Targets met under the default budget: {met}. Load average {memory['load_before']} at the start, "
              f"{memory['load_after']} at the end, on {memory['cpus']} CPU cores."]
    return "\n".join(lines)


def block_table(memory) -> str:
    """`explain_memory.json`'s 96 px comparison of the kink blocks, alternating children."""
    b = memory["block_comparison"]
    lines = ["| kink blocks | draws per block | seconds per image (each child) | peak resident memory |",
             "|---|---|---|---|"]
    for key, label in (("compare", f"{b['compare_block_mb']:g} MiB (before)"), ("default", "4 MiB (now)")):
        ms = b[key]
        times = ", ".join(f"{m['seconds']:.2f}" for m in ms)
        lines.append(f"| {label} | {ms[0]['kink_block_rows']} | {times} | "
                     f"{max(m['peak_rss_gb'] for m in ms):.2f} GB |")
    return "\n".join(lines)


def objects_table(objects) -> str:
    """`photos_objects.json`: each method's object share, its test against intensity, time and memory."""
    lines = ["| method | object share of its top pixels (mean, 95% CI) | against intensity (Holm p) | "
             "seconds per image (mean, max) | peak resident memory |", "|---|---|---|---|---|"]
    tests, secs, peaks = objects["tests_against_intensity"], objects["seconds_per_image"], objects["peak_rss_gb"]
    for name, share in objects["share"].items():
        test = tests.get(name)
        vs = "floor" if test is None else f"{test['verdict']} (p = {test['p_holm']:.2g})"
        time = f"{secs[name]['mean']:.2f}, {secs[name]['max']:.2f}" if name in secs else "-"
        peak = f"{peaks[name]:.2f} GB" if peaks.get(name) is not None else "-"
        lines.append(f"| {name} | {share['mean']:.2f} +- {share['ci95']:.2f} | {vs} | {time} | {peak} |")
    v, load = objects["verdict"], objects["load_during"]
    lines += ["", f"{objects['n_images']} test images; the best method, {v['best']}, puts {v['share']:.0%} of its top "
              f"pixels on the object (target >= {v['target']:.0%} and better than intensity: {_yes(v['met'])}). "
              f"Before the first method the process held {objects['base_rss_gb']:.2f} GB; load average "
              f"{load['min']}-{load['max']} (mean {load['mean']}) on {objects['cpus']} CPU cores."]
    return "\n".join(lines)


def tables() -> dict:
    """Every table the committed JSON files hold, by marker name."""
    photos, memory, objects = _read("photos.json"), _read("explain_memory.json"), _read("photos_objects.json")
    blocks = _read("explain_memory_blocks.json")  # `explain_memory run --sizes 96 --compare-block-mb 1024 --out ...`
    out = {"train-96": train_table(photos), "explain-memory": memory_table(memory)}
    if "fit_96" in photos:
        out["fit-96"] = fit_table(photos)
    if "ceiling_96" in photos:
        out["ceiling-96"] = ceiling_table(photos)
    for found in (memory, blocks):
        if found is not None and "block_comparison" in found:
            out["kink-blocks"] = block_table(found)
    if objects is not None:
        out["objects-96"] = objects_table(objects)
    return out


def block(name, table) -> str:
    return f"<!-- table:{name} -->\n{table}\n<!-- /table -->"


def write(page=PAGE) -> list:
    """Replaces each marked table of the page by its rendering; returns the names replaced."""
    text, done = Path(page).read_text(), []
    for name, table in tables().items():
        pattern = re.compile(rf"<!-- table:{re.escape(name)} -->\n.*?<!-- /table -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block(name, table), text)
            done.append(name)
    Path(page).write_text(text)
    return done


if __name__ == "__main__":
    print("tables written:", ", ".join(write()))
