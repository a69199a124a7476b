"""The training loop's checkpoints: where a killed stage resumes, on a linear model (seconds, no MNIST needed).

A stage of 3 epochs of 8 steps (64 examples in batches of 8) saves a checkpoint
after every `checkpoint_every`-th step of an epoch and at every epoch's end, so
with `checkpoint_every=3` the checkpoints are at global steps 3, 6, 8, 11, 14,
16, 19, 22, 24; with `checkpoint_every=100` (longer than an epoch) only at 8, 16
and 24. `on_step` runs before its step's checkpoint, so a stage interrupted in
`on_step` of step k has the checkpoints of the steps before k.
"""

import keras
import numpy as np
import pytest

from siamese_xai import data
from siamese_xai.loop import Stage, fit, read_sessions

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
