"""The training loop's checkpoints: where a killed stage resumes, on a linear model (seconds, no MNIST needed).

A stage of 3 epochs of 8 steps (64 examples in batches of 8) saves a checkpoint
after every `checkpoint_every`-th step of an epoch and at every epoch's end, so
with `checkpoint_every=3` the checkpoints are at global steps 3, 6, 8, 11, 14,
16, 19, 22, 24; with `checkpoint_every=100` (longer than an epoch) only at 8, 16
and 24. `on_step` runs before its step's checkpoint, so a stage interrupted in
`on_step` of step k has the checkpoints of the steps before k.

The second half checks, by hand, what `fit` leaves behind besides the weights:
the checkpoint's variables (names, dtypes, the optimizer's state and every
trackable), the TensorBoard scalars and images, the progress lines, the session
line, the defaults, where a non-chief worker writes, when the step is compiled
with XLA, and the losses under two replicas.
"""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

import siamese_xai
from siamese_xai.data import mnist as data
from siamese_xai.training import loop
from siamese_xai.training.loop import Stage, fit, is_chief, read_sessions, worker_dir

STEPS, EPOCHS = 8, 3


def _stage(seed=0):
    """A linear regression y = x @ w + noise as a stage: 64 examples, batches of 8, 3 epochs."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + rng.normal(0, 0.1, (64, 1))).astype(np.float32)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)

    def per_example(xb, yb):
        err = model(xb, training=True) - yb
        return err[:, 0] ** 2, {"abs_err": abs(err[:, 0])}

    stage = Stage(
        name="linear",
        variables=model.trainable_variables,
        per_example=per_example,
        regularizer=lambda: 0.0,
        make_dataset=lambda epoch, skip: data.make_image_dataset((x, y), 8, seed, epoch, skip),
        steps_per_epoch=STEPS,
        epochs=EPOCHS,
        optimizer=optimizer,
        trackables={"model": model},
    )
    return stage, model


def _interrupt_at(step):
    def on_step(global_step, values):
        if global_step == step:
            raise KeyboardInterrupt

    return on_step


def _checkpoints(run_dir):
    return sorted(int(p.name[len("ckpt-"):-len(".index")]) for p in (run_dir / "checkpoints" / "linear").glob("ckpt-*.index"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    stage, model = _stage()
    steps = []
    results = fit(stage, tmp_path_factory.mktemp("whole"), checkpoint_every=3, verbose=0,
                  on_step=lambda s, v: steps.append(s))
    assert steps == list(range(1, STEPS * EPOCHS + 1))
    return [np.array(w) for w in model.get_weights()], results


# (checkpoint_every, step in whose on_step the stage is interrupted, the checkpoints left (max_to_keep=2),
#  the checkpoint the rerun resumes from as (epoch, step_in_epoch, global step)): worked out by hand.
KILLS = [
    pytest.param(3, 13, [8, 11], (1, 3, 11), id="mid-epoch"),
    pytest.param(3, 8, [3, 6], (0, 6, 6), id="last-step-of-an-epoch"),
    pytest.param(3, 9, [6, 8], (1, 0, 8), id="right-after-an-epoch-boundary"),
    pytest.param(3, 17, [14, 16], (2, 0, 16), id="right-after-the-second-boundary"),
    pytest.param(100, 13, [8], (1, 0, 8), id="epoch-shorter-than-checkpoint-every"),
    pytest.param(100, 24, [8, 16], (2, 0, 16), id="epoch-shorter-than-checkpoint-every-last-step"),
    pytest.param(4, 5, [4], (0, 4, 4), id="checkpoint-every-4"),
    pytest.param(8, 12, [8], (1, 0, 8), id="checkpoint-every-equals-the-epoch"),
]


@pytest.mark.parametrize("every, stop, left, resumed", KILLS)
def test_an_interrupted_stage_resumes_from_its_last_checkpoint(uninterrupted, tmp_path, every, stop, left, resumed):
    weights, results = uninterrupted
    stage, _ = _stage()
    with pytest.raises(KeyboardInterrupt):
        fit(stage, tmp_path, checkpoint_every=every, verbose=0, on_step=_interrupt_at(stop))
    assert _checkpoints(tmp_path) == left
    assert read_sessions(tmp_path) == []  # an interrupted call records nothing

    epoch, step_in_epoch, global_step = resumed
    stage, model = _stage()
    steps = []
    again = fit(stage, tmp_path, checkpoint_every=every, verbose=0, on_step=lambda s, v: steps.append(s))
    assert steps == list(range(global_step + 1, STEPS * EPOCHS + 1))  # resumed, not retrained
    [session] = read_sessions(tmp_path)
    assert session == dict(session, stage="linear", restored_from=f"ckpt-{global_step}", restored_epoch=epoch,
                           restored_step_in_epoch=step_in_epoch, restored_global_step=global_step,
                           steps_run=STEPS * EPOCHS - global_step, global_step=STEPS * EPOCHS,
                           steps_total=STEPS * EPOCHS)
    assert _checkpoints(tmp_path)[-1] == STEPS * EPOCHS  # the end of the last epoch is saved too
    # the same computation in the same process: the uninterrupted run's weights, bit for bit
    for u, v in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(u, v)
    if global_step <= STEPS * (EPOCHS - 1):  # the rerun trained the whole last epoch: the same mean metrics
        assert again == results


def test_a_finished_stage_trains_nothing_when_run_again(uninterrupted, tmp_path):
    weights, _ = uninterrupted
    stage, _ = _stage()
    fit(stage, tmp_path, checkpoint_every=3, verbose=0)
    assert _checkpoints(tmp_path) == [22, 24]
    stage, model = _stage()
    steps = []
    assert fit(stage, tmp_path, checkpoint_every=3, verbose=0, on_step=lambda s, v: steps.append(s)) == {}
    assert steps == []
    first, second = read_sessions(tmp_path)
    assert (first["restored_from"], first["steps_run"]) == (None, STEPS * EPOCHS)
    assert (second["restored_from"], second["restored_epoch"], second["steps_run"]) == ("ckpt-24", EPOCHS, 0)
    for u, v in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_the_loss_is_the_batch_mean_and_the_epoch_metrics_their_mean(tmp_path):
    """Hand-computed: the first step's loss is the mean squared error of the first batch at the initial weights."""
    stage, model = _stage()
    x_first, y_first = next(iter(stage.make_dataset(0, 0)))
    want = float(np.mean((model(x_first).numpy() - y_first.numpy()) ** 2))
    want_abs = float(np.mean(np.abs(model(x_first).numpy() - y_first.numpy())))
    seen = []
    results = fit(stage, None, verbose=0, on_step=lambda s, v: seen.append(v))
    assert seen[0]["loss"] == pytest.approx(want, rel=1e-5)
    assert seen[0]["abs_err"] == pytest.approx(want_abs, rel=1e-5)
    last_epoch = seen[-STEPS:]
    assert results["loss"] == pytest.approx(np.mean([v["loss"] for v in last_epoch]), rel=1e-5)
    assert results["abs_err"] == pytest.approx(np.mean([v["abs_err"] for v in last_epoch]), rel=1e-5)
    assert seen[-1]["loss"] < seen[0]["loss"] / 10  # it learns
    assert not (tmp_path / "checkpoints").exists()


def _squared_error(model):
    """Per-example squared errors, and absolute errors as a metric."""
    def per_example(xb, yb):
        err = model(xb, training=True) - yb
        return err[:, 0] ** 2, {"abs_err": abs(err[:, 0])}

    return per_example


def _weight_decay(model):
    """5 x the squared norm of the first weight matrix: large beside the first batches' errors."""
    return lambda: 5.0 * tf.reduce_sum(model.trainable_variables[0] ** 2)


def _stage_with(n=64, batch=8, epochs=EPOCHS, optimizer=None, regularizer=None, images=None, jit_compile=False,
           per_example=None):
    """A linear regression y = x @ w + noise as a stage, with an example counter among its trackables."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]]) + rng.normal(0, 0.1, (n, 1))).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    optimizer = optimizer or keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)
    seen = tf.Variable(0, dtype=tf.int64, trainable=False)

    def squared_error(xb, yb):
        seen.assign_add(tf.cast(tf.shape(xb)[0], tf.int64))
        err = model(xb, training=True) - yb
        return err[:, 0] ** 2, {"abs_err": abs(err[:, 0])}

    stage = Stage(
        name="linear",
        variables=model.trainable_variables,
        per_example=per_example(model) if per_example else squared_error,
        regularizer=regularizer(model) if regularizer else (lambda: 0.0),
        make_dataset=lambda epoch, skip: data.make_image_dataset((x, y), batch, 0, epoch, skip),
        steps_per_epoch=-(-n // batch),
        epochs=epochs,
        optimizer=optimizer,
        trackables={"model": model, "seen": seen},
        images=images,
        jit_compile=jit_compile,
    )
    return stage, model, seen


def _events(log_dir):
    """{(tag, step): the summary's tensor as an array} from the TensorBoard event files under `log_dir`."""
    out = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                out[(value.tag, event.step)] = tf.make_ndarray(value.tensor)
    return out


def test_the_checkpoint_holds_the_position_as_named_int64_variables(tmp_path):
    stage, _, _ = _stage_with()
    fit(stage, tmp_path, checkpoint_every=3, verbose=0)
    reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "linear" / "ckpt-24"))
    dtypes = reader.get_variable_to_dtype_map()
    assert dtypes["epoch/.ATTRIBUTES/VARIABLE_VALUE"] == tf.int64
    assert dtypes["step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE"] == tf.int64
    assert reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == EPOCHS
    assert reader.get_tensor("step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE") == 0
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    full_names = {a.checkpoint_key: a.full_name for node in graph.nodes for a in node.attributes}
    assert full_names["epoch/.ATTRIBUTES/VARIABLE_VALUE"] == "epoch"
    assert full_names["step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE"] == "step_in_epoch"
    mid = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "linear" / "ckpt-22"))
    assert (mid.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"), mid.get_tensor("step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE")) == (2, 6)


def test_a_resumed_stage_restores_the_optimizer_state_and_every_trackable(tmp_path):
    """Adam's moments and step count, and a trackable the optimizer does not see, come back from the checkpoint."""
    stage, model, seen = _stage_with(optimizer=keras.optimizers.Adam(0.05))
    fit(stage, tmp_path / "whole", checkpoint_every=3, verbose=0)
    weights = [np.array(w) for w in model.get_weights()]
    moments = [v.numpy() for v in stage.optimizer.variables]
    assert int(seen.numpy()) == 64 * EPOCHS and int(stage.optimizer.iterations.numpy()) == STEPS * EPOCHS

    stage, _, _ = _stage_with(optimizer=keras.optimizers.Adam(0.05))
    with pytest.raises(KeyboardInterrupt):
        fit(stage, tmp_path / "killed", checkpoint_every=3, verbose=0, on_step=_interrupt_at(13))
    stage, model, seen = _stage_with(optimizer=keras.optimizers.Adam(0.05))
    fit(stage, tmp_path / "killed", checkpoint_every=3, verbose=0)  # resumes from ckpt-11
    assert int(seen.numpy()) == 64 * EPOCHS
    assert int(stage.optimizer.iterations.numpy()) == STEPS * EPOCHS
    for u, v in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(u, v)
    for u, v in zip(moments, stage.optimizer.variables):
        np.testing.assert_array_equal(u, v.numpy())


def test_the_defaults_checkpoint_every_200_steps_and_show_a_progress_bar(tmp_path, capsys):
    stage, _, _ = _stage_with(n=201, batch=1, epochs=1)
    fit(stage, tmp_path)
    assert _checkpoints(tmp_path) == [200, 201]
    out = capsys.readouterr().out
    assert out.startswith("[linear] epoch 1/1\n")
    assert "201/201" in out and "ms/step" in out and "loss: " in out and "abs_err: " in out


def test_the_progress_lines_name_the_epoch_and_the_step_resumed_at(tmp_path, capsys):
    stage, _, _ = _stage_with()
    with pytest.raises(KeyboardInterrupt):
        fit(stage, tmp_path, checkpoint_every=3, verbose=0, on_step=_interrupt_at(13))
    capsys.readouterr()
    stage, _, _ = _stage_with()
    fit(stage, tmp_path, checkpoint_every=3, verbose=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[linear]")]
    assert lines == ["[linear] epoch 2/3 (resumed at step 3)", "[linear] epoch 3/3"]


def test_tensorboard_gets_every_step_and_epoch_and_the_clipped_images(tmp_path):
    pixels = np.array([-0.5, 0.0, 0.25, 1.0, 1.5, 0.5], np.float32).reshape(1, 2, 3, 1)
    images = np.concatenate([pixels, 1 - pixels, pixels / 2, pixels * 0 + 0.75])  # 4 images, more than the default 3

    stage, _, _ = _stage_with(images=lambda: {"digits": images})
    seen = {}
    results = fit(stage, tmp_path, verbose=0, on_step=lambda s, v: seen.update({s: v}))
    events = _events(tmp_path / "logs" / "linear")
    for k in ("loss", "abs_err"):
        assert {s: float(events[(f"linear/{k}", s)]) for s in range(1, STEPS * EPOCHS + 1)} == \
            {s: v[k] for s, v in seen.items()}
        assert [(f"linear/epoch_{k}", e) in events for e in (1, 2, 3)] == [True] * 3
        assert float(events[(f"linear/epoch_{k}", EPOCHS)]) == pytest.approx(results[k], rel=1e-6)
    assert sorted(tag for tag, _ in events) == sorted(
        ["linear/loss", "linear/abs_err"] * STEPS * EPOCHS + ["linear/epoch_loss", "linear/epoch_abs_err", "linear/digits"] * EPOCHS)
    want = tf.image.convert_image_dtype(np.clip(images, 0, 1), tf.uint8).numpy()
    for epoch in (1, 2, 3):
        width, height, *pngs = events[("linear/digits", epoch)]
        assert (int(width), int(height)) == (3, 2) and len(pngs) == 4
        np.testing.assert_array_equal(np.stack([tf.io.decode_png(p).numpy() for p in pngs]), want)


def test_the_regularizer_is_added_once_per_step():
    """The first step's loss by hand: the batch's mean squared error plus the regularizer."""
    stage, model, _ = _stage_with(regularizer=_weight_decay)
    x_first, y_first = next(iter(stage.make_dataset(0, 0)))
    w = model.trainable_variables[0].numpy()
    want = float(np.mean((model(x_first).numpy() - y_first.numpy()) ** 2) + 5.0 * np.sum(w ** 2))
    seen = []
    fit(stage, None, verbose=0, on_step=lambda s, v: seen.append(v))
    assert 5.0 * np.sum(w ** 2) > 0.1 * want  # large enough to be seen
    assert seen[0]["loss"] == pytest.approx(want, rel=1e-5)


def test_an_optimizer_not_built_yet_is_built_on_the_stage_variables():
    stage, model, _ = _stage_with()
    stage.optimizer = keras.optimizers.SGD(0.1)  # not built
    fit(stage, None, verbose=0)
    built, built_model, _ = _stage_with()
    fit(built, None, verbose=0)
    for u, v in zip(built_model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(u, v)


def _needs_python(model):
    """Per-example losses through `tf.numpy_function`, an op XLA cannot compile."""
    def per_example(xb, yb):
        err = model(xb, training=True) - yb
        zero = tf.numpy_function(lambda e: 0 * e, [tf.stop_gradient(err)], tf.float32, stateful=False)
        return err[:, 0] ** 2 + tf.reshape(zero, [-1]), {}

    return per_example


def test_the_step_is_compiled_with_xla_only_when_the_stage_asks():
    stage, _, _ = _stage_with(per_example=_needs_python)
    assert set(fit(stage, None, verbose=0)) == {"loss"}  # jit_compile=False: a plain tf.function runs it
    stage, _, _ = _stage_with(per_example=_needs_python, jit_compile=True)
    with pytest.raises(Exception, match="(?i)compil"):
        fit(stage, None, verbose=0)


def test_the_session_line_is_sorted_json_with_the_seconds_rounded(tmp_path, monkeypatch):
    clock = iter([100.0, 101.26])
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    stage, _, _ = _stage_with()
    fit(stage, tmp_path, verbose=0)
    [line] = (tmp_path / "logs" / "sessions.jsonl").read_text().splitlines(keepends=True)
    session = json.loads(line)
    assert line == json.dumps(session, sort_keys=True) + "\n"
    assert list(session) == sorted(session)
    assert session["seconds"] == 1.3 and isinstance(session["seconds"], float)
    assert read_sessions(tmp_path) == [session]


class _Worker:
    """The default strategy seen as a non-chief worker `task_id` of a multi-worker cluster."""

    def __init__(self, task_id):
        self._real = tf.distribute.get_strategy()
        self.extended = types.SimpleNamespace(should_checkpoint=False)
        self.cluster_resolver = types.SimpleNamespace(task_id=task_id)

    def __getattr__(self, name):
        return getattr(self._real, name)


def test_worker_dir_and_is_chief():
    chief = types.SimpleNamespace(extended=types.SimpleNamespace(should_checkpoint=True))
    unknown = types.SimpleNamespace(extended=types.SimpleNamespace())  # no should_checkpoint: a chief
    no_resolver = types.SimpleNamespace(extended=types.SimpleNamespace(should_checkpoint=False))
    no_task = types.SimpleNamespace(extended=no_resolver.extended, cluster_resolver=types.SimpleNamespace())
    run = Path("runs") / "a"
    assert worker_dir(None, chief) is None
    assert worker_dir(str(run), chief) == run and isinstance(worker_dir(str(run), chief), Path)
    assert worker_dir(run, unknown) == run
    assert worker_dir(str(run), _Worker(2)) == run / "workers" / "worker-2"
    assert worker_dir(run, _Worker(0)) == run / "workers" / "worker-0"
    assert worker_dir(run, _Worker(None)) == run / "workers" / "worker-0"
    assert worker_dir(run, no_resolver) == run / "workers" / "worker-0"
    assert worker_dir(run, no_task) == run / "workers" / "worker-0"
    assert worker_dir(run / "workers" / "worker-2", _Worker(2)) == run / "workers" / "worker-2"  # mapped once
    assert worker_dir(run / "worker-2", _Worker(2)) == run / "worker-2" / "workers" / "worker-2"
    assert worker_dir(run / "workers" / "worker-3", _Worker(2)) == run / "workers" / "worker-3" / "workers" / "worker-2"
    assert (is_chief(chief), is_chief(unknown), is_chief(no_resolver), is_chief()) == (True, True, False, True)
    assert is_chief(_Worker(1)) is False and is_chief(chief) is True


def test_a_non_chief_worker_checkpoints_in_its_own_folder_and_writes_no_logs(tmp_path):
    stage, _, _ = _stage_with()
    fit(stage, tmp_path, strategy=_Worker(1), checkpoint_every=100, verbose=0)
    mine = tmp_path / "workers" / "worker-1"
    assert _checkpoints(mine) == [16, 24]  # max_to_keep=2
    assert not (tmp_path / "checkpoints").exists()
    assert [p.name for p in (mine / "logs").iterdir()] == ["sessions.jsonl"]  # no TensorBoard folder
    assert not (tmp_path / "logs").exists()
    assert read_sessions(mine)[0]["global_step"] == STEPS * EPOCHS


_MIRRORED = """
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from test_loop import _squared_error, _stage_with, _weight_decay
from siamese_xai.training.loop import fit
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    stage, _, _ = _stage_with(n=15, batch=4, epochs=1, regularizer=_weight_decay, per_example=_squared_error)
seen = []
fit(stage, None, strategy, verbose=0, on_step=lambda s, v: seen.append(v))
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": seen}))
"""


def test_two_replicas_give_the_losses_of_one_the_global_batch_and_the_regularizer_counted_once():
    """MirroredStrategy on two logical CPUs (a fresh process: they must be set before TensorFlow starts).

    15 examples in batches of 4: the last batch of 3 splits 2 and 1 between the replicas, so dividing by the
    local batch or counting the regularizer once per replica would change the losses from this process's,
    trained on the default strategy.
    """
    stage, _, _ = _stage_with(n=15, batch=4, epochs=1, regularizer=_weight_decay, per_example=_squared_error)
    default = []
    fit(stage, None, verbose=0, on_step=lambda s, v: default.append(v))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               # the package under test (a mutated copy under mutation testing), then this folder for test_loop
               PYTHONPATH=os.pathsep.join([str(Path(siamese_xai.__file__).parents[1]), str(Path(__file__).parent),
                                           os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _MIRRORED], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and len(out["losses"]) == len(default) == 4
    for one, two in zip(default, out["losses"]):
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
        assert two["abs_err"] == pytest.approx(one["abs_err"], rel=1e-5)
