"""Mode connectivity: barriers, Bezier curves and weight matching on small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossgeom.checkpoints import CheckpointStore
from lossgeom.connectivity import (
    AlignmentError,
    aligned_model,
    barrier,
    bezier_path,
    bezier_point,
    curve_settings,
    evaluate_plane,
    evaluate_points,
    linear_path,
    measure_connectivity,
    path_points,
    path_records,
    permutation_spec,
    permute_state,
    plane_basis,
    plane_grid,
    plane_records,
    train_bezier,
    weight_matching,
)
from lossgeom.models import build_model, flat_parameters
from lossgeom.training import evaluate


def mlp(seed: int, **options) -> nn.Module:
    torch.manual_seed(seed)
    spec = {"name": "mlp", "input_dim": 12, "hidden": [16, 16], "num_classes": 4, **options}
    return build_model(spec)


def data(n: int = 300, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=generator)
    y = (x[:, :4].argmax(1) + (x[:, 4] > 1).long()) % 4
    return x, y


def test_barrier_closed_forms():
    ts = np.linspace(0, 1, 11)
    assert barrier(ts, 2 + 3 * ts) == pytest.approx(0.0, abs=1e-12)  # linear values: no barrier
    assert barrier(ts, 4 * ts * (1 - ts)) == pytest.approx(1.0)  # bump of height 1 at t = 0.5
    assert barrier(np.r_[-0.2, ts, 1.2], np.r_[9.0, 4 * ts * (1 - ts), 9.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="t = 0 and t = 1"):
        barrier([0.1, 0.5], [1.0, 2.0])


def test_identical_endpoints_have_zero_barrier():
    model = mlp(0)
    x, y = data()
    theta = flat_parameters(model)
    ts = np.linspace(0, 1, 7)
    loss, accuracy = linear_path(model, theta, theta, ts, x, y)
    assert np.ptp(loss) < 1e-6 and barrier(ts, loss) == pytest.approx(0.0, abs=1e-6)
    assert barrier(ts, 1 - accuracy) == pytest.approx(0.0, abs=1e-9)


def test_linear_path_matches_models_at_each_point():
    a, b = mlp(0), mlp(1)
    x, y = data()
    ta, tb = flat_parameters(a), flat_parameters(b)
    ts = np.array([0.0, 0.3, 1.0])
    loss, accuracy = linear_path(a, ta, tb, ts, x, y)
    for t, value, acc in zip(ts, loss, accuracy, strict=True):
        probe = mlp(2)
        torch.nn.utils.vector_to_parameters((1 - t) * ta + t * tb, probe.parameters())
        assert value == pytest.approx(evaluate(probe, x, y)[0], rel=1e-5)
        assert acc == pytest.approx(evaluate(probe, x, y)[1])


def test_known_barrier_on_a_toy_problem():
    """Two tanh units and their swap compute the same function; the straight line between
    them passes through the all-zero network, where the loss is log 2. With W = (s, -s),
    V = c [[1, -1], [-1, 1]] and one sample x = 1 of class 0, the margin along the path is
    4 c u tanh(s u) with u = 1 - 2t, so L(t) = softplus(-4 c u tanh(s u)) and the barrier is
    log 2 - softplus(-4 c tanh s)."""
    s, c = 2.0, 1.0
    model = build_model(
        {"name": "mlp", "input_dim": 1, "hidden": [2], "num_classes": 2, "activation": "tanh"}
    ).double()
    with torch.no_grad():
        model.input_layer.weight.copy_(torch.tensor([[s], [-s]]))
        model.output_layer.weight.copy_(c * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        model.input_layer.bias.zero_()
        model.output_layer.bias.zero_()
    a = flat_parameters(model)
    spec = permutation_spec(model)
    swapped = permute_state(model.state_dict(), spec, {spec.groups[0]: torch.tensor([1, 0])})
    b = torch.cat([swapped[n].reshape(-1) for n, _ in model.named_parameters()])
    x, y = torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.long)
    ts = np.linspace(0, 1, 101)
    loss, _ = linear_path(model, a, b, ts, x, y)
    u = 1 - 2 * ts
    np.testing.assert_allclose(loss, np.log1p(np.exp(-4 * c * u * np.tanh(s * u))), rtol=1e-10)
    expected = np.log(2) - np.log1p(np.exp(-4 * c * np.tanh(s)))
    assert barrier(ts, loss) == pytest.approx(expected, rel=1e-10)
    assert barrier(ts, loss) > 0.6


def test_curve_endpoints_and_evaluation():
    a, b = mlp(0), mlp(1)
    x, y = data()
    ta, tb = flat_parameters(a), flat_parameters(b)
    bend = flat_parameters(mlp(3))
    assert torch.equal(bezier_point(ta, bend, tb, 0.0), ta)
    assert torch.equal(bezier_point(ta, bend, tb, 1.0), tb)
    ts = np.array([0.0, 0.25, 1.0])
    loss, _ = bezier_path(a, ta, bend, tb, ts, x, y)
    assert loss[0] == pytest.approx(evaluate(a, x, y)[0], rel=1e-5)
    assert loss[2] == pytest.approx(evaluate(b, x, y)[0], rel=1e-5)
    probe = mlp(2)
    torch.nn.utils.vector_to_parameters(bezier_point(ta, bend, tb, 0.25), probe.parameters())
    assert loss[1] == pytest.approx(evaluate(probe, x, y)[0], rel=1e-5)


def _fit(model, x, y, steps=300):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def test_trained_bend_lowers_the_curve():
    x, y = data(400)
    a, b = _fit(mlp(0), x, y), _fit(mlp(1), x, y)
    ta, tb = flat_parameters(a), flat_parameters(b)
    ts = np.linspace(0, 1, 21)
    straight, _ = linear_path(a, ta, tb, ts, x, y)
    result = train_bezier(a, ta, tb, x, y, epochs=20, lr=0.1, batch_size=50, seed=0)
    curved, _ = bezier_path(a, ta, result.bend, tb, ts, x, y)
    assert barrier(ts, curved) < barrier(ts, straight)


CURVE = {"epochs": 5, "lr": 0.1, "momentum": 0.9, "batch_size": 50, "seed": 1, "optimizer": "sgd"}


@pytest.fixture(scope="module")
def curve_case():
    """Two fitted endpoints, their architecture and the data a bend is trained on."""
    x, y = data(400)
    a, b = _fit(mlp(0), x, y, 100), _fit(mlp(1), x, y, 100)
    return a, flat_parameters(a), flat_parameters(b), x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_bend_resumes_bitwise_from_its_own_checkpoints(tmp_path, curve_case, optimizer):
    model, ta, tb, x, y = curve_case
    settings = {**CURVE, "optimizer": optimizer, "lr": 0.1 if optimizer == "sgd" else 1e-3}
    full = train_bezier(model, ta, tb, x, y, **settings)
    first = train_bezier(model, ta, tb, x, y, **settings, checkpoint_dir=tmp_path)
    assert first.resumed_from is None and torch.equal(first.bend, full.bend)
    store = CheckpointStore(tmp_path, curve_settings(model, ta, tb, x, y, **settings))
    assert first.checkpoints == store.directory
    assert sorted(p.name for p in store.directory.iterdir()) == [
        f"epoch{e:03d}.pt" for e in range(1, 6)
    ]
    # killed after epoch 3: the last two checkpoints never written
    store.path(4).unlink()
    store.path(5).unlink()
    resumed = train_bezier(model, ta, tb, x, y, **settings, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 3
    assert torch.equal(resumed.bend, full.bend) and resumed.losses == full.losses
    finished = train_bezier(model, ta, tb, x, y, **settings, checkpoint_dir=tmp_path)
    assert finished.resumed_from == 5 and torch.equal(finished.bend, full.bend)


@pytest.mark.parametrize(
    "change",
    [
        {"epochs": 3},
        {"epochs": 6},
        {"lr": 0.05},
        {"momentum": 0.5},
        {"optimizer": "adam"},
        {"seed": 2},
        {"batch_size": 40},
    ],
    ids=lambda change: ",".join(change),
)
def test_a_changed_curve_setting_trains_afresh(tmp_path, curve_case, change):
    model, ta, tb, x, y = curve_case
    train_bezier(model, ta, tb, x, y, **CURVE, checkpoint_dir=tmp_path)
    settings = {**CURVE, **change}
    fresh = train_bezier(model, ta, tb, x, y, **settings)
    rerun = train_bezier(model, ta, tb, x, y, **settings, checkpoint_dir=tmp_path)
    assert rerun.resumed_from is None
    assert torch.equal(rerun.bend, fresh.bend) and rerun.losses == fresh.losses
    assert len(list(tmp_path.iterdir())) == 2  # one store per key, side by side


def test_other_endpoints_data_or_architecture_train_afresh(tmp_path, curve_case):
    model, ta, tb, x, y = curve_case
    train_bezier(model, ta, tb, x, y, **CURVE, checkpoint_dir=tmp_path)
    tanh = mlp(0, activation="tanh")  # the same parameter shapes, another function
    for case in [(model, tb, ta, x, y), (model, ta, tb, x[:300], y[:300]), (tanh, ta, tb, x, y)]:
        fresh = train_bezier(*case, **CURVE)
        rerun = train_bezier(*case, **CURVE, checkpoint_dir=tmp_path)
        assert rerun.resumed_from is None and torch.equal(rerun.bend, fresh.bend)
    rerun = train_bezier(model, ta, tb, x, y, **CURVE, checkpoint_dir=tmp_path, identity={"d": 1})
    assert rerun.resumed_from is None
    assert len(list(tmp_path.iterdir())) == 5


def test_bend_checkpoints_load_with_weights_only(tmp_path, curve_case):
    model, ta, tb, x, y = curve_case
    train_bezier(model, ta, tb, x, y, **{**CURVE, "epochs": 2}, checkpoint_dir=tmp_path)
    train_bezier(
        model,
        ta,
        tb,
        x,
        y,
        **{**CURVE, "epochs": 2, "optimizer": "adam", "lr": 1e-3},
        checkpoint_dir=tmp_path,
    )
    xb, yb = data(200)
    bn = mlp(0, norm="batchnorm")
    train_bezier(
        bn,
        flat_parameters(bn),
        flat_parameters(mlp(1, norm="batchnorm")),
        xb,
        yb,
        **{**CURVE, "epochs": 2},
        checkpoint_dir=tmp_path,
    )
    files = sorted(tmp_path.rglob("*.pt"))
    assert len(files) == 6
    for path in files:
        state = torch.load(path, weights_only=True)
        assert {"bend", "optimizer", "rng", "losses", "epoch", "key"} <= set(state)


def test_plane_basis_on_a_closed_form_case():
    a = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    b = a + torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)
    bend = a + torch.tensor([1.0, -3.0, 0.0], dtype=torch.float64)
    u_dir, v_dir, scale, bend_uv = plane_basis(a, b, bend)
    assert scale == 2.0 and bend_uv == pytest.approx((0.5, 1.5))  # v points to the bend
    torch.testing.assert_close(u_dir, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(v_dir, torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="coincide"):
        plane_basis(a, a, bend)


def test_plane_basis_is_orthonormal_and_holds_the_three_points():
    generator = torch.Generator().manual_seed(0)
    a, b, bend = (torch.randn(50, generator=generator, dtype=torch.float64) for _ in range(3))
    basis = plane_basis(a, b, bend)
    gram = torch.stack([basis.u_dir, basis.v_dir]) @ torch.stack([basis.u_dir, basis.v_dir]).T
    torch.testing.assert_close(gram, torch.eye(2, dtype=torch.float64))
    assert basis.scale == pytest.approx(float((b - a).norm()))

    def at(u, v):
        return a + basis.scale * (u * basis.u_dir + v * basis.v_dir)

    torch.testing.assert_close(at(1.0, 0.0), b)
    torch.testing.assert_close(at(*basis.bend_uv), bend)
    assert basis.bend_uv[1] > 0  # v points towards the bend
    # the notebook's curve, the Bezier curve of the three points' (u, v), is the projection
    ts = np.linspace(0, 1, 7)
    origin, end = np.zeros(2), np.array([1.0, 0.0])
    curve = bezier_point(origin, np.array(basis.bend_uv), end, ts[:, None])
    for t, (u, v) in zip(ts, curve, strict=True):
        torch.testing.assert_close(at(u, v), bezier_point(a, bend, b, float(t)))


@pytest.mark.parametrize("bend_v", [0.7, -0.4])
def test_plane_grid_covers_both_solutions_and_the_bend(bend_v):
    grid = plane_grid((0.4, bend_v), resolution=6, margin=0.25)
    assert grid.shape == (36, 2)
    us, vs = np.unique(grid[:, 0]), np.unique(grid[:, 1])
    np.testing.assert_allclose(us, np.linspace(-0.25, 1.25, 6))
    np.testing.assert_allclose([vs.min(), vs.max()], [min(0, bend_v) - 0.25, max(0, bend_v) + 0.25])
    assert (grid[:6, 0] == grid[0, 0]).all()  # u varies slowest


@pytest.mark.parametrize("options", [{}, {"norm": "batchnorm"}])
def test_evaluate_plane_matches_the_model_at_each_point(options):
    x, y = data(200)
    a, b, c = mlp(0, **options), mlp(1, **options), mlp(2, **options)
    ta, tb, tc = flat_parameters(a), flat_parameters(b), flat_parameters(c)
    basis = plane_basis(ta, tb, tc)
    grid = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, -0.2], list(basis.bend_uv)])
    statistics = x if options else None
    loss, accuracy = evaluate_plane(mlp(5, **options), ta, basis, grid, x, y, statistics)
    points = [ta, tb, ta + basis.scale * (0.3 * basis.u_dir - 0.2 * basis.v_dir), tc]
    if options:
        expected = evaluate_points(a, points, x, y, x)
    else:
        expected = linear_path(a, ta, tb, [0.0, 1.0], x, y)
        probe = mlp(3)
        for vector in points[2:]:
            torch.nn.utils.vector_to_parameters(vector, probe.parameters())
            expected = tuple(
                np.r_[e, v] for e, v in zip(expected, evaluate(probe, x, y), strict=True)
            )
    np.testing.assert_allclose(loss, expected[0], rtol=1e-5)
    np.testing.assert_allclose(accuracy, expected[1])
    records = plane_records(a, ta, basis, grid, {"train": (x, y)}, statistics)
    assert [(r["split"], r["metric"]) for r in records] == [("train", "loss"), ("train", "error")]
    np.testing.assert_allclose(records[1]["value"], 1 - accuracy)
    assert records[0]["bend_u"] == basis.bend_uv[0] and records[0]["bend_v"] == basis.bend_uv[1]


def test_path_points_hold_both_endpoints():
    ts = path_points(4, 0.1)
    assert ts[0] == pytest.approx(-0.1) and ts[-1] == pytest.approx(1.1)
    assert 0.0 in ts and 1.0 in ts and (np.diff(ts) > 0).all()
    np.testing.assert_array_equal(path_points(5, 0.0), np.linspace(0, 1, 5))


def test_path_records_are_the_paths_and_their_barriers():
    x, y = data(200)
    a, b, c = mlp(0), mlp(1), mlp(2)
    ta, tb, tc = flat_parameters(a), flat_parameters(b), flat_parameters(c)
    ts, curve_ts = path_points(5, 0.2), np.linspace(0, 1, 4)
    splits = {"train": (x[:100], y[:100]), "test": (x[100:], y[100:])}
    paths, barriers = path_records(
        a, ta, {"linear": tb}, {"bezier": (tc, tb)}, splits, ts, curve_ts
    )
    keys = [(r["split"], r["path"], r["metric"]) for r in paths]
    assert keys == [
        (s, p, m) for s in splits for p in ("linear", "bezier") for m in ("loss", "error")
    ]
    assert keys == [(r["split"], r["path"], r["metric"]) for r in barriers]
    loss, accuracy = bezier_path(a, ta, tc, tb, curve_ts, *splits["test"])
    np.testing.assert_array_equal(paths[6]["value"], loss)
    np.testing.assert_array_equal(paths[7]["value"], 1 - accuracy)
    np.testing.assert_array_equal(paths[7]["t"], curve_ts)
    assert barriers[7]["barrier"] == barrier(curve_ts, 1 - accuracy)
    assert barriers[0]["barrier"] == barrier(ts, linear_path(a, ta, tb, ts, *splits["train"])[0])


def test_measure_connectivity_trains_each_bend_in_its_own_folder(tmp_path):
    x, y = data(200)
    a, b = mlp(0), mlp(1)
    settings = {
        "n_points": 4,
        "extrapolate": 0.1,
        "curve_points": 3,
        "curve_epochs": 1,
        "curve_optimizer": "sgd",
        "curve_lr": 0.05,
        "curve_momentum": 0.9,
        "curve_batch_size": 50,
        "curve_seed": 0,
        "plane_resolution": 3,
        "plane_margin": 0.1,
    }
    splits = {"train": (x[:100], y[:100])}
    result = measure_connectivity(
        a, b, x, y, splits, x[:100], aligned_curve=True, checkpoint_dir=tmp_path, **settings
    )
    assert list(result.bends) == ["bezier", "aligned_bezier"]
    # checkpoint_dir/<path name>/<key>/epoch001.pt
    assert {p.parent.parent.name for p in tmp_path.rglob("epoch*.pt")} == {
        "bezier",
        "aligned_bezier",
    }
    assert [r["path"] for r in result.barriers][::2] == [
        "linear",
        "aligned",
        "bezier",
        "aligned_bezier",
    ]
    assert len(result.plane) == 2 and len(result.plane[0]["value"]) == 9
    again = measure_connectivity(
        a, b, x, y, splits, x[:100], aligned_curve=False, checkpoint_dir=tmp_path, **settings
    )
    assert list(again.bends) == ["bezier"] and again.bends["bezier"].resumed_from == 1
    assert torch.equal(again.bends["bezier"].bend, result.bends["bezier"].bend)
    for new, old in zip(again.plane, result.plane, strict=True):
        np.testing.assert_array_equal(new["value"], old["value"])


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"residual": True, "norm": "layernorm"},
        {"norm": "batchnorm"},
        {"hidden": [16, 8, 12], "activation": "tanh"},
    ],
)
def test_weight_matching_recovers_a_known_permutation(options):
    x, _ = data()
    a = mlp(0, **options)
    if options.get("norm") == "batchnorm":
        a.train()
        a(x)  # non-trivial running statistics, which must move with their units
    a.eval()
    spec = permutation_spec(a)
    generator = torch.Generator().manual_seed(5)
    known = {
        g: torch.randperm(n, generator=generator) for g, n in spec.sizes(a.state_dict()).items()
    }
    b = mlp(0, **options)
    b.load_state_dict(permute_state(a.state_dict(), spec, known))
    b.eval()
    # the permuted network computes the same function
    torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)
    aligned = aligned_model(a, b)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(aligned.state_dict()[key], value, rtol=0, atol=0)


def test_alignment_preserves_the_function_of_independent_networks():
    x, y = data(400)
    a, b = _fit(mlp(0), x, y, 100), _fit(mlp(1), x, y, 100)
    a.eval(), b.eval()
    result = weight_matching(a, b)
    aligned = aligned_model(a, b)
    torch.testing.assert_close(aligned(x), b(x), rtol=1e-5, atol=1e-5)
    assert result.iterations >= 1
    assert any(not torch.equal(p, torch.arange(len(p))) for p in result.perms.values())
    # alignment brings b's weights closer to a's
    assert (flat_parameters(aligned) - flat_parameters(a)).norm() < (
        flat_parameters(b) - flat_parameters(a)
    ).norm()


def test_unalignable_models_are_named():
    with pytest.raises(AlignmentError, match="not applicable to Sequential"):
        permutation_spec(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(AlignmentError, match="no hidden units"):
        permutation_spec(build_model({"name": "mlp", "hidden": []}))
    with pytest.raises(AlignmentError, match="different architectures"):
        weight_matching(mlp(0), mlp(0, hidden=[16, 8]))
    with pytest.raises(ValueError, match="parameters"):
        linear_path(mlp(0), flat_parameters(mlp(0)), torch.zeros(3), [0.0, 1.0], *data())


@pytest.mark.mnist
def test_alignment_preserves_the_function_on_real_mnist(tmp_path):
    from lossgeom.data import load_dataset, prepare_dataset
    from tests.conftest import REAL_MIRROR, require_real_mirror

    require_real_mirror()
    prepare_dataset("mnist", tmp_path, tmp_path / "mnist.pt", mirror=REAL_MIRROR)
    x = load_dataset(tmp_path / "mnist.pt").test_x[:2000]
    torch.manual_seed(0)
    a = build_model({"name": "mlp"}).eval()
    torch.manual_seed(1)
    b = build_model({"name": "mlp"}).eval()
    aligned = aligned_model(a, b).eval()
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), b(x), rtol=1e-5, atol=1e-5)


def _script_command(tmp_path, synthetic_mirror, hidden_b):
    """The script's command line on synthetic data, with every flag the workflow passes."""
    import sys

    from lossgeom.data import prepare_dataset
    from lossgeom.runs import save_weights
    from tests.conftest import REPO

    folder, checksums = synthetic_mirror
    prepare_dataset("mnist", tmp_path, tmp_path / "mnist.pt", mirror=folder, checksums=checksums)
    for seed, hidden in ((0, [16]), (1, hidden_b)):
        spec = {"name": "mlp", "hidden": hidden}
        torch.manual_seed(seed)
        save_weights(
            tmp_path / f"w{seed}.pt",
            build_model(spec).state_dict(),
            spec,
            experiment="e",
            seed=seed,
            epoch=1,
            status="completed",
        )
    out = tmp_path / "out"
    return out, [
        sys.executable,
        str(REPO / "scripts" / "connectivity.py"),
        "--data",
        str(tmp_path / "mnist.pt"),
        "--dataset",
        "mnist",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--weights-a",
        str(tmp_path / "w0.pt"),
        "--weights-b",
        str(tmp_path / "w1.pt"),
        "--subset",
        "100",
        "--subset-seed",
        "0",
        "--n-points",
        "5",
        "--extrapolate",
        "0",
        "--curve-points",
        "5",
        "--curve-epochs",
        "1",
        "--curve-optimizer",
        "sgd",
        "--curve-lr",
        "0.1",
        "--curve-momentum",
        "0.9",
        "--curve-batch-size",
        "32",
        "--curve-seed",
        "0",
        "--no-aligned-curve",
        "--plane-resolution",
        "3",
        "--plane-margin",
        "0.1",
        "--checkpoint-dir",
        str(out / "ckpt"),
        "--paths",
        str(out / "p.csv"),
        "--barriers",
        str(out / "b.csv"),
        "--plane",
        str(out / "q.csv"),
        "--bends",
        str(out / "bends.pt"),
    ]


def test_script_refuses_mismatched_endpoints_before_training(tmp_path, synthetic_mirror):
    import subprocess

    out, command = _script_command(tmp_path, synthetic_mirror, hidden_b=[8])
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert "architectures differ" in result.stderr
    assert not out.exists()  # nothing trained, nothing written


def test_script_requires_every_flag_and_writes_the_tables(tmp_path, synthetic_mirror):
    import subprocess

    import pandas as pd

    out, command = _script_command(tmp_path, synthetic_mirror, hidden_b=[16])
    for flag in ("--curve-optimizer", "--no-aligned-curve", "--plane-margin"):
        index = command.index(flag)
        dropped = command[:index] + command[index + (1 if flag.startswith("--no-") else 2) :]
        result = subprocess.run(dropped, capture_output=True, text=True)
        assert result.returncode == 2 and "required" in result.stderr, (flag, result.stderr)
    assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    paths, plane = pd.read_csv(out / "p.csv"), pd.read_csv(out / "q.csv")
    assert set(paths.path) == {"linear", "aligned", "bezier"}
    assert len(plane) == 2 * 2 * 9 and set(pd.read_csv(out / "b.csv").split) == {"train", "test"}
    assert len(list((out / "ckpt" / "bezier").rglob("epoch001.pt"))) == 1


def test_bend_trains_with_adam_and_rejects_unknown_optimizers():
    x, y = data(200)
    a, b = mlp(0), mlp(1)
    ta, tb = flat_parameters(a), flat_parameters(b)
    result = train_bezier(a, ta, tb, x, y, epochs=1, lr=1e-3, batch_size=50, optimizer="adam")
    assert not torch.equal(result.bend, (ta + tb) / 2) and len(result.losses) == 1
    with pytest.raises(ValueError, match="optimizer.name 'lbfgs' is unknown"):
        train_bezier(a, ta, tb, x, y, epochs=1, lr=0.1, optimizer="lbfgs")


def test_batchnorm_paths_recompute_statistics_per_point():
    from lossgeom.connectivity import recompute_batchnorm

    x, y = data(400)
    a = _fit(mlp(0, norm="batchnorm"), x, y, 60)
    b = _fit(mlp(1, norm="batchnorm"), x, y, 60)
    a.eval(), b.eval()
    ta, tb = flat_parameters(a), flat_parameters(b)
    with pytest.raises(ValueError, match="statistics_data"):
        linear_path(a, ta, tb, [0.0, 1.0], x, y)
    ts = np.array([0.0, 0.5, 1.0])
    loss, _ = linear_path(a, ta, tb, ts, x, y, statistics_data=x)
    # at each point: a network at those weights with statistics of x, evaluated in eval mode
    probe = mlp(2, norm="batchnorm")
    torch.nn.utils.vector_to_parameters(0.5 * ta + 0.5 * tb, probe.parameters())
    recompute_batchnorm(probe, x)
    torch.testing.assert_close(
        probe.norms[0].running_mean, probe.input_layer(x).mean(0), rtol=1e-4, atol=1e-5
    )
    assert loss[1] == pytest.approx(evaluate(probe, x, y)[0], rel=1e-5)
    assert evaluate_points(a, [ta], x, y, x)[0][0] == pytest.approx(loss[0], rel=1e-6)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    result = train_bezier(a, ta, tb, x, y, epochs=1, lr=0.05, batch_size=50)
    assert all(torch.equal(v, before[k]) for k, v in a.state_dict().items())  # buffers untouched
    curve, _ = bezier_path(a, ta, result.bend, tb, ts, x, y, statistics_data=x)
    assert np.isfinite(curve).all()
