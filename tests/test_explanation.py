"""The Explanation object: a frozen batch of explanations, its indexing, JSON and file round trip."""

import dataclasses
import json

import numpy as np
import pytest

from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.explanation import FIELDS, Explanation

B, H, W, D, C, S = 3, 4, 5, 6, 2, 2


def make(b=B, seed=0, run_id="abc123", class_names=("cat", "dog")):
    rng = np.random.default_rng(seed)
    image = lambda: rng.random((b, H, W, 1)).astype(np.float32)
    return Explanation(
        input=image(), reconstruction=image(), embedding=rng.normal(size=(b, D)), reference=rng.normal(size=(b, D)),
        predicted_class=rng.integers(0, C, b), distances=rng.random((b, C)), explained_class=np.full(b, -1),
        reference_distance=rng.random(b), indices=rng.integers(0, D, (b, S)), sigma=rng.random(b),
        mean_abs_change=image(), mean_signed_change=image() - 0.5, mask=image() > 0.5,
        config=ExplainConfig(n_perturbations=64, s=S, q=7), seed=seed, run_id=run_id, class_names=class_names,
    )


def assert_equal(a, b):
    assert a.fields == b.fields
    for name in a.fields:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert (a.config, a.seed, a.run_id, a.class_names) == (b.config, b.seed, b.run_id, b.class_names)


def test_fields_are_typed_read_only_and_share_the_batch_axis():
    e = make()
    assert e.fields == tuple(name for name in FIELDS if name not in ("moved_indices", "path_length"))
    assert e.moved_indices is None and e.path_length is None  # the decoded path's own fields
    for name in e.fields:
        a, dtype = getattr(e, name), FIELDS[name]
        assert a.dtype == dtype and len(a) == B and not a.flags.writeable, name
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.seed = 1
    with pytest.raises(ValueError, match=r"`sigma` must have a leading axis B=3 .* Received: shape \(2,\)"):
        dataclasses.replace(e, sigma=np.ones(2))


def test_indexing_keeps_the_batch_axis():
    e = make()
    assert len(e) == B
    for i in range(-B, B):
        one = e[i]
        assert isinstance(one, Explanation) and len(one) == 1
        for name in e.fields:
            np.testing.assert_array_equal(getattr(one, name), getattr(e, name)[i % B : i % B + 1])
        assert one.config == e.config and one.seed == e.seed and one.run_id == e.run_id
    assert [int(x.predicted_class[0]) for x in e] == e.predicted_class.tolist()
    assert_equal(e[1:], e[[1, 2]])
    assert_equal(e[np.array([False, True, True])], e[1:3])
    with pytest.raises(IndexError, match=r"`index` must be in \[-3, 3\). Received: index=3"):
        e[3]
    with pytest.raises(IndexError, match="float64"):
        e[np.array([0.5])]


def test_to_dict_is_json_ready_and_complete():
    e = make()
    d = json.loads(json.dumps(e.to_dict()))
    assert set(d) == set(FIELDS) | {"config", "seed", "run_id", "class_names", "decoder_path"}
    assert d["decoder_path"] is None  # not recorded by whoever built it
    for name in e.fields:
        np.testing.assert_array_equal(np.asarray(d[name], dtype=FIELDS[name]), getattr(e, name))
    assert d["moved_indices"] is None and d["path_length"] is None  # the decoded path's fields
    assert d["config"] == dataclasses.asdict(e.config) and d["seed"] == 0 and d["run_id"] == "abc123"


def test_save_and_load_round_trip_exactly(tmp_path):
    for e in (make(seed=4), make(b=0, run_id=None, class_names=None)):
        path = tmp_path / f"e{len(e)}.npz"
        e.save(path)
        assert_equal(Explanation.load(path), e)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_the_fields_of_the_other_estimator_are_refused():
    e = make()
    with pytest.raises(ValueError, match="`path_length` must be None for the estimator 'mc'. Received: an array"):
        dataclasses.replace(e, path_length=np.ones(B))
    with pytest.raises(ValueError, match="`sigma` must be given for the estimator 'mc'. Received: None"):
        dataclasses.replace(e, sigma=None)


def test_load_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", mask=np.zeros(3))
    with pytest.raises(ValueError, match="written by Explanation.save"):
        Explanation.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ValueError, match="written by Explanation.save"):
        Explanation.load(tmp_path / "junk.npz")


def test_repr_is_a_few_lines():
    text = repr(make())
    lines = text.splitlines()
    assert len(lines) == 4, text
    assert lines[0] == "Explanation(B=3, estimator='mc', image_shape=(4, 5, 1), s=2, q=7, N=64, seed=0)"
    assert lines[3] == "  run_id='abc123'"
    many = repr(make(b=25))
    assert ", ...]" in many and len(many) < 400


def test_class_names_label_the_classes():
    e = make()
    assert [e.class_name(k) for k in (0, 1, -1)] == ["cat", "dog", "-"]
    assert make(class_names=None).class_name(1) == "1"
    assert e.to_dict()["class_names"] == ["cat", "dog"]
