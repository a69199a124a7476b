"""The explain-split manifest, checked directly and by hand (no model, no training: fast enough for `make mutants`).

`test_shards.py::test_manifest_records_what_was_computed_and_refuses_any_difference`
checks the same through `explain_split` on a trained run; these tests pin each
value and the refusal's exact wording.
"""

import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest

from siamese_xai.scale import shards
from siamese_xai.config import ExplainConfig, TemplateContrastConfig


def _explainer(class_names=(0, 1, 2)):
    return types.SimpleNamespace(run_id="00ff00ff00ff00ff", image_shape=(2, 3, 1), config=ExplainConfig(n_perturbations=8),
                                 class_names=list(class_names))


def _images(n):
    return np.arange(n * 6, dtype=np.float32).reshape(n, 2, 3, 1) / (n * 6)


@pytest.mark.parametrize("n, shard_size, num_shards", [(7, 3, 3), (6, 3, 2), (1, 5, 1), (5, 5, 1), (6, 5, 2)])
def test_manifest_is_the_documented_record(n, shard_size, num_shards):
    images = _images(n)
    labels = np.arange(n, dtype=np.int64) % 3
    got = shards._manifest(_explainer(), images, labels, shard_size, 4, 11, {"split": "test"})
    # SHA-256 of the images' bytes, then the labels' bytes
    want_sha = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()
    assert got == {
        "run_id": "00ff00ff00ff00ff",
        "source": {"split": "test"},
        "images_sha256": want_sha,
        "num_images": n,
        "image_shape": [2, 3, 1],
        "shard_size": shard_size,
        "num_shards": num_shards,
        "batch_size": 4,
        "seed": 11,
        "explain_config": {"n_perturbations": 8, "s": 5, "q": 100, "direction": "toward_prototype",
                           "estimator": "mc", "sigma_scale": 0.1},
        "class_names": ["0", "1", "2"],
        "fields": list(shards.FIELDS),
    }
    assert all(type(got[k]) is int for k in ("num_images", "shard_size", "num_shards", "batch_size", "seed"))
    assert type(got["image_shape"]) is list and type(got["fields"]) is list
    assert json.loads(json.dumps(got)) == got  # JSON-ready as it stands


def test_manifest_hash_covers_images_and_labels_in_order():
    images, labels = _images(4), np.array([0, 1, 2, 0], np.int64)
    base = shards._manifest(_explainer(), images, labels, 2, 2, 0, None)["images_sha256"]
    swapped = shards._manifest(_explainer(), images, labels[::-1], 2, 2, 0, None)["images_sha256"]
    flipped = images.copy()
    flipped[3, 1, 2, 0] = 0.5
    changed = shards._manifest(_explainer(), flipped, labels, 2, 2, 0, None)["images_sha256"]
    # a strided view hashes as its C-ordered copy
    strided = np.repeat(images, 2, axis=0)[::2]
    assert not strided.flags["C_CONTIGUOUS"]
    assert shards._manifest(_explainer(), strided, labels, 2, 2, 0, None)["images_sha256"] == base
    assert len({base, swapped, changed}) == 3


def test_describe_is_sorted_json_cut_at_80_characters():
    assert shards._describe({"b": 1, "a": [1, 2]}) == '{"a": [1, 2], "b": 1}'
    assert shards._describe(None) == "null"
    exactly = "x" * 78  # 80 characters with the quotes
    assert shards._describe(exactly) == json.dumps(exactly)
    longer = "y" * 79
    assert shards._describe(longer) == '"' + "y" * 76 + "..."
    assert len(shards._describe("z" * 500)) == 80


def test_check_manifest_writes_the_first_and_accepts_the_same(tmp_path):
    manifest = {"b": [1, 2], "a": "x"}
    shards._check_manifest(tmp_path, manifest)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left
    text = (tmp_path / "manifest.json").read_text()
    assert text == '{\n  "a": "x",\n  "b": [\n    1,\n    2\n  ]\n}\n'
    shards._check_manifest(tmp_path, dict(manifest))  # the same: accepted, left as it is
    assert (tmp_path / "manifest.json").read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_check_manifest_refuses_with_every_difference_named(tmp_path):
    shards._check_manifest(tmp_path, {"a": 1, "b": "x", "d": "gone", "e": "same"})
    with pytest.raises(ValueError) as info:
        shards._check_manifest(tmp_path, {"a": 2, "b": "x", "c": [1], "e": "same"})
    assert str(info.value) == (
        f"`out_dir` {str(tmp_path)!r} holds results computed with other settings (a: 1 there, 2 now; "
        'c: null there, [1] now; d: "gone" there, null now); use another folder, or force=True (--force) '
        "to start it over"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert json.loads((tmp_path / "manifest.json").read_text())["a"] == 1  # the first manifest stays


def test_check_manifest_writes_through_a_temporary_of_the_package_form_beside_it(tmp_path, monkeypatch):
    """A writer killed before its rename leaves `.manifest.json.RANDOM.tmp.json` in the folder: the form
    `files.remove_stale_temporaries` recognises, hidden from every listing of results."""
    import fnmatch
    import os

    seen = []
    link = os.link

    def recording_link(src, dst):
        seen.append((Path(src), Path(dst), Path(src).read_text()))
        return link(src, dst)

    monkeypatch.setattr(os, "link", recording_link)
    shards._check_manifest(tmp_path, {"a": 1})
    [(src, dst, text)] = seen
    assert dst == tmp_path / "manifest.json" and src.parent == tmp_path
    assert fnmatch.fnmatch(src.name, ".manifest.json.*.tmp.json"), src.name
    assert text == '{\n  "a": 1\n}\n'  # complete before it takes the final name
    assert not src.exists()


def test_manifest_fields_are_the_estimators_own():
    path = types.SimpleNamespace(run_id="00ff00ff00ff00ff", image_shape=(2, 3, 1), class_names=["0", "1"],
                                 config=TemplateContrastConfig(n_path_points=8, q=3))
    images, labels = _images(2), np.array([0, 1], np.int64)
    got = shards._manifest(path, images, labels, 2, 2, 0, None)
    assert got["fields"] == ["index", "label", *shards.PATH_STORED] == list(shards.PATH_FIELDS)
    assert got["explain_config"] == {"n_path_points": 8, "s": 5, "q": 3, "estimator": "template_contrast"}
    assert shards.PATH_STORED != shards.STORED  # the two estimators store different fields
    mc = shards._manifest(_explainer(), images, labels, 2, 2, 0, None)
    assert mc["fields"] == list(shards.FIELDS)


