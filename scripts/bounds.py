"""Generalisation measures and PAC-Bayes-kl certificates for one checkpoint.

Writes, for one (experiment, seed, epoch): the test and training error, the report's curvature
proxy, Jiang et al.'s sharpness measures, a certificate for the centred posterior
N(w, s^2 I) against the prior N(w0, s^2 I), and with --optimize a certificate for a posterior
trained by PAC-Bayes with backprop against a prior learned on a held-out part of the
training set (or centred at the initial weights). Every argument is checked before any
sampling; the tables are written only when everything has been computed.
"""

import argparse
import logging
import math
import sys

import pandas as pd
import torch

from lossgeom import bounds
from lossgeom.data import Dataset
from lossgeom.models import flat_parameters
from lossgeom.posterior import (
    GaussianPosterior,
    monte_carlo_error,
    perturbed_accuracy,
    train_posterior,
)
from lossgeom.provenance import provenance, write_table
from lossgeom.runs import (
    add_common_arguments,
    check_same_architecture,
    json_argument,
    load_weights,
    setup,
)
from lossgeom.training import evaluate, train

COLUMNS = ["experiment", "seed", "epoch", "quantity", "value", "delta", "n", "mc_samples"]
TERM_COLUMNS = ["experiment", "seed", "epoch", "quantity", "term", "value"]
QUANTITIES = ["test_error", "train_error", "proxy", "jiang_sharpness", "jiang_magnitude_aware",
              "certificate_centered", "stochastic_test_error_centered"]
OPTIMIZED = ["certificate_optimized", "stochastic_test_error_optimized"]


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie in the open interval (0, 1), got {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_arguments(parser)
    parser.add_argument("--weights", required=True, help="the checkpoint to bound")
    parser.add_argument("--initial", required=True, help="the same run's epoch-0 weights (w0)")
    parser.add_argument("--curvature", required=True, help="curvature CSV of the checkpoint (trace)")
    parser.add_argument("--subset", type=positive_int, required=True, help="training samples for the sigma search")
    parser.add_argument("--subset-seed", type=int, required=True)
    parser.add_argument("--eps", type=float, required=True, help="the proxy's perturbation scale")
    parser.add_argument("--jiang-target", type=probability, required=True, help="allowed accuracy drop")
    parser.add_argument("--jiang-upper", type=float, required=True, help="sigma search interval [0, upper]")
    parser.add_argument("--jiang-steps", type=positive_int, required=True)
    parser.add_argument("--jiang-samples", type=positive_int, required=True, help="noise draws per sigma")
    parser.add_argument("--jiang-eps", type=float, required=True, help="magnitude-aware floor")
    parser.add_argument("--delta", type=probability, required=True)
    parser.add_argument("--delta-prime", type=probability, required=True)
    parser.add_argument("--mc-samples", type=positive_int, required=True,
                        help="m, Monte-Carlo passes (each example of each pass under its own draw of Q)")
    parser.add_argument("--sample-convergence", choices=["trials", "passes"], default="trials",
                        help="independent outcomes behind the estimate: n m per-example trials, or m passes")
    parser.add_argument("--select-samples", type=positive_int, required=True,
                        help="draws per grid scale when choosing the centred posterior's scale")
    parser.add_argument("--sigma-min", type=float, required=True)
    parser.add_argument("--sigma-max", type=float, required=True)
    parser.add_argument("--sigma-grid", type=positive_int, required=True, help="prior scales (union bound)")
    parser.add_argument("--seed", type=int, required=True, help="base seed of every Monte-Carlo estimate")
    parser.add_argument("--chunk-size", type=positive_int, default=1000)
    parser.add_argument("--optimize", action="store_true", help="also the optimised posterior")
    parser.add_argument("--spec", type=json_argument, help="JSON experiment spec (prior training)")
    parser.add_argument("--prior", choices=["data_dependent", "init"], default="data_dependent")
    parser.add_argument("--prior-fraction", type=probability, default=0.5)
    parser.add_argument("--prior-epochs", type=positive_int, default=20)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--posterior-sigma", type=float, default=0.004, help="initial scale (snapped to the grid)")
    parser.add_argument("--objective", choices=["quad", "classic"], default="quad")
    parser.add_argument("--posterior-epochs", type=int, default=5)
    parser.add_argument("--posterior-lr", type=float, default=0.01)
    parser.add_argument("--posterior-momentum", type=float, default=0.95)
    parser.add_argument("--posterior-batch-size", type=positive_int, default=250)
    parser.add_argument("--pmin", type=probability, default=1e-4)
    parser.add_argument("--checkpoint-dir", help="resumable prior training state")
    parser.add_argument("--output", required=True, help="bounds CSV")
    parser.add_argument("--terms", required=True, help="CSV of every term behind each value")
    args = parser.parse_args()
    if args.delta + args.delta_prime >= 1:
        parser.error(f"delta + delta' must be below 1, got {args.delta} + {args.delta_prime}")
    if args.eps <= 0 or args.jiang_eps <= 0 or args.jiang_upper <= 0:
        parser.error("eps, jiang-eps and jiang-upper must be positive")
    try:
        args.grid = bounds.scale_grid(args.sigma_min, args.sigma_max, args.sigma_grid)
    except bounds.BoundError as error:
        parser.error(f"prior scale grid: {error}")
    if args.optimize and (args.spec is None or args.checkpoint_dir is None):
        parser.error("--optimize needs --spec and --checkpoint-dir")
    if args.posterior_epochs < 0 or args.posterior_lr <= 0 or not 0 <= args.posterior_momentum < 1:
        parser.error("posterior-epochs >= 0, posterior-lr > 0 and 0 <= posterior-momentum < 1 are required")
    return args


def trace_of(path: str, epoch: int) -> float:
    table = pd.read_csv(path)
    rows = table[(table["quantity"] == "trace") & (table["epoch"] == epoch)]
    if rows.empty:
        raise ValueError(f"{path} has no Hessian trace for epoch {epoch}")
    return float(rows["value"].iloc[0])


def main() -> int:
    args = parse_arguments()
    device, data = setup(args)
    model, meta = load_weights(args.weights, device)
    initial, meta0 = load_weights(args.initial, device)
    base = {"experiment": meta["experiment"], "seed": meta["seed"], "epoch": meta["epoch"]}
    quantities = QUANTITIES + (OPTIMIZED if args.optimize else [])
    try:  # every check comes before any sampling
        check_same_architecture(meta["model"], meta0["model"], "checkpoint and initial weights")
        if (meta0["experiment"], meta0["seed"], meta0["epoch"]) != (meta["experiment"], meta["seed"], 0):
            raise ValueError(f"{args.initial} is not the epoch-0 weights of {base['experiment']} seed {base['seed']}")
        if model is not None:
            GaussianPosterior(model, args.grid[0])  # refuses layers it cannot sample
        trace = trace_of(args.curvature, base["epoch"])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    rows, terms = [], []

    def row(quantity, value, delta=math.nan, n=math.nan, mc_samples=math.nan):
        rows.append({**base, "quantity": quantity, "value": value, "delta": delta, "n": n, "mc_samples": mc_samples})

    def term(quantity, name, value):
        terms.append({**base, "quantity": quantity, "term": name, "value": value})

    if model is None:
        logging.warning("%s: the run diverged before this epoch; writing NaN", args.weights)
        for quantity in quantities:
            row(quantity, math.nan)
        return write(args, rows, terms, device)

    n_train, n_test = data.train_x.shape[0], data.test_x.shape[0]
    w, w0 = flat_parameters(model), flat_parameters(initial)
    test_loss, test_accuracy = evaluate(model, data.test_x, data.test_y)
    train_loss, train_accuracy = evaluate(model, data.train_x, data.train_y)
    row("test_error", 1 - test_accuracy, n=n_test)
    row("train_error", 1 - train_accuracy, n=n_train)

    # The report's proxy, with the Hessian trace of the curvature stage.
    norm_sq = float(w.double().pow(2).sum())
    row("proxy", bounds.report_proxy(norm_sq, trace, n_train, args.eps), n=n_train)
    term("proxy", "parameter_norm_sq", norm_sq)
    term("proxy", "hessian_trace", trace)
    term("proxy", "eps", args.eps)

    # Jiang et al.: bisection on the accuracy drop over a fixed training subset.
    index = torch.randperm(n_train, generator=torch.Generator().manual_seed(args.subset_seed))[: args.subset]
    x_sub, y_sub = data.train_x[index.to(device)], data.train_y[index.to(device)]
    clean = evaluate(model, x_sub, y_sub)[1]
    distance_sq = float((w - w0).double().pow(2).sum())
    for quantity, magnitude in (("jiang_sharpness", None), ("jiang_magnitude_aware", args.jiang_eps)):
        def drop(sigma, magnitude=magnitude):
            return clean - perturbed_accuracy(model, x_sub, y_sub, sigma, args.jiang_samples, args.seed,
                                              magnitude_eps=magnitude)
        sigma, searched = bounds.sharpness_sigma(drop, args.jiang_target, args.jiang_upper, args.jiang_steps)
        if sigma == 0:
            logging.warning("%s: no noise scale keeps the accuracy drop within %s", quantity, args.jiang_target)
            value = math.inf
        elif magnitude is None:
            value = bounds.jiang_sharpness(distance_sq, sigma, n_train)
        else:
            value = bounds.jiang_magnitude_aware(w, w0, sigma, n_train, magnitude)
        row(quantity, value, n=n_train, mc_samples=args.jiang_samples)
        term(quantity, "sigma", sigma)
        term(quantity, "mc_seed", args.seed)
        term(quantity, "subset", args.subset)
        term(quantity, "searched_points", len(searched))
        logging.info("%s: sigma %.5g, value %.5g", quantity, sigma, value)
    term("jiang_sharpness", "distance_sq", distance_sq)

    # Centred posterior N(w, s^2 I) against the prior N(w0, s^2 I), s from the grid. The scale
    # is chosen with a few draws on the subset; the certificate then uses fresh draws.
    def centred_kl(sigma):
        return distance_sq / (2 * sigma**2)

    choice = []
    for sigma in args.grid:
        estimate = monte_carlo_error(GaussianPosterior(model, sigma), x_sub, y_sub, args.select_samples,
                                     args.seed, args.chunk_size).mean
        trials = args.mc_samples * (n_train if args.sample_convergence == "trials" else 1)
        value = bounds.certify(estimate, trials, centred_kl(sigma), n_train, args.delta,
                               args.delta_prime, len(args.grid)).value
        choice.append((value, sigma))
    sigma = min(choice)[1]
    centred = GaussianPosterior(model, sigma)
    certify_posterior(args, row, term, "centered", centred, centred_kl(sigma), data.train_x, data.train_y,
                      data, seeds=(args.seed + 1, args.seed + 2))
    term("certificate_centered", "prior_sigma", sigma)
    term("certificate_centered", "posterior_sigma", sigma)

    if args.optimize:
        args.run_seed = base["seed"]
        optimise(args, row, term, model, initial, w0, data, device, meta["model"])
    return write(args, rows, terms, device)


def certify_posterior(args, row, term, name, posterior, kl, x, y, data, seeds):
    mc = monte_carlo_error(posterior, x, y, args.mc_samples, seeds[0], args.chunk_size)
    trials = mc.trials if args.sample_convergence == "trials" else mc.m
    certificate = bounds.certify(mc.mean, trials, kl, mc.n, args.delta, args.delta_prime, len(args.grid))
    test = monte_carlo_error(posterior, data.test_x, data.test_y, args.mc_samples, seeds[1], args.chunk_size)
    row(f"certificate_{name}", certificate.value, delta=args.delta, n=mc.n, mc_samples=mc.m)
    row(f"stochastic_test_error_{name}", test.mean, n=test.n, mc_samples=test.m)
    for key, value in certificate.as_dict().items():
        term(f"certificate_{name}", key, value)
    term(f"certificate_{name}", "mc_seed", mc.seed)
    term(f"certificate_{name}", "mc_passes", mc.m)
    # What the bound would be with one trial per pass (each pass's mean error as one outcome).
    term(f"certificate_{name}", "empirical_bound_per_pass",
         bounds.sample_convergence_bound(mc.mean, mc.m, args.delta_prime))
    term(f"certificate_{name}", "mc_seconds", mc.seconds)
    term(f"stochastic_test_error_{name}", "mc_seed", test.seed)
    logging.info("certificate (%s): %.5f (MC error %.5f, bound %.5f, KL %.4g, n %d, m %d, trials %d); "
                 "stochastic test error %.5f", name, certificate.value, mc.mean, certificate.empirical_bound, kl,
                 mc.n, mc.m, trials, test.mean)


def optimise(args, row, term, model, initial, w0, data, device, model_spec):
    """PAC-Bayes with backprop from a data-dependent prior (or the initial weights)."""
    n_train = data.train_x.shape[0]
    if args.prior == "data_dependent":
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(args.split_seed)).to(device)
        n_prior = int(round(args.prior_fraction * n_train))
        prior_index, bound_index = order[:n_prior], order[n_prior:]
        # The prior network: the run's own recipe and initial weights, on the prior part only.
        spec = {**args.spec, "model": model_spec, "epochs": args.prior_epochs}
        prior_data = Dataset(data.train_x[prior_index], data.train_y[prior_index], data.test_x, data.test_y)
        result = train(spec, prior_data, int(args.run_seed), args.checkpoint_dir, device=device,
                       progress=False, identity={"prior_of": args.initial, "split_seed": args.split_seed,
                                                 "prior_fraction": args.prior_fraction})
        start = torch.nn.utils.parameters_to_vector(result.states[0][k] for k, p in result.model.named_parameters())
        if not torch.equal(start.to(w0.device), w0):
            raise RuntimeError("the prior's training did not start from this run's initial weights")
        prior_net = result.model.eval()
        start_net = prior_net  # the posterior starts at the prior, which saw none of the bound set
    else:
        prior_index, bound_index = torch.arange(0), torch.arange(n_train, device=device)
        n_prior, prior_net, start_net = 0, initial, model
    prior_mean = flat_parameters(prior_net)
    x, y = data.train_x[bound_index], data.train_y[bound_index]
    sigma0 = bounds.nearest_scale(args.grid, args.posterior_sigma)
    posterior = GaussianPosterior(start_net, sigma0)
    training = train_posterior(posterior, prior_mean, sigma0, x, y, x.shape[0], args.delta,
                               args.posterior_epochs, args.posterior_lr, args.posterior_momentum,
                               args.posterior_batch_size, args.seed, args.objective, args.pmin)
    # The prior's scale is the grid point nearest to the learned one; the union bound pays for the grid.
    prior_sigma = bounds.nearest_scale(args.grid, training.prior_sigma)
    with torch.no_grad():
        kl = float(bounds.kl_diagonal_gaussians(posterior.flat_mean().double(), posterior.flat_sigma().double(),
                                                prior_mean.double(), prior_sigma))
    certify_posterior(args, row, term, "optimized", posterior, kl, x, y, data,
                      seeds=(args.seed + 3, args.seed + 4))
    name = "certificate_optimized"
    term(name, "prior_sigma", prior_sigma)
    term(name, "learned_prior_sigma", training.prior_sigma)
    term(name, "posterior_sigma_mean", float(posterior.flat_sigma().mean().detach()))
    term(name, "n_prior", n_prior)
    term(name, "prior_data_dependent", float(args.prior == "data_dependent"))
    term(name, "training_seconds", training.seconds)
    if training.history:
        term(name, "final_objective", training.history[-1]["objective"])
    with torch.no_grad():
        term(name, "prior_test_error", 1 - evaluate(prior_net, data.test_x, data.test_y)[1])
        term(name, "posterior_mean_test_error", 1 - evaluate(posterior.net, data.test_x, data.test_y)[1])


def write(args, rows, terms, device) -> int:
    config = {k: v for k, v in vars(args).items() if k not in ("output", "terms", "weights", "grid")}
    record = provenance(config=config, device=device, weights=args.weights, prior_scale_grid=args.grid)
    write_table(pd.DataFrame(terms, columns=TERM_COLUMNS), args.terms, record)
    write_table(pd.DataFrame(rows, columns=COLUMNS), args.output, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
