"""lossgeom: measure loss-landscape geometry and relate it to optimisation and generalisation.

Modules:
    hessian: Hessian-vector products and the curvature of a model's loss (top eigenvalues,
        trace, spectral density), built on the estimators.
    estimators: Lanczos, power iteration, Hutchinson, Hutch++ and stochastic Lanczos
        quadrature on any matrix-vector product.
    directions: random and filter-normalised directions in parameter space.
    landscape: batched evaluation of loss and accuracy on 1D/2D slices.
    data: the dataset registry (MNIST, Fashion-MNIST): download or mirror, verification.
    models: the model registry (the report's MLP and its variants).
    training: checkpointed, resumable training with per-epoch metrics.
    checkpoints: per-epoch checkpoints keyed by the hash of every setting, RNG states.
    provenance: atomic writes, config hashes and provenance sidecars.
    connectivity: paths between solutions, their barriers, and weight matching.
    bounds: the binary kl, PAC-Bayes-kl certificates, the report's proxy, Jiang's measures.
    posterior: Gaussian weight posteriors, their Monte-Carlo error, PAC-Bayes with backprop.
    certificates: the bounds stage for one checkpoint (measures, priors, certificates).
"""

__version__ = "0.1.0"
