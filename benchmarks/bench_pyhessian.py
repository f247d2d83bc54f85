"""Benchmark: lossgeom's curvature estimators against PyHessian's, side by side in one process.

PyHessian (Yao, Gholami, Keutzer & Mahoney 2020, "PyHessian: Neural Networks Through the Lens
of the Hessian"; github.com/amirgholami/PyHessian) is reimplemented here from its published
description, for one batch (its ``data=(inputs, targets)`` mode, its fastest):

  * HVP: the gradient of the batch loss is built once with ``create_graph=True`` and kept; each
    product is one ``autograd.grad`` of that gradient against ``v`` (graph retained).
  * Top eigenvalues: power iteration per eigenvalue from a Gaussian start, normalised
    (``v / (|v| + 1e-6)``); before each product the iterate is orthonormalised against the
    eigenvectors already found (one Gram-Schmidt pass); the estimate is ``v . Hv``; a stage
    stops when ``|new - old| / (|old| + 1e-6) < tol`` (default 1e-3), returning the previous
    estimate, or after ``maxIter`` (default 100) products; its eigenvector is ``Hv / |Hv|``.
  * Trace: Hutchinson with Rademacher probes; stops when the running mean changes by less
    than ``tol`` (1e-3) relative, or after ``maxIter`` (100) probes.

On the report's MLP (784-512-10 ReLU) with 10,000 real MNIST training samples, at weights
trained one epoch with the report's optimiser (or at --weights), it prints:

  (a) the unit costs: one gradient, building the kept graph, one product on it;
  (b) the reference: 80 Lanczos steps (top-3 eigenvalues converged to float32 accuracy) and
      the trace as the Lanczos basis's exact part plus Hutchinson on the deflated remainder;
  (c) top-1 and top-3: products and seconds (graph building included) for each method to
      first reach, and stay at, relative errors 1e-3 and 1e-4 (an oracle stop: PyHessian's
      stages each stopped at their own first reach-and-stay point, the most accurate vector
      deflated, which favours PyHessian); then what each returns with its own stopping rule;
      medians over --seeds starting vectors;
  (d) trace: mean absolute error against the reference at matched products (PyHessian's own
      stopping point, per seed, and a fixed budget), over --trace-seeds seeds.

lossgeom runs on --chunk-size chunks (default one chunk of 10,000: the same layout as
PyHessian's single batch, so only the estimators differ; (a) shows the cost of 1,000-sample
chunks, the pipeline's default).

Usage (from the repository root, machine otherwise idle; about 11 minutes on 2 quiet cores;
``--sections eigenvalues`` or ``--sections trace`` runs one half):
    python benchmarks/bench_pyhessian.py --data resources/mnist/mnist.pt
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from bench_curvature_and_slices import gradient_function, paired, ritz_history, synchronize

from lossgeom import estimators, hessian
from lossgeom.data import chunks, load_dataset
from lossgeom.runs import load_weights, training_subset
from lossgeom.training import train

TARGETS = (1e-3, 1e-4)


def _dot(xs, ys) -> float:
    return float(sum((x * y).sum() for x, y in zip(xs, ys, strict=True)))


def _normalised(v):
    norm = _dot(v, v) ** 0.5
    return [t / (norm + 1e-6) for t in v]


class PyHessianStyle:
    """PyHessian's ``hessian(model, criterion, data=(inputs, targets))``, reimplemented."""

    def __init__(self, model, criterion, inputs, targets):
        model.eval()
        self.params = [p for p in model.parameters() if p.requires_grad]
        loss = criterion(model(inputs), targets)
        self.grads = torch.autograd.grad(loss, self.params, create_graph=True)
        self.n_products = 0

    def product(self, v):
        self.n_products += 1
        return torch.autograd.grad(self.grads, self.params, grad_outputs=v, retain_graph=True)

    def eigenvalues(self, generator, max_iter=100, tol=1e-3, top_n=1, observe=None):
        """Power iteration as PyHessian's; ``observe(stage, estimate)`` after every product
        may return True to end the stage (the oracle runs), replacing the tolerance rule."""
        values, vectors = [], []
        for stage in range(top_n):
            v = _normalised([torch.randn(p.shape, generator=generator).to(p) for p in self.params])
            estimate = None
            for _ in range(max_iter):
                for u in vectors:  # orthonormalise against the eigenvectors found
                    overlap = _dot(v, u)
                    v = [a - overlap * b for a, b in zip(v, u, strict=True)]
                v = _normalised(v)
                hv = self.product(v)
                new = _dot(hv, v)
                v = _normalised(hv)
                if observe is not None:
                    if observe(stage, new):
                        estimate = new
                        break
                elif estimate is not None and abs(estimate - new) / (abs(estimate) + 1e-6) < tol:
                    break
                estimate = new
            values.append(estimate)
            vectors.append(v)
        return values

    def trace(self, generator, max_iter=100, tol=1e-3):
        samples, mean = [], 0.0
        for _ in range(max_iter):
            z = [2.0 * torch.randint(0, 2, p.shape, generator=generator).to(p) - 1.0
                 for p in self.params]  # fmt: skip
            samples.append(_dot(self.product(z), z))
            if abs(np.mean(samples) - mean) / (abs(mean) + 1e-6) < tol:
                break
            mean = float(np.mean(samples))
        return samples


def reach_and_stay(errors, target):
    """1-based index of the first error after which all errors are within target."""
    for j in range(len(errors)):
        if all(e <= target for e in errors[j:]):
            return j + 1
    return None


def relative_error(values, exact):
    k = len(values)
    return float(np.max(np.abs(np.asarray(values) - exact[:k]) / np.abs(exact[:k])))


def pyhessian_oracle(model, x, y, exact, seed, lookahead=3):
    """Per-stage trajectories of PyHessian's top-3 power iteration, each stage run until its
    error has stayed within the finer target for ``lookahead`` products (at most 100)."""
    t0 = time.perf_counter()
    solver = PyHessianStyle(model, F.cross_entropy, x, y)
    synchronize()
    built = time.perf_counter() - t0
    errors, stamps = [[], [], []], [[], [], []]

    def observe(stage, estimate):
        errors[stage].append(abs(estimate - exact[stage]) / exact[stage])
        stamps[stage].append(time.perf_counter())  # the stage's products, timed (synchronised:
        # ``estimate`` is a Python float)
        tail = errors[stage][-lookahead:]
        return len(tail) == lookahead and max(tail) <= min(TARGETS) / 2

    solver.eigenvalues(torch.Generator().manual_seed(seed), tol=0.0, top_n=3, observe=observe)
    out = {}
    for k in (1, 3):
        for target in TARGETS:
            steps = [reach_and_stay(errors[i], target) for i in range(k)]
            if None in steps:
                out[k, target] = (None, None)
                continue
            starts = [t0 + built, stamps[0][-1], stamps[1][-1]]  # each stage's start
            seconds = built + sum(stamps[i][n - 1] - starts[i] for i, n in enumerate(steps))
            out[k, target] = (sum(steps), seconds)
    return out


def lanczos_oracle(model, batches, exact, seed, start, steps=22):
    """Lanczos trajectory (lossgeom's operator and basis) from a seeded Gaussian start or the
    gradient start of ``top_eigenvalues(start="gradient")``."""
    t0 = time.perf_counter()
    stamps = []
    with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
        random = torch.randn(operator.dim, generator=torch.Generator().manual_seed(seed))
        random = random.to(operator.device)
        vector = random / random.norm()
        if start == "gradient":
            gradient = operator.gradient()
            vector = gradient / gradient.norm() + vector

        def matvec(v):
            w = operator.matvec(v)
            synchronize()
            stamps.append(time.perf_counter())
            return w

        run = estimators.lanczos(matvec, vector, steps)
    history = ritz_history(run.alpha, run.beta, 3)
    out = {}
    for k in (1, 3):
        errs = [relative_error(h[:k], exact) if len(h) >= k else np.inf for h in history]
        for target in TARGETS:
            n = reach_and_stay(errs, target)
            out[k, target] = (n, stamps[n - 1] - t0) if n else (None, None)
    return out


def median_pair(pairs):
    products = [p for p, _ in pairs if p is not None]
    seconds = [s for _, s in pairs if s is not None]
    if len(products) < len(pairs):
        return "not reached"
    return f"{statistics.median(products):5.1f} products {statistics.median(seconds):6.2f} s"


def setup(args):
    data = load_dataset(args.data, expect="mnist")
    if args.weights:
        model, _ = load_weights(args.weights)
    else:
        spec = {"model": {"name": "mlp", "hidden": [512]}, "epochs": 1, "batch_size": 128,
                "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}}  # fmt: skip
        with tempfile.TemporaryDirectory() as scratch:
            model = train(
                spec, data, seed=0, checkpoint_dir=scratch, progress=False, device=args.device
            ).model
    model.to(args.device).eval()
    x, y = training_subset(data, args.samples, 2024)
    return model, x.to(args.device), y.to(args.device)


def unit_costs(model, x, y, repeats):
    print("(a) unit costs, in gradients of the mean loss over 10,000 samples")
    gradient = gradient_function(model, [(x, y)])
    v_list = [torch.randn_like(p) for p in model.parameters()]
    solver = PyHessianStyle(model, F.cross_entropy, x, y)
    t_grad, t_build = paired(
        gradient, lambda: PyHessianStyle(model, F.cross_entropy, x, y), repeats
    )
    _, t_product = paired(gradient, lambda: solver.product(v_list), repeats)
    print(f"    gradient {t_grad * 1e3:.0f} ms; PyHessian-style: graph {t_build / t_grad:.2f}, "
          f"product {t_product / t_grad:.2f}")  # fmt: skip
    for size in (10_000, 1000):
        batches = chunks(x, y, size)
        _, t_build = paired(gradient, lambda b=batches: hessian.HessianOperator(
            model, F.cross_entropy, b).close(), repeats)  # fmt: skip
        with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
            v = torch.randn(operator.dim, device=operator.device)
            _, t_product = paired(gradient, lambda o=operator, u=v: o.matvec(u), repeats)
        print(f"    lossgeom, chunks of {size:>6,}: graph {t_build / t_grad:.2f}, "
              f"product {t_product / t_grad:.2f}")  # fmt: skip


def reference(model, batches, probes):
    """Top-3 eigenvalues and the trace: 80 Lanczos steps, then deflated Hutchinson."""
    with hessian.HessianOperator(model, F.cross_entropy, batches) as operator:
        start = torch.randn(operator.dim, generator=torch.Generator().manual_seed(123))
        start = start.to(operator.device)
        run = estimators.lanczos(operator.matvec, start, 80)
        exact = ritz_history(run.alpha, run.beta, 3)[-1]
        generator = torch.Generator().manual_seed(999)
        samples = []
        for _ in range(probes):
            z = 2.0 * torch.randint(0, 2, (operator.dim,), generator=generator).float() - 1.0
            z = z.to(operator.device)
            z = z - run.basis.T @ (run.basis @ z)
            samples.append(float(z @ operator.matvec(z)))
    trace = float(run.alpha.sum()) + float(np.mean(samples))
    stderr = float(np.std(samples, ddof=1) / np.sqrt(probes))
    return exact, trace, stderr


def eigenvalue_section(model, x, y, batches, exact, seeds):
    print("\n(c) top eigenvalues; medians over seeds", list(seeds))
    oracle = {"PyHessian power iteration": [pyhessian_oracle(model, x, y, exact, s) for s in seeds],
              "lossgeom Lanczos, Gaussian start": [
                  lanczos_oracle(model, batches, exact, s, "gaussian") for s in seeds],
              "lossgeom Lanczos, gradient start": [
                  lanczos_oracle(model, batches, exact, s, "gradient") for s in seeds]}  # fmt: skip
    for k in (1, 3):
        for target in TARGETS:
            print(f"    top-{k} to {target:.0e} (first reach and stay):")
            for name, runs in oracle.items():
                print(f"        {name:34s} {median_pair([r[k, target] for r in runs])}")
    print("    own stopping rules (products, seconds incl. graph, relative error):")
    for k in (1, 3):
        rows = {}
        for s in seeds:
            for tol in (1e-3, 1e-4):
                t0 = time.perf_counter()
                solver = PyHessianStyle(model, F.cross_entropy, x, y)
                values = solver.eigenvalues(torch.Generator().manual_seed(s), tol=tol, top_n=k)
                values = sorted(values, reverse=True)
                rows.setdefault(f"PyHessian tol {tol:.0e}", []).append(
                    (solver.n_products, time.perf_counter() - t0, relative_error(values, exact))
                )
            runs = {"lossgeom default (tol 1e-4, residual rule)": {}}
            for tol in (1e-3, 1e-4):
                runs[f"lossgeom tol {tol:.0e}, gradient start, eigenvalue rule"] = {
                    "tol": tol,
                    "start": "gradient",
                    "criterion": "eigenvalue",
                }
            for name, kwargs in runs.items():
                r = hessian.top_eigenvalues(model, F.cross_entropy, batches, k=k, seed=s, **kwargs)
                rows.setdefault(name, []).append(
                    (r.n_hvp, r.seconds, relative_error(r.values.cpu().numpy(), exact))
                )
        for name, row in rows.items():
            n, t, e = (statistics.median(c) for c in zip(*row, strict=True))
            print(f"        top-{k} {name:52s} {n:5.1f} products {t:6.2f} s  error {e:.1e}")


def trace_section(model, x, y, batches, trace_ref, seeds, budget):
    print(f"\n(d) trace: mean |error| over seeds {list(seeds)} (mean products, seconds)")
    rows = {}

    def add(name, n, seconds, estimate):
        rows.setdefault(name, []).append((n, seconds, abs(estimate - trace_ref)))

    for s in seeds:
        for max_iter, tol, label in ((100, 1e-3, "own rule"), (budget, 0.0, f"{budget} probes")):
            t0 = time.perf_counter()
            solver = PyHessianStyle(model, F.cross_entropy, x, y)
            samples = solver.trace(torch.Generator().manual_seed(s), max_iter=max_iter, tol=tol)
            add(f"PyHessian Hutchinson, {label}", len(samples), time.perf_counter() - t0,
                float(np.mean(samples)))  # fmt: skip
            for method in ("hutchpp", "krylov"):
                n = max(len(samples), 6)
                r = hessian.trace(model, F.cross_entropy, batches, n_matvecs=n, method=method,
                                  seed=s)  # fmt: skip
                add(f"lossgeom {method}, matched to {label}", r.n_hvp, r.seconds, r.estimate)
    for name, row in rows.items():
        n, t, e = (float(np.mean(c)) for c in zip(*row, strict=True))
        print(f"    {name:44s} {n:5.1f} products {t:6.2f} s  |error| {e:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="resources/mnist/mnist.pt")
    parser.add_argument("--weights", default=None, help="weight file (default: train 1 epoch)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10_000, help="fewer only to try it out")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3, help="starting vectors per method")
    parser.add_argument("--trace-seeds", type=int, default=4)
    parser.add_argument("--trace-budget", type=int, default=30)
    parser.add_argument("--reference-probes", type=int, default=300)
    parser.add_argument(
        "--sections", nargs="+", choices=["eigenvalues", "trace"], default=["eigenvalues", "trace"]
    )
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, x, y = setup(args)
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {where}, {torch.get_num_threads()} threads, report MLP, "
          f"{len(x):,} MNIST samples, lossgeom chunks of {args.chunk_size:,}\n")  # fmt: skip
    unit_costs(model, x, y, args.repeats)
    batches = chunks(x, y, args.chunk_size)
    exact, trace_ref, stderr = reference(model, batches, args.reference_probes)
    print(
        f"\n(b) reference: top-3 {np.array2string(exact, precision=6)}; trace {trace_ref:.3f} "
        f"+- {stderr:.3f} (80 Lanczos steps + {args.reference_probes} deflated probes)"
    )
    if "eigenvalues" in args.sections:
        eigenvalue_section(model, x, y, batches, exact, range(args.seeds))
    if "trace" in args.sections:
        trace_section(model, x, y, batches, trace_ref, range(args.trace_seeds), args.trace_budget)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
