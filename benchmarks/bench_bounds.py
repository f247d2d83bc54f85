"""Benchmark: Jiang et al.'s sharpness search with full passes and with the cached first layer.

The bounds stage searches, for each of Jiang et al.'s two measures, the largest weight-noise
scale whose mean training-accuracy drop over ``jiang_samples`` draws stays within the target
(bisection, ``jiang_steps`` + 1 scales). With isotropic noise the report MLP's first-layer
output is ``x W^T + b + sigma (x Z^T + z_b)``, so :class:`lossgeom.posterior.PerturbedAccuracy`
computes the products once per draw. This script runs the isotropic search both ways,
alternately, on the report's MLP with the bounds stage's 10,000-sample subset, and prints the
median seconds, their ratio and the scale each way finds (the scales must agree).

Usage (from the repository root, machine otherwise idle):
    python benchmarks/bench_bounds.py --weights results/runs/report_mlp/seed0/weights/epoch5.pt
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lossgeom import bounds
from lossgeom.data import load_dataset
from lossgeom.posterior import PerturbedAccuracy
from lossgeom.runs import load_weights, training_subset
from lossgeom.training import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="resources/mnist/mnist.pt")
    parser.add_argument("--weights", required=True, help="a checkpoint of the report's MLP")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=10, help="jiang_samples (default 10)")
    parser.add_argument("--steps", type=int, default=15, help="jiang_steps (default 15)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, expect="mnist")
    model, _ = load_weights(args.weights)
    x, y = training_subset(data, 10_000, 2024)
    clean = evaluate(model, x, y)[1]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.weights}, "
        f"10,000 MNIST samples, {args.samples} draws x {args.steps + 1} scales\n"
    )

    def search(first_layer: bool) -> float:
        noisy = PerturbedAccuracy(model, x, y, args.samples, 0, first_layer=first_layer)
        return bounds.sharpness_sigma(lambda s: clean - noisy(s), 0.1, 2.0, args.steps)[0]

    times: dict[bool, list[float]] = {False: [], True: []}
    sigmas: dict[bool, float] = {}
    for _ in range(args.repeats):
        for first_layer in (False, True):
            start = time.perf_counter()
            sigmas[first_layer] = search(first_layer)
            times[first_layer].append(time.perf_counter() - start)
    full, cached = statistics.median(times[False]), statistics.median(times[True])
    print(f"full passes:         {full:6.2f} s, sigma {sigmas[False]:.6g}")
    print(f"cached first layer:  {cached:6.2f} s, sigma {sigmas[True]:.6g}")
    print(f"speed-up {full / cached:.1f}x (median of {args.repeats}, run alternately)")


if __name__ == "__main__":
    main()
