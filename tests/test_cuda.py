"""The CUDA path against the CPU: Hessian products, eigenvalues, slices and training.

On a machine without a GPU every CUDA test is skipped with the reason "CUDA not available"
(listed by pytest's ``-ra`` summary), never passed; only the error for ``device=cuda``
without a GPU is checked there.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossgeom import hessian
from lossgeom.directions import random_direction
from lossgeom.landscape import evaluate_slice, grid_2d
from lossgeom.models import build_model
from lossgeom.training import resolve_device, train

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
SPEC = {
    "model": {"name": "mlp", "hidden": [16]},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "epochs": 1,
    "batch_size": 32,
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="(?i)cuda"):
        resolve_device("cuda")


def _small_problem(device: str, dtype: torch.dtype):
    torch.manual_seed(0)
    model = build_model(
        {"name": "mlp", "input_dim": 6, "hidden": [7], "num_classes": 3, "activation": "tanh"}
    ).to(device=device, dtype=dtype)
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2)).to(device)
    return model, [(x[:25], y[:25]), (x[25:], y[25:])]


@needs_cuda
def test_hvp_on_cuda_equals_the_cpu_float64_product():
    cpu_model, cpu_batches = _small_problem("cpu", torch.float64)
    gpu_model, gpu_batches = _small_problem("cuda", torch.float64)
    dim = sum(p.numel() for p in cpu_model.parameters())
    v = torch.randn(dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    expected = hessian.hvp(cpu_model, F.cross_entropy, cpu_batches, v)
    got = hessian.hvp(gpu_model, F.cross_entropy, gpu_batches, v.cuda())
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)


@needs_cuda
def test_top_eigenvalues_on_cuda_agree_with_the_cpu():
    cpu_model, cpu_batches = _small_problem("cpu", torch.float32)
    gpu_model, gpu_batches = _small_problem("cuda", torch.float32)
    kwargs = {"k": 3, "tol": 1e-6, "seed": 0}
    cpu = hessian.top_eigenvalues(cpu_model, F.cross_entropy, cpu_batches, **kwargs)
    gpu = hessian.top_eigenvalues(gpu_model, F.cross_entropy, gpu_batches, **kwargs)
    np.testing.assert_allclose(gpu.values.cpu().numpy(), cpu.values.numpy(), rtol=1e-4)


@needs_cuda
def test_slices_on_cuda_agree_with_the_cpu(synthetic_data):
    x, y = synthetic_data.train_x[:300].flatten(1), synthetic_data.train_y[:300]
    model = build_model({"name": "mlp", "input_dim": x.shape[1], "hidden": [16]})
    directions = [random_direction(model, 1), random_direction(model, 2)]
    points = grid_2d(5, 0.5)
    cpu_loss, cpu_acc = evaluate_slice(model, directions, points, x, y)
    gpu_model = model.cuda()
    gpu_directions = [d.cuda() for d in directions]
    gpu_loss, gpu_acc = evaluate_slice(gpu_model, gpu_directions, points, x.cuda(), y.cuda())
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-5)
    np.testing.assert_allclose(gpu_acc, cpu_acc, atol=1 / 300)


@needs_cuda
def test_training_on_cuda_agrees_with_the_cpu_and_resumes_bitwise(synthetic_data, tmp_path):
    cpu = train(SPEC, synthetic_data, seed=0, checkpoint_dir=tmp_path / "cpu", progress=False)
    gpu = train(
        SPEC, synthetic_data, seed=0, checkpoint_dir=tmp_path / "gpu", device="cuda", progress=False
    )
    assert cpu.status == gpu.status == "completed"
    expected = {(r["epoch"], r["split"], r["metric"]): r["value"] for r in cpu.rows}
    got = {(r["epoch"], r["split"], r["metric"]): r["value"] for r in gpu.rows}
    assert got.keys() == expected.keys()
    for key, value in got.items():  # losses and accuracies after the same minibatches
        assert value == pytest.approx(expected[key], rel=1e-3, abs=1e-3), key
    # A second call finds the finished run's checkpoints and returns the same weights.
    again = train(
        SPEC, synthetic_data, seed=0, checkpoint_dir=tmp_path / "gpu", device="cuda", progress=False
    )
    for a, b in zip(
        gpu.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
