"""The run folder: loading, saving, and the run's identity."""

import numpy as np
import pytest

from siamese_xai import files, runs
from siamese_xai.config import ExplainConfig
from siamese_xai.explainers.siamese import SiameseExplainer
from siamese_xai.training.models import build_decoder, build_siamese_subnetwork


@pytest.fixture(scope="module")
def networks():
    import keras

    keras.utils.set_random_seed(0)
    snn, decoder = build_siamese_subnetwork(6), build_decoder(6)
    prototypes = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    return snn, decoder, prototypes


def test_save_then_load_gives_the_same_networks_and_identity(networks, tmp_path):
    snn, decoder, prototypes = networks
    identity = runs.save_run(tmp_path, snn, decoder, prototypes)
    assert files.read_json(tmp_path / runs.IDENTITY_FILE) == {"run_id": identity}
    assert len(identity) == 16 and identity == runs.run_id(snn, decoder, prototypes)
    run = runs.load_run(tmp_path)
    assert run.run_id == identity and run.encoder is None
    np.testing.assert_array_equal(run.prototypes, prototypes)
    for a, b in zip(run.embed.weights + run.decoder.weights, snn.weights + decoder.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_identity_changes_with_every_weight_of_f_and_g_and_every_prototype(networks):
    snn, decoder, prototypes = networks
    base = runs.run_id(snn, decoder, prototypes)
    for row in range(len(prototypes)):
        other = prototypes.copy()
        other[row, row % prototypes.shape[1]] = np.nextafter(other[row, row % prototypes.shape[1]], np.inf)  # one ulp
        assert runs.run_id(snn, decoder, other) != base, f"prototype {row}"
    changed = []
    for part, model in (("f", snn), ("g", decoder)):
        assert model.weights
        for i, w in enumerate(model.weights):
            old = np.asarray(w).copy()
            new = old.copy()
            new.flat[-1] = np.nextafter(new.flat[-1], np.inf)  # one ulp of one value
            w.assign(new)
            try:
                changed.append(runs.run_id(snn, decoder, prototypes) != base)
            finally:
                w.assign(old)
            assert changed[-1], f"{part} weight {i} ({w.path}) is not in the run identity"
    assert len(changed) == len(snn.weights) + len(decoder.weights)
    assert runs.run_id(snn, decoder, prototypes) == base
    # f and g are told apart: the same weights in the other role give another identity
    assert runs.run_id(decoder, snn, prototypes) != base


def test_identity_is_the_documented_hash(networks):
    """SHA-256 over "name:dtype:shape;" then the bytes, prototypes first, then f0, f1, ... and g0, g1, ..."""
    import hashlib

    snn, decoder, prototypes = networks
    digest = hashlib.sha256()
    arrays = [("prototypes", prototypes)] + [(f"f{i}", w) for i, w in enumerate(snn.weights)] + [
        (f"g{i}", w) for i, w in enumerate(decoder.weights)
    ]
    for name, a in arrays:
        a = np.ascontiguousarray(np.asarray(a, np.float32))
        digest.update(f"{name}:<f4:{a.shape};".encode() + a.tobytes())
    assert runs.run_id(snn, decoder, prototypes) == digest.hexdigest()[:16]


def test_identity_is_of_the_prototypes_as_saved_float32(networks, tmp_path):
    snn, decoder, prototypes = networks
    as64 = prototypes.astype(np.float64)
    assert runs.run_id(snn, decoder, as64) == runs.run_id(snn, decoder, prototypes)
    # float64 prototypes are saved as float32: the folder loads with the identity it was saved with
    identity = runs.save_run(tmp_path, snn, decoder, as64)
    assert runs.load_run(tmp_path).run_id == identity


def test_a_run_changed_after_saving_is_refused(networks, tmp_path):
    snn, decoder, prototypes = networks
    runs.save_run(tmp_path, snn, decoder, prototypes)
    files.write_npy(tmp_path / runs.PROTOTYPES_FILE, prototypes + 1)
    with pytest.raises(ValueError, match=r"changed after it was saved: run.json records run_id '[0-9a-f]{16}'"):
        runs.load_run(tmp_path)
    with pytest.raises(ValueError, match="changed after it was saved"):
        SiameseExplainer.from_run(tmp_path)


def test_explainer_save_round_trip_carries_the_identity(networks, tmp_path):
    snn, decoder, prototypes = networks
    ex = SiameseExplainer(snn, decoder, prototypes, ExplainConfig.tiny(s=2, q=10))
    assert ex.run_id is None
    identity = ex.save(tmp_path / "run")
    loaded = SiameseExplainer.from_run(tmp_path / "run", ExplainConfig.tiny(s=2, q=10))
    assert loaded.run_id == identity
    e = loaded.explain(np.zeros((2, 28, 28, 1), np.float32))
    assert e.run_id == identity and e.to_dict()["run_id"] == identity
    with pytest.raises(TypeError, match=r"`embed` must be a Keras model \(or, for embed, a SavedModelTower\) to be saved"):
        SiameseExplainer(lambda x: snn(x), decoder, prototypes).save(tmp_path / "nope")


def test_class_names_are_saved_and_loaded(networks, tmp_path):
    snn, decoder, prototypes = networks
    runs.save_run(tmp_path / "named", snn, decoder, prototypes, class_names=["shirt", "shoe", "bag"])
    assert runs.load_run(tmp_path / "named").class_names == ("shirt", "shoe", "bag")
    ex = SiameseExplainer.from_run(tmp_path / "named", ExplainConfig.tiny(s=2, q=10))
    e = ex.explain(np.zeros((28, 28, 1), np.float32))
    assert e.class_names == ("shirt", "shoe", "bag") and e.class_name(e.predicted_class[0]) in e.class_names
    runs.save_run(tmp_path / "plain", snn, decoder, prototypes)
    assert runs.load_run(tmp_path / "plain").class_names == ("0", "1", "2")
    with pytest.raises(ValueError, match="`class_names` must name each of the 3 classes. Received: 2 names"):
        runs.save_run(tmp_path / "bad", snn, decoder, prototypes, class_names=["a", "b"])
    with pytest.raises(ValueError, match="`class_names` must name each of the 3 classes"):
        SiameseExplainer(snn, decoder, prototypes, class_names=["a"])


def test_a_bad_class_name_count_writes_nothing(networks, tmp_path):
    snn, decoder, prototypes = networks
    with pytest.raises(ValueError, match="`class_names` must name each of the 3 classes. Received: 2 names"):
        runs.save_run(tmp_path / "bad", snn, decoder, prototypes, class_names=["a", "b"])
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    with pytest.raises(ValueError, match=r"`name` must be one of the run folder's model files .* Received: name='f.keras'"):
        runs.write_model(tmp_path, "f.keras", snn)


def test_only_runs_writes_a_run_folder():
    """The run folder's files have one writer, `siamese_xai.runs`: training and fitting call its writers, the CLI
    calls training and fitting, and none of them writes a run folder's file or reads a run back to learn its id."""
    import re
    from pathlib import Path

    package = Path(runs.__file__).parent
    direct = re.compile(r"files\.(save_model|write_json|write_npy)\(")
    for module in ("training/stages.py", "training/fitting.py"):
        text = (package / module).read_text()
        assert not [line.strip() for line in text.splitlines() if direct.search(line)], module
    text = (package / "cli" / "commands.py").read_text()
    assert not re.findall(r"runs\.(write_\w+|save_run|load_run)\(", text)
