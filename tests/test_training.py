"""Training: kill-and-resume gives bitwise-equal weights; divergence is recorded; real MNIST."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from lossgeom.checkpoints import CheckpointStore
from lossgeom.data import load_dataset, prepare_dataset
from lossgeom.provenance import IntegrityError
from lossgeom.runs import load_weights
from lossgeom.training import AccuracyTarget, TrainingCheck, _RunState, assess_run, train
from tests.conftest import REAL_MIRROR, REPO, flip_stored_byte, require_real_mirror

SPEC = {
    "model": {"name": "mlp", "hidden": [32], "activation": "relu"},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "epochs": 3,
    "batch_size": 32,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, synthetic_mirror):
    folder, checksums = synthetic_mirror
    root = tmp_path_factory.mktemp("train_data")
    prepare_dataset("mnist", root, root / "mnist.pt", mirror=folder, checksums=checksums)
    return root / "mnist.pt"


def run_script(tmp_path, data, name, spec=SPEC, crash_after=None):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("LOSSGEOM_CRASH_AFTER_EPOCH", None)
    if crash_after is not None:
        env["LOSSGEOM_CRASH_AFTER_EPOCH"] = str(crash_after)
    out = tmp_path / name
    command = [
        sys.executable,
        str(REPO / "scripts" / "train.py"),
        "--data",
        str(data),
        "--dataset",
        "mnist",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--experiment",
        "e",
        "--seed",
        "7",
        "--spec",
        json.dumps(spec),
        "--checkpoint-dir",
        str(out / "checkpoints"),
        "--metrics",
        str(out / "metrics.csv"),
        "--weights-dir",
        str(out / "weights"),
        "--run-info",
        str(out / "run.json"),
        "--max-loss-ratio",
        "10",
        "--chance-margin",
        "0.05",
        "--no-progress",
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env), out


def test_kill_and_resume_gives_bitwise_equal_weights(tmp_path, prepared):
    reference, ref_out = run_script(tmp_path, prepared, "uninterrupted")
    assert reference.returncode == 0, reference.stderr
    killed, out = run_script(tmp_path, prepared, "interrupted", crash_after=1)
    assert killed.returncode == 137  # died right after the epoch-1 checkpoint
    assert sorted(p.name for p in (out / "checkpoints").glob("*/*.pt")) == [
        "epoch000.pt",
        "epoch001.pt",
    ]
    assert not (out / "metrics.csv").exists()
    resumed, out = run_script(tmp_path, prepared, "interrupted")
    assert resumed.returncode == 0, resumed.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["resumed_from"] == 1 and info["status"] == "completed"
    for epoch in range(SPEC["epochs"] + 1):
        a = torch.load(ref_out / "weights" / f"epoch{epoch}.pt", weights_only=True)["state_dict"]
        b = torch.load(out / "weights" / f"epoch{epoch}.pt", weights_only=True)["state_dict"]
        for key in a:
            assert torch.equal(a[key], b[key]), (epoch, key)
    pd.testing.assert_frame_equal(
        pd.read_csv(ref_out / "metrics.csv"), pd.read_csv(out / "metrics.csv")
    )


def test_metrics_table_has_every_epoch_and_split(tmp_path, prepared):
    result, out = run_script(tmp_path, prepared, "metrics")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out / "metrics.csv")
    assert list(frame.columns) == ["experiment", "seed", "epoch", "split", "metric", "value"]
    for epoch in range(SPEC["epochs"] + 1):
        rows = frame[frame.epoch == epoch]
        assert {
            ("train", "loss"),
            ("train", "accuracy"),
            ("test", "loss"),
            ("test", "accuracy"),
        } <= set(zip(rows.split, rows.metric, strict=True))
        if epoch > 0:
            assert "running_loss" in set(rows.metric)
    final_test = frame[
        (frame.epoch == 3) & (frame.split == "test") & (frame.metric == "accuracy")
    ].value
    assert float(final_test.iloc[0]) > 0.9  # the synthetic digits are easy
    meta = json.loads((out / "metrics.csv.meta.json").read_text())
    assert (
        meta["config"] == SPEC and meta["seed"] == 7 and "git_commit" in meta and "device" in meta
    )


def test_divergence_is_recorded_not_raised(tmp_path, prepared):
    spec = {**SPEC, "optimizer": {"name": "sgd", "lr": 1e20, "momentum": 0.9}}  # overflows to inf
    result, out = run_script(tmp_path, prepared, "diverged", spec=spec)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "diverged" and info["diverged_epoch"] == 1
    model, meta = load_weights(out / "weights" / "epoch3.pt")
    assert model is None and meta["status"] == "diverged"
    assert load_weights(out / "weights" / "epoch0.pt")[0] is not None
    frame = pd.read_csv(out / "metrics.csv")
    assert ((frame.metric == "diverged") & (frame.epoch == 1)).any()


def test_changed_configuration_trains_afresh(tmp_path, synthetic_data):
    first = train(SPEC | {"epochs": 1}, synthetic_data, 0, tmp_path, progress=False)
    assert first.resumed_from is None
    assert (
        train(SPEC | {"epochs": 1}, synthetic_data, 0, tmp_path, progress=False).resumed_from == 1
    )
    changed = SPEC | {"epochs": 1, "batch_size": 64}
    fresh = train(changed, synthetic_data, 0, tmp_path, progress=False)
    assert fresh.resumed_from is None and fresh.config_hash != first.config_hash
    elsewhere = train(changed, synthetic_data, 0, tmp_path / "alone", progress=False)
    for key, value in elsewhere.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[key], value), key
    # Each configuration keeps its own folder; nothing was overwritten.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "alone") == sorted(
        [first.config_hash, fresh.config_hash]
    )


def test_every_checkpoint_loads_with_weights_only(tmp_path, synthetic_data):
    result = train(SPEC | {"epochs": 2}, synthetic_data, 0, tmp_path, progress=False)
    paths = sorted((tmp_path / result.config_hash).glob("epoch*.pt"))
    assert [p.name for p in paths] == ["epoch000.pt", "epoch001.pt", "epoch002.pt"]
    for path in paths:
        state = torch.load(path, weights_only=True)
        assert state["key"] == result.config_hash and set(state["rng"]) >= {"torch", "order"}


def test_stale_temporaries_are_removed_and_unreadable_checkpoints_skipped(tmp_path, synthetic_data):
    result = train(SPEC | {"epochs": 2}, synthetic_data, 0, tmp_path, progress=False)
    store = CheckpointStore(tmp_path, {})
    store.directory = tmp_path / result.config_hash
    store.key = result.config_hash
    stale = store.directory / ".epoch003.pt.abc123.tmp"
    stale.write_bytes(b"")
    (store.directory / "epoch002.pt").write_bytes(b"not a checkpoint")
    assert store.latest()["epoch"] == 1
    assert not stale.exists()


@pytest.mark.mnist
def test_one_epoch_on_real_mnist_reaches_93_percent(tmp_path):
    require_real_mirror()
    prepare_dataset("mnist", tmp_path / "root", tmp_path / "mnist.pt", mirror=REAL_MIRROR)
    data = load_dataset(tmp_path / "mnist.pt")
    spec = {
        "model": {"name": "mlp", "hidden": [512]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "epochs": 1,
        "batch_size": 128,
    }
    result = train(spec, data, seed=0, checkpoint_dir=tmp_path / "ckpt", progress=False)
    accuracy = [
        r["value"]
        for r in result.rows
        if r["epoch"] == 1 and r["split"] == "test" and r["metric"] == "accuracy"
    ]
    assert result.status == "completed" and accuracy[0] >= 0.93


def test_checkpoints_of_other_data_are_never_resumed(tmp_path, synthetic_data):
    train(SPEC | {"epochs": 1}, synthetic_data, 0, tmp_path, progress=False, identity={"mean": 0.1})
    other = train(
        SPEC | {"epochs": 1}, synthetic_data, 0, tmp_path, progress=False, identity={"mean": 0.2}
    )
    assert other.resumed_from is None


def test_a_corrupted_checkpoint_is_named_and_the_older_one_resumed(
    tmp_path, synthetic_data, caplog
):
    spec = SPEC | {"epochs": 2}
    reference = train(spec, synthetic_data, 0, tmp_path / "a", progress=False)
    train(spec, synthetic_data, 0, tmp_path / "b", progress=False)
    damaged = tmp_path / "b" / reference.config_hash / "epoch002.pt"
    flip_stored_byte(damaged, "data/0", offset=3)
    with caplog.at_level("WARNING"):
        resumed = train(spec, synthetic_data, 0, tmp_path / "b", progress=False)
    assert resumed.resumed_from == 1
    assert f"{damaged}: content checksum mismatch" in caplog.text
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_a_corrupted_weight_file_is_an_error_naming_it(tmp_path, prepared):
    result, out = run_script(tmp_path, prepared, "run", spec=SPEC | {"epochs": 1})
    assert result.returncode == 0, result.stderr
    path = out / "weights" / "epoch1.pt"
    load_weights(path)
    flip_stored_byte(path, "data/0", offset=1)
    with pytest.raises(IntegrityError, match=f"{path}: content checksum mismatch"):
        load_weights(path)


def _rows(initial_loss, final_loss, final_accuracy):
    return [
        {"epoch": 0, "split": "train", "metric": "loss", "value": initial_loss},
        {"epoch": 2, "split": "train", "metric": "loss", "value": final_loss},
        {"epoch": 2, "split": "test", "metric": "accuracy", "value": final_accuracy},
    ]


def test_assess_run_names_each_failure():
    check = TrainingCheck(max_loss_ratio=10, chance_margin=0.05)
    assert assess_run(_rows(2.3, 0.1, 0.97), 2, 0.1135, check) == ("completed", "")
    status, reason = assess_run(_rows(2.3, 3.5e32, 0.98), 2, 0.1135, check)
    assert status == "failed_to_train" and reason.startswith("final training loss 3.5e+32 exceeds")
    status, reason = assess_run(_rows(2.3, 2.0, 0.16), 2, 0.1135, check)
    assert status == "failed_to_train" and "final test accuracy 0.1600 is at chance" in reason
    assert assess_run(_rows(2.3, 2.0, 0.17), 2, 0.1135, check)[0] == "completed"
    with pytest.raises(ValueError, match="max_loss_ratio"):
        TrainingCheck(max_loss_ratio=float("nan"))


def test_a_finite_blow_up_is_failed_to_train_and_skipped_downstream(tmp_path, prepared):
    spec = SPEC | {"epochs": 2, "optimizer": {"name": "sgd", "lr": 100.0, "momentum": 0.9}}
    result, out = run_script(tmp_path, prepared, "blown", spec=spec)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed_to_train" and "exceeds 10 x the initial" in info["reason"]
    model, meta = load_weights(out / "weights" / "epoch2.pt")
    assert model is None and "the run failed to train (final training loss" in meta["skipped"]
    model, _ = load_weights(out / "weights" / "epoch2.pt", usable_only=False)
    assert model is not None


def test_the_accuracy_milestone_follows_the_moving_minibatch_accuracy():
    run = _RunState(None, None, None)
    target = AccuracyTarget(accuracy=0.95, window=2)
    for accuracy in (0.5, 0.9, 1.0, 1.0, 0.0):
        run.count_step(accuracy, target)
    assert run.steps == 5
    assert run.reached_step == 3  # the mean of 0.9 and 1.0 first reaches 0.95 at step 3
    with pytest.raises(ValueError, match="window must be >= 1"):
        AccuracyTarget(window=0)


def test_the_milestone_survives_a_resume(tmp_path, synthetic_data):
    target = AccuracyTarget(accuracy=0.5, window=5)
    whole = train(SPEC, synthetic_data, 0, tmp_path / "whole", progress=False, target=target)
    steps_per_epoch = -(-synthetic_data.train_x.shape[0] // SPEC["batch_size"])
    assert whole.extra["steps"] == SPEC["epochs"] * steps_per_epoch
    assert whole.extra["steps_to_target"] is not None

    def crash(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(SPEC, synthetic_data, 0, tmp_path / "cut", progress=False, target=target,
              after_checkpoint=crash)  # fmt: skip
    resumed = train(SPEC, synthetic_data, 0, tmp_path / "cut", progress=False, target=target)
    assert resumed.resumed_from == 1
    assert resumed.extra == whole.extra
