"""The run folder: which files make a trained explainer, and loading and saving them.

A run folder holds everything the explainer and the later steps need:

    snn.keras            f, the Siamese subnetwork (the embedding), or
    snn_savedmodel/      f as a TensorFlow SavedModel (a user's tower; its serving signature is called)
    decoder.keras        g, the decoder the explainer perturbs
    prototypes.npy       (C, D) float32 class prototypes
    encoder.keras        e, the explainable autoencoder's encoder (training runs)
    decoder_joint.keras  g before the decoder fine-tuning (training runs)
    run.json             the run's identity (a content hash of f, g and the prototypes)
    classes.json         the class names, in label order (optional: "0", "1", ... when absent)
    config.json          the TrainConfig (training runs)
    metrics.json         measured quality and stage times (training runs)
    checkpoints/, logs/  training checkpoints and TensorBoard logs

This module is the folder's one writer: `save_run` (a finished run in one
call) and `train_run` (stage by stage, so that a killed run resumes) both write
through `write_model`, `write_prototypes`, `write_class_names`, `write_config`,
`write_metrics` and `write_identity`. Every file is written atomically
(`siamese_xai.files`), so a folder never holds a half-written model.

A run's identity, `run_id`, is a SHA-256 of the prototypes and of every
weight of f and g (shapes and values, in the models' weight order), not of the
files (a `.keras` file records when it was saved). It is written to
`run.json` when the run is saved and checked when it is loaded, and every
explanation, explain-split folder and SavedModel made from the run carries it.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siamese_xai import files

SNN_FILE = "snn.keras"
SNN_SAVEDMODEL_DIR = "snn_savedmodel"
ENCODER_FILE = "encoder.keras"
DECODER_JOINT_FILE = "decoder_joint.keras"
DECODER_FILE = "decoder.keras"
PROTOTYPES_FILE = "prototypes.npy"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
IDENTITY_FILE = "run.json"
CLASSES_FILE = "classes.json"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"

# What an explainer needs; the other files are written by training.
EXPLAINER_FILES = (SNN_FILE, DECODER_FILE, PROTOTYPES_FILE)


@dataclass(frozen=True)
class Run:
    """The networks and prototypes of a run folder.

    Attributes:
        path: the folder.
        embed: f, a Keras model `(B, *image_shape) -> (B, D)`.
        decoder: g, a Keras model `(B, D) -> (B, *image_shape)`.
        prototypes: `(C, D)` float32.
        encoder: e, when it was asked for (training runs have one).
        run_id: the run's identity (see the module docstring).
        class_names: the classes' names in label order (from `classes.json`;
            "0", "1", ... when the folder has none).
    """

    path: Path
    embed: object
    decoder: object
    prototypes: np.ndarray
    encoder: object = None
    run_id: str = ""
    class_names: tuple = ()


class SavedModelTower:
    """A SavedModel's `serving_default` signature as an embedding f: `(B, *image_shape)` float32 -> `(B, D)`.

    Args:
        path: the SavedModel folder.

    Raises:
        ValueError: the folder is not a SavedModel with a one-input `serving_default` signature.
    """

    def __init__(self, path):
        import tensorflow as tf

        self.path = Path(path)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
            self._signature = self._loaded.signatures["serving_default"]
            (self._input,) = self._signature.structured_input_signature[1]
        except Exception as err:  # noqa: BLE001 - any failure means: not a usable SavedModel
            detail = " ".join(str(err).split())
            raise ValueError(
                f"{str(self.path)!r} must be a SavedModel with a one-input serving_default signature: {detail}"
            ) from None
        self.weights = list(self._loaded.variables)

    def __call__(self, x):
        import tensorflow as tf

        out = self._signature(**{self._input: tf.convert_to_tensor(x, tf.float32)})
        return next(iter(out.values()))


def run_id(embed, decoder, prototypes) -> str:
    """The identity of a run: a SHA-256 (16 hex digits) of the prototypes and every weight of f and g.

    Args:
        embed: f, a Keras model.
        decoder: g, a Keras model.
        prototypes: `(C, D)`.
    """
    digest = hashlib.sha256()

    def add(name, array):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())

    add("prototypes", np.asarray(prototypes, np.float32))
    for part, model in (("f", embed), ("g", decoder)):
        for i, w in enumerate(model.weights):
            add(f"{part}{i}", np.asarray(w))
    return digest.hexdigest()[:16]


def write_identity(path, embed, decoder, prototypes) -> str:
    """Writes `run.json` with the run's identity; returns it.

    Written last: a folder whose `run.json` matches its networks is a finished run.
    """
    identity = run_id(embed, decoder, prototypes)
    files.write_json(Path(path) / IDENTITY_FILE, {"run_id": identity})
    return identity


MODEL_FILES = (SNN_FILE, ENCODER_FILE, DECODER_JOINT_FILE, DECODER_FILE)


def write_model(path, name: str, model) -> None:
    """Writes one network of the run folder, `path/name` (`name` one of `MODEL_FILES`)."""
    if name not in MODEL_FILES:
        raise ValueError(f"`name` must be one of the run folder's model files {MODEL_FILES}. Received: name={name!r}")
    files.save_model(model, Path(path) / name)


def write_prototypes(path, prototypes) -> None:
    """Writes `prototypes.npy`: the `(C, D)` prototypes as float32."""
    files.write_npy(Path(path) / PROTOTYPES_FILE, np.asarray(prototypes, np.float32))


def write_class_names(path, class_names, num_classes: int | None = None) -> None:
    """Writes `classes.json`: the class names in label order.

    Args:
        path: the run folder.
        class_names: one name per class.
        num_classes: C, checked against the number of names when given.

    Raises:
        ValueError: `num_classes` is given and the names are not that many.
    """
    if num_classes is not None and len(class_names) != num_classes:
        raise ValueError(
            f"`class_names` must name each of the {num_classes} classes. Received: {len(class_names)} names"
        )
    files.write_json(Path(path) / CLASSES_FILE, {"class_names": [str(c) for c in class_names]})


def write_config(path, config: dict) -> None:
    """Writes `config.json`: the training config as a dict (`TrainConfig.to_dict`)."""
    files.write_json(Path(path) / CONFIG_FILE, config)


def write_metrics(path, metrics: dict) -> None:
    """Writes `metrics.json`: the run's measured quality and stage times."""
    files.write_json(Path(path) / METRICS_FILE, metrics)


def _read(path: Path, name: str, loader):
    try:
        return loader(path / name)
    except Exception as err:  # unreadable file: say which one
        detail = " ".join(str(err).split())  # one line, whatever the loader said
        raise ValueError(f"Could not read {name!r} in the run folder {str(path)!r}: {detail}") from err


def load_model(path, name: str):
    """Loads `path/name`, a `.keras` model, with an error naming the file when it cannot be read."""
    import keras

    return _read(Path(path), name, lambda p: keras.models.load_model(p, compile=False))


def load_run(path, encoder: bool = False) -> Run:
    """Loads a run folder's networks and prototypes.

    Args:
        path: the run folder.
        encoder: also load `encoder.keras`.

    Raises:
        FileNotFoundError: `path` is not a folder or lacks a file (named).
        ValueError: a file cannot be read (named in the message).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"`path` must be a run folder. Received: path={str(path)!r} (not a folder)")
    savedmodel = not (path / SNN_FILE).exists() and (path / SNN_SAVEDMODEL_DIR).is_dir()
    needed = tuple(n for n in EXPLAINER_FILES if not (savedmodel and n == SNN_FILE)) + ((ENCODER_FILE,) if encoder else ())
    for name in needed:
        if not (path / name).is_file():
            raise FileNotFoundError(f"The run folder {str(path)!r} has no {name!r}.")
    embed = SavedModelTower(path / SNN_SAVEDMODEL_DIR) if savedmodel else load_model(path, SNN_FILE)
    decoder = load_model(path, DECODER_FILE)
    prototypes = _read(path, PROTOTYPES_FILE, lambda p: np.load(p, allow_pickle=False))
    identity = run_id(embed, decoder, prototypes)
    if (path / IDENTITY_FILE).is_file():
        recorded = _read(path, IDENTITY_FILE, files.read_json).get("run_id")
        if recorded != identity:
            raise ValueError(
                f"The run folder {str(path)!r} changed after it was saved: {IDENTITY_FILE} records run_id "
                f"{recorded!r} but {SNN_FILE}, {DECODER_FILE} and {PROTOTYPES_FILE} give {identity!r}"
            )
    names = tuple(str(k) for k in range(len(prototypes)))
    if (path / CLASSES_FILE).is_file():
        names = tuple(_read(path, CLASSES_FILE, files.read_json)["class_names"])
        if len(names) != len(prototypes):
            raise ValueError(
                f"The run folder {str(path)!r} names {len(names)} classes in {CLASSES_FILE} but has "
                f"{len(prototypes)} prototypes"
            )
    return Run(
        path=path,
        embed=embed,
        decoder=decoder,
        prototypes=prototypes,
        encoder=load_model(path, ENCODER_FILE) if encoder else None,
        run_id=identity,
        class_names=names,
    )


def save_run(path, embed, decoder, prototypes, encoder=None, class_names=None) -> str:
    """Writes the explainer's files (and `encoder.keras` when given) to a run folder.

    Args:
        path: the folder (created if missing); files already there are replaced.
        embed: f, a Keras model (other callables cannot be saved).
        decoder: g, a Keras model.
        prototypes: `(C, D)`.
        encoder: e, optional.
        class_names: the classes' names in label order, optional.

    Returns:
        The run's identity (also written to `run.json`).

    Raises:
        TypeError: a network is not a Keras model.
    """
    import keras

    for name, model in (("embed", embed), ("decoder", decoder), ("encoder", encoder)):
        if model is not None and not isinstance(model, keras.Model) and not (
            name == "embed" and isinstance(model, SavedModelTower)
        ):
            raise TypeError(
                f"`{name}` must be a Keras model (or, for embed, a SavedModelTower) to be saved in a run folder. "
                f"Received: {name}={model!r}"
            )
    path = Path(path)
    if class_names is not None and len(class_names) != len(prototypes):  # before anything is written
        raise ValueError(
            f"`class_names` must name each of the {len(prototypes)} classes. Received: {len(class_names)} names"
        )
    if isinstance(embed, SavedModelTower):
        if embed.path.resolve() != (path / SNN_SAVEDMODEL_DIR).resolve():
            with files.atomic_path(path / SNN_SAVEDMODEL_DIR, suffix="") as tmp:
                shutil.copytree(embed.path, tmp)
    else:
        write_model(path, SNN_FILE, embed)
    write_model(path, DECODER_FILE, decoder)
    write_prototypes(path, prototypes)
    if encoder is not None:
        write_model(path, ENCODER_FILE, encoder)
    if class_names is not None:
        write_class_names(path, class_names, len(prototypes))
    return write_identity(path, embed, decoder, prototypes)
