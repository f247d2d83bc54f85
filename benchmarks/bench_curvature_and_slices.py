"""Benchmark: HVP cost, eigenvalue convergence and slice throughput, measured side by side.

Runs on the report's MLP (784-512-10) with 10,000 real MNIST training samples, at weights
trained for one epoch with the report's optimiser (or at --weights). Prints:

  (a) one fresh HVP's time / one gradient's time, for 10 batches of 1,000 and 1 of 10,000;
  (b) the amortised time per HVP inside top_eigenvalues / one gradient;
  (c) HVPs and seconds top_eigenvalues needs for k = 1 and k = 3 at 1e-3 relative error
      against a tightly converged reference, next to the report's power iteration;
  (d) 2D-slice throughput against the report's per-point loop on the same grid and data;
  (e) mode-connectivity path throughput against a per-point loop.

Usage (from the repository root, machine otherwise idle):
    python benchmarks/bench_curvature_and_slices.py --data resources/mnist/mnist.pt
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from lossgeom import hessian
from lossgeom.connectivity import linear_path
from lossgeom.data import chunks, load_dataset
from lossgeom.directions import random_direction
from lossgeom.landscape import evaluate_slice, evaluate_slice_reference, grid_2d
from lossgeom.models import flat_parameters
from lossgeom.runs import load_weights, training_subset
from lossgeom.training import train


def synchronize() -> None:
    """Wait for queued GPU work, so that a wall-clock timer brackets the work itself."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def paired(first, second, repeats: int) -> tuple[float, float]:
    """Median times of two functions called alternately, so machine noise hits both alike."""
    first(), second()
    a, b = [], []
    for _ in range(repeats):
        for function, times in ((first, a), (second, b)):
            synchronize()
            start = time.perf_counter()
            function()
            synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def gradient_function(model, batches):
    """One full gradient of the mean loss over ``batches`` (the unit of cost)."""
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(x.shape[0] for x, _ in batches)

    def gradient():
        for x, y in batches:
            torch.autograd.grad(F.cross_entropy(model(x), y) * (x.shape[0] / total), params)

    return gradient


def ritz_history(alpha: np.ndarray, beta: np.ndarray, k: int) -> list[np.ndarray]:
    """Top-k Ritz values after each Lanczos step (T_j is the leading j x j block of T_m)."""
    history = []
    for j in range(1, len(alpha) + 1):
        theta = (
            scipy.linalg.eigh_tridiagonal(alpha[:j], beta[: j - 1], eigvals_only=True)
            if j > 1
            else alpha[:1]
        )
        history.append(np.sort(theta)[::-1][:k])
    return history


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="resources/mnist/mnist.pt")
    parser.add_argument("--weights", default=None, help="weight file (default: train 1 epoch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--slice-resolution", type=int, default=21, help="grid for the loop comparison"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, expect="mnist")
    scratch = (
        tempfile.TemporaryDirectory()
    )  # checkpoints of the benchmark's own training; removed at exit
    spec_one_epoch = {
        "model": {"name": "mlp", "hidden": [512]},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "epochs": 1,
        "batch_size": 128,
    }
    if args.weights:
        model, _ = load_weights(args.weights)
    else:
        model = train(
            spec_one_epoch, data, seed=0, checkpoint_dir=f"{scratch.name}/a", progress=False
        ).model
    model.eval()
    x, y = training_subset(data, 10_000, 2024)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, report MLP, 10,000 MNIST samples\n"
    )

    print("(a) fresh HVP / gradient")
    for label, size in (("10 x 1,000", 1000), ("1 x 10,000", 10_000)):
        batches = chunks(x, y, size)
        v = torch.randn(sum(p.numel() for p in model.parameters()))
        t_grad, t_hvp = paired(
            gradient_function(model, batches),
            lambda b=batches, vec=v: hessian.hvp(model, F.cross_entropy, b, vec),
            args.repeats,
        )
        print(
            f"    {label:>11}: gradient {t_grad * 1e3:7.1f} ms, HVP {t_hvp * 1e3:7.1f} ms, ratio {t_hvp / t_grad:.2f} (target <= 2.5)"
        )

    batches = chunks(x, y, 1000)
    gradient = gradient_function(model, batches)
    print("\n(b) amortised HVP inside top_eigenvalues (graph building included) / gradient")
    for k in (1, 3):
        result = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k)
        t_grad, seconds = paired(
            gradient,
            lambda k=k: hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k),
            args.repeats,
        )
        per_hvp = seconds / result.n_hvp
        print(
            f"    k={k}: {result.n_hvp} HVPs in {seconds:.2f} s (median of {args.repeats}), "
            f"{per_hvp * 1e3:.1f} ms per HVP, ratio {per_hvp / t_grad:.2f} (target <= 1.2)"
        )
    with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
        v = torch.randn(operator.dim)
        t_grad, t_matvec = paired(gradient, lambda: operator.matvec(v), args.repeats)
    print(
        f"    one product on the kept graph: {t_matvec * 1e3:.1f} ms, ratio {t_matvec / t_grad:.2f}"
    )

    print("\n(c) HVPs to 1e-3 relative error against a tightly converged reference")
    reference = hessian.top_eigenvalues(
        model, F.cross_entropy, batches, k=3, tol=1e-9, max_iter=300, seed=123
    )
    exact = reference.values.numpy()
    print(
        f"    reference (tol 1e-9, {reference.n_hvp} HVPs): {np.array2string(exact, precision=6)}"
    )
    with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
        start = torch.randn(operator.dim, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        run = hessian.lanczos(operator.matvec, start, 80)
        per_step = (time.perf_counter() - t0) / run.n_matvecs
        history = ritz_history(run.alpha, run.beta, 3)
        for k in (1, 3):
            errors = [
                np.max(np.abs(h[:k] - exact[:k]) / np.abs(exact[:k])) if len(h) >= k else np.inf
                for h in history
            ]
            needed = next(
                (
                    j + 1
                    for j, e in enumerate(errors)
                    if e <= 1e-3 and all(e2 <= 1e-3 for e2 in errors[j:])
                ),
                None,
            )
            default = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k)
            err_default = np.max(np.abs(default.values.numpy() - exact[:k]) / np.abs(exact[:k]))
            print(
                f"    Lanczos k={k}: {needed} HVPs (~{needed * per_step:.2f} s) to reach 1e-3 "
                f"(target <= {30 if k == 1 else 60}); default tol=1e-4 stops after {default.n_hvp} HVPs, "
                f"{default.seconds:.2f} s, error {err_default:.1e}"
            )
        # The report's listing: power iteration from a random start, 10 fixed steps, returns ||Hv||.
        v = torch.randn(operator.dim, generator=torch.Generator().manual_seed(0))
        v /= v.norm()
        t0 = time.perf_counter()
        estimates, reached, reached_time = [], None, None
        for step in range(1, 1001):
            w = operator.matvec(v)
            norm = float(w.norm())
            estimates.append(norm)
            v = w / norm
            if reached is None and abs(norm - exact[0]) / exact[0] <= 1e-3:
                reached, reached_time = step, time.perf_counter() - t0
                break
        err10 = abs(estimates[9] - exact[0]) / exact[0]
        print(
            f"    report's power iteration: after its 10 fixed steps, error {err10:.1e}; "
            f"reaches 1e-3 after {reached} steps ({reached_time if reached_time else float('nan'):.2f} s)"
        )

    print("\n(d) 2D slice throughput, batched (this library) vs the report's per-point loop")
    directions = [random_direction(model, 1), random_direction(model, 2)]
    points = grid_2d(args.slice_resolution, 1.0)
    t0 = time.perf_counter()
    fast_loss, fast_acc = evaluate_slice(model, directions, points, x, y)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_loss, ref_acc = evaluate_slice_reference(model, directions, points, x, y)
    t_ref = time.perf_counter() - t0
    diff = np.max(np.abs(fast_loss - ref_loss) / np.maximum(np.abs(ref_loss), 1e-12))
    print(
        f"    grid {args.slice_resolution}x{args.slice_resolution} on [-1, 1], 10,000 samples: "
        f"batched {len(points) / t_fast:.1f} points/s, loop {len(points) / t_ref:.1f} points/s, "
        f"speed-up {t_ref / t_fast:.1f}x (target >= 5); max relative loss difference {diff:.1e}, "
        f"accuracy difference {np.max(np.abs(fast_acc - ref_acc)):.1e} (must be <= 1e-5)"
    )
    full = grid_2d(41, 1.0)
    t0 = time.perf_counter()
    evaluate_slice(model, directions, full, x, y)
    print(f"    default 41x41 grid, batched: {time.perf_counter() - t0:.1f} s")

    print("\n(e) path evaluation (mode connectivity), batched vs per-point loop, 31 points")
    other = train(
        spec_one_epoch, data, seed=1, checkpoint_dir=f"{scratch.name}/b", progress=False
    ).model
    a, b = flat_parameters(model), flat_parameters(other)
    ts = np.linspace(0, 1, 31)
    t0 = time.perf_counter()
    path_loss, _ = linear_path(model, a, b, ts, x, y)
    t_path = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop_loss, _ = evaluate_slice_reference(model, [b - a], ts[:, None], x, y)
    t_loop = time.perf_counter() - t0
    print(
        f"    linear path, 10,000 samples: batched {len(ts) / t_path:.1f} points/s, loop "
        f"{len(ts) / t_loop:.1f} points/s, speed-up {t_loop / t_path:.1f}x; max relative loss "
        f"difference {np.max(np.abs(path_loss - loop_loss) / loop_loss):.1e}"
    )


if __name__ == "__main__":
    main()
