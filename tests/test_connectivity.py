"""Mode connectivity: barriers, Bezier curves and weight matching on small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lossgeom.connectivity import (
    AlignmentError,
    aligned_model,
    barrier,
    bezier_path,
    bezier_point,
    linear_path,
    permutation_spec,
    permute_state,
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
    model = build_model({"name": "mlp", "input_dim": 1, "hidden": [2], "num_classes": 2,
                         "activation": "tanh"}).double()
    with torch.no_grad():
        model.input_layer.weight.copy_(torch.tensor([[s], [-s]]))
        model.output_layer.weight.copy_(c * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
        model.input_layer.bias.zero_()
        model.output_layer.bias.zero_()
    a = flat_parameters(model)
    groups, axes = permutation_spec(model)
    swapped = permute_state(model.state_dict(), axes, {groups[0]: torch.tensor([1, 0])})
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


def test_trained_bend_lowers_the_curve_and_resumes(tmp_path):
    x, y = data(400)
    a, b = _fit(mlp(0), x, y), _fit(mlp(1), x, y)
    ta, tb = flat_parameters(a), flat_parameters(b)
    ts = np.linspace(0, 1, 21)
    straight, _ = linear_path(a, ta, tb, ts, x, y)
    result = train_bezier(a, ta, tb, x, y, epochs=20, lr=0.1, batch_size=50, seed=0)
    curved, _ = bezier_path(a, ta, result.bend, tb, ts, x, y)
    assert barrier(ts, curved) < barrier(ts, straight)
    # killed after 3 epochs, then resumed: the same bend as 5 uninterrupted epochs
    full = train_bezier(a, ta, tb, x, y, epochs=5, lr=0.1, batch_size=50, seed=1, checkpoint_dir=tmp_path / "f")
    train_bezier(a, ta, tb, x, y, epochs=3, lr=0.1, batch_size=50, seed=1, checkpoint_dir=tmp_path / "r")
    resumed = train_bezier(a, ta, tb, x, y, epochs=5, lr=0.1, batch_size=50, seed=1, checkpoint_dir=tmp_path / "r")
    assert resumed.resumed_from == 3 and torch.equal(resumed.bend, full.bend)
    with pytest.raises(RuntimeError, match="other endpoints"):
        train_bezier(a, tb, ta, x, y, epochs=6, lr=0.1, checkpoint_dir=tmp_path / "r")


@pytest.mark.parametrize("options", [{}, {"residual": True, "norm": "layernorm"}, {"norm": "batchnorm"},
                                     {"hidden": [16, 8, 12], "activation": "tanh"}])
def test_weight_matching_recovers_a_known_permutation(options):
    x, _ = data()
    a = mlp(0, **options)
    if options.get("norm") == "batchnorm":
        a.train()
        a(x)  # non-trivial running statistics, which must move with their units
    a.eval()
    groups, axes = permutation_spec(a)
    generator = torch.Generator().manual_seed(5)
    sizes = {g: next(a.state_dict()[n].shape[k] for n, s in axes.items() for k, h in enumerate(s) if h == g)
             for g in groups}
    known = {g: torch.randperm(sizes[g], generator=generator) for g in groups}
    b = mlp(0, **options)
    b.load_state_dict(permute_state(a.state_dict(), axes, known))
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
    assert (flat_parameters(aligned) - flat_parameters(a)).norm() < (flat_parameters(b) - flat_parameters(a)).norm()


def test_unalignable_models_are_named():
    with pytest.raises(AlignmentError, match="Sequential has no permutation"):
        permutation_spec(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(AlignmentError, match="no hidden units"):
        permutation_spec(build_model({"name": "mlp", "hidden": []}))
    with pytest.raises(AlignmentError, match="different architectures"):
        weight_matching(mlp(0), mlp(0, hidden=[16, 8]))
    with pytest.raises(ValueError, match="parameters"):
        linear_path(mlp(0), flat_parameters(mlp(0)), torch.zeros(3), [0.0, 1.0], *data())


@pytest.mark.mnist
def test_alignment_preserves_the_function_on_real_mnist(tmp_path):
    from lossgeom.data import load_mnist, prepare_mnist
    from tests.conftest import REAL_MIRROR, require_real_mirror

    require_real_mirror()
    prepare_mnist(tmp_path, tmp_path / "mnist.pt", mirror=REAL_MIRROR)
    x = load_mnist(tmp_path / "mnist.pt", 0.1307, 0.3081).test_x[:2000]
    torch.manual_seed(0)
    a = build_model({"name": "mlp"}).eval()
    torch.manual_seed(1)
    b = build_model({"name": "mlp"}).eval()
    aligned = aligned_model(a, b).eval()
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), b(x), rtol=1e-5, atol=1e-5)


def test_script_refuses_mismatched_endpoints_before_training(tmp_path, synthetic_mirror):
    import subprocess
    import sys

    from lossgeom.data import prepare_mnist
    from lossgeom.runs import save_weights
    from tests.conftest import REPO

    folder, checksums = synthetic_mirror
    prepare_mnist(tmp_path, tmp_path / "mnist.pt", mirror=folder, checksums=checksums)
    for seed, hidden in ((0, [16]), (1, [8])):
        spec = {"name": "mlp", "hidden": hidden}
        save_weights(tmp_path / f"w{seed}.pt", build_model(spec).state_dict(), spec,
                     experiment="e", seed=seed, epoch=1, status="completed")
    out = tmp_path / "out"
    command = [
        sys.executable, str(REPO / "scripts" / "connectivity.py"), "--data", str(tmp_path / "mnist.pt"),
        "--mean", "0.13", "--std", "0.3", "--device", "cpu", "--weights-a", str(tmp_path / "w0.pt"),
        "--weights-b", str(tmp_path / "w1.pt"), "--subset", "100", "--subset-seed", "0", "--n-points", "5",
        "--extrapolate", "0", "--curve-points", "5", "--curve-epochs", "1", "--curve-lr", "0.1",
        "--curve-momentum", "0.9", "--curve-batch-size", "32", "--curve-seed", "0",
        "--plane-resolution", "3", "--plane-margin", "0.1", "--checkpoint-dir", str(out / "ckpt"),
        "--paths", str(out / "p.csv"), "--barriers", str(out / "b.csv"), "--plane", str(out / "q.csv"),
        "--bends", str(out / "bends.pt"),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0
    assert "architectures differ" in result.stderr
    assert not out.exists()  # nothing trained, nothing written


def test_bend_trains_with_adam_and_rejects_unknown_optimizers():
    x, y = data(200)
    a, b = mlp(0), mlp(1)
    ta, tb = flat_parameters(a), flat_parameters(b)
    result = train_bezier(a, ta, tb, x, y, epochs=1, lr=1e-3, batch_size=50, optimizer="adam")
    assert not torch.equal(result.bend, (ta + tb) / 2) and len(result.losses) == 1
    with pytest.raises(ValueError, match="optimizer.name 'lbfgs' is unknown"):
        train_bezier(a, ta, tb, x, y, epochs=1, lr=0.1, optimizer="lbfgs")


def test_batchnorm_paths_recompute_statistics_per_point():
    from lossgeom.connectivity import evaluate_points, recompute_batchnorm

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
    torch.testing.assert_close(probe.norms[0].running_mean, probe.input_layer(x).mean(0), rtol=1e-4, atol=1e-5)
    assert loss[1] == pytest.approx(evaluate(probe, x, y)[0], rel=1e-5)
    assert evaluate_points(a, [ta], x, y, x)[0][0] == pytest.approx(loss[0], rel=1e-6)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    result = train_bezier(a, ta, tb, x, y, epochs=1, lr=0.05, batch_size=50)
    assert all(torch.equal(v, before[k]) for k, v in a.state_dict().items())  # buffers untouched
    curve, _ = bezier_path(a, ta, result.bend, tb, ts, x, y, statistics_data=x)
    assert np.isfinite(curve).all()
