"""lossgeom: measure loss-landscape geometry and relate it to optimisation and generalisation.

Modules:
    hessian: Hessian-vector products, top eigenvalues, trace, spectral density.
    directions: random and filter-normalised directions in parameter space.
    landscape: batched evaluation of loss and accuracy on 1D/2D slices.
    data: MNIST with checksum verification and an offline mirror.
    models: the model registry (the report's MLP and its variants).
    training: checkpointed, resumable training with per-epoch metrics.
    provenance: atomic writes, config hashes and provenance sidecars.
    connectivity: paths between solutions, their barriers, and weight matching.
    bounds: the binary kl, PAC-Bayes-kl certificates, the report's proxy, Jiang's measures.
    posterior: Gaussian weight posteriors, their Monte-Carlo error, PAC-Bayes with backprop.
"""

__version__ = "0.1.0"
