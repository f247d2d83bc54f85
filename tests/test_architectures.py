"""Architectures: conv weight matching, spectral summaries and non-convexity maps.

Weight matching on convolutional channels (CNN, ResNet with and without skips and BatchNorm):
a known permutation is recovered and the function is preserved; a vision transformer is named
as not applicable. The spectral summaries against known spectra: the
extremes, the non-convexity ratio on a quadratic, the outlier count on a synthetic spectrum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossgeom import estimators
from lossgeom.architectures import (
    SPECTRUM_QUANTITIES,
    StudySettings,
    describe,
    measure_architecture,
    measured_epochs,
    nonconvexity_map,
    nonconvexity_ratio,
    study_entries,
    study_settings,
    summarise_spectrum,
)
from lossgeom.connectivity import (
    AlignmentError,
    aligned_model,
    permutation_spec,
    permute_state,
    weight_matching,
)
from lossgeom.models import build_model
from lossgeom.tables import ARCHITECTURE_QUANTITIES

SPECS = {
    "cnn": {"name": "cnn", "input_dim": 144, "channels": [4, 6], "hidden": [8, 7],
            "kernel_size": 3, "num_classes": 4},
    "cnn_batchnorm": {"name": "cnn", "input_dim": 144, "channels": [4, 6], "hidden": [8],
                      "kernel_size": 3, "num_classes": 4, "norm": "batchnorm"},
    "resnet": {"name": "resnet", "input_dim": 64, "channels": [4, 6], "blocks": 2,
               "num_classes": 4},
    "resnet_no_skip": {"name": "resnet", "input_dim": 64, "channels": [4, 6], "blocks": 2,
                       "num_classes": 4, "skip": False},
    "resnet_stem_stride": {"name": "resnet", "input_dim": 64, "channels": [4, 6],
                           "num_classes": 4, "stem_stride": 2},
    "resnet_no_norm": {"name": "resnet", "input_dim": 64, "channels": [4, 6], "num_classes": 4,
                       "norm": "none"},
}  # fmt: skip


def model(case: str, seed: int):
    torch.manual_seed(seed)
    net = build_model(SPECS[case])
    if "batchnorm" in case or SPECS[case]["name"] == "resnet" and "no_norm" not in case:
        net.train()
        with torch.no_grad():
            net(torch.randn(32, SPECS[case]["input_dim"]) * 2 + 0.3)  # running statistics
    return net.eval()


@pytest.mark.parametrize("case", SPECS)
def test_weight_matching_recovers_a_known_channel_permutation(case):
    a = model(case, 0)
    spec = permutation_spec(a)
    sizes = spec.sizes(a.state_dict())
    generator = torch.Generator().manual_seed(3)
    known = {g: torch.randperm(n, generator=generator) for g, n in sizes.items()}
    assert any(not torch.equal(p, torch.arange(len(p))) for p in known.values())
    b = model(case, 0)
    b.load_state_dict(permute_state(a.state_dict(), spec, known))
    x = torch.randn(20, SPECS[case]["input_dim"])
    torch.testing.assert_close(b(x), a(x), rtol=1e-5, atol=1e-5)  # the same function
    assert any(not torch.equal(b.state_dict()[k], v) for k, v in a.state_dict().items())
    aligned = aligned_model(a, b)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(aligned.state_dict()[key], value, rtol=0, atol=0)


@pytest.mark.parametrize("case", SPECS)
def test_alignment_of_independent_networks_preserves_their_function(case):
    a, b = model(case, 0), model(case, 1)
    result = weight_matching(a, b)
    aligned = aligned_model(a, b)
    x = torch.randn(20, SPECS[case]["input_dim"])
    torch.testing.assert_close(aligned(x), b(x), rtol=1e-5, atol=1e-5)
    flat = lambda m: torch.cat([p.detach().reshape(-1) for p in m.parameters()])  # noqa: E731
    assert (flat(aligned) - flat(a)).norm() < (flat(b) - flat(a)).norm()
    assert set(result.perms) == set(permutation_spec(a).groups)


def test_resnet_groups_follow_the_skips():
    with_skips = permutation_spec(model("resnet", 0)).groups
    without = permutation_spec(model("resnet_no_skip", 0)).groups
    # one stream per stage plus a free inner group per block, against one group per convolution
    assert with_skips == sorted(["stage0", "stage1"] + [f"stage{s}.block{b}.mid"
                                                        for s in range(2) for b in range(2)])  # fmt: skip
    assert len(without) == 1 + 2 * 4


def test_the_cnn_flatten_is_permuted_channel_by_channel():
    spec = permutation_spec(model("cnn", 0))
    assert spec.views == {"fcs.0.weight": (8, 6, -1)}
    assert spec.axes["fcs.0.weight"] == ("fc0", "conv1", None)
    assert spec.axes["fcs.2.weight"] == (None, "fc1")


def test_vision_transformer_is_not_applicable():
    vit = build_model({"name": "vit", "input_dim": 16, "patch_size": 2, "dim": 4, "heads": 2})
    with pytest.raises(AlignmentError, match="weight matching is not applicable to ViT"):
        permutation_spec(vit)
    with pytest.raises(AlignmentError, match="different architectures"):
        weight_matching(model("resnet", 0), model("resnet_no_skip", 0))


# ----------------------------------------------------------------- spectra and non-convexity


def diagonal(values):
    values = torch.as_tensor(values, dtype=torch.float64)
    return lambda v: values * v


def rotated(values, seed: int = 0):
    """``Q diag(values) Q^T`` with ``Q`` a product of three random Householder reflections."""
    values = torch.as_tensor(values, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    normals = [torch.randn(len(values), dtype=torch.float64, generator=generator) for _ in range(3)]
    normals = [n / n.norm() for n in normals]

    def reflect(v, order):
        for n in order:
            v = v - 2 * n * (n @ v)
        return v

    return lambda v: reflect(values * reflect(v, normals[::-1]), normals)


def test_lanczos_extremes_match_a_known_spectrum():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-0.3, 1.0, 500), [-2.0, 7.5]])
    result = estimators.lanczos_extreme_eigenvalues(diagonal(values), len(values), tol=1e-6,
                                                    max_iter=200)  # fmt: skip
    assert result.converged
    assert result.eig_max == pytest.approx(7.5, rel=1e-8)
    assert result.eig_min == pytest.approx(-2.0, rel=1e-8)
    assert result.n_hvp < 100


class Quadratic(nn.Module):
    """Each sample's output is ``theta^T A theta / 2``: the mean loss has Hessian ``A``."""

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.randn(matrix.shape[0], dtype=torch.float64))
        self.register_buffer("matrix", matrix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * self.theta @ self.matrix @ self.theta).expand(x.shape[0])


def test_nonconvexity_ratio_on_a_quadratic_with_known_eigenvalues():
    eigenvalues = torch.tensor([-1.5, -0.2, 0.1, 0.7, 2.0, 6.0], dtype=torch.float64)
    basis, _ = torch.linalg.qr(
        torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )
    model = Quadratic(basis @ torch.diag(eigenvalues) @ basis.T)
    before = model.theta.detach().clone()
    x, y = torch.zeros(4, 1), torch.zeros(4)
    directions = [torch.randn(6, dtype=torch.float64) for _ in range(2)]
    rows = nonconvexity_map(model, lambda out, _: out.mean(), [(x, y)], directions,
                            alphas=[-1.0, 0.0, 1.0], betas=[-0.5, 0.5], tol=1e-8)  # fmt: skip
    assert len(rows) == 6
    for row in rows:
        assert row["eig_max"] == pytest.approx(6.0, rel=1e-8)
        assert row["eig_min"] == pytest.approx(-1.5, rel=1e-8)
        assert row["ratio"] == pytest.approx(0.25, rel=1e-8)
        assert row["converged"]
    assert torch.equal(model.theta.detach(), before)  # the model is left at the centre
    assert nonconvexity_ratio(-1.0, 0.0) != nonconvexity_ratio(-1.0, 0.0)  # NaN, not a crash


def synthetic_spectrum(n_outliers: int, dim: int = 4000, seed: int = 0) -> np.ndarray:
    """A Papyan-like spectrum: a bulk near zero (slightly negative to 1) and isolated outliers."""
    rng = np.random.default_rng(seed)
    bulk = rng.uniform(-0.2, 1.0, dim - n_outliers)
    return np.concatenate([bulk, np.geomspace(4.0, 60.0, n_outliers)])


@pytest.mark.parametrize("n_outliers", [0, 3, 10])
def test_outliers_are_counted_on_a_synthetic_spectrum(n_outliers):
    values = synthetic_spectrum(n_outliers)
    density = estimators.slq_density(rotated(values), len(values), n_iter=50, n_runs=5, seed=2)
    summary = summarise_spectrum(density, len(values))
    assert summary.outliers == n_outliers
    if n_outliers:  # an isolated top eigenvalue converges to round-off
        assert summary.eig_max == pytest.approx(values.max(), rel=1e-6)
        assert summary.converged_max
    else:  # the top of a dense bulk, to within its spacing
        assert summary.eig_max == pytest.approx(values.max(), abs=1e-3)
    assert summary.eig_min == pytest.approx(values.min(), abs=0.02)
    assert 1.0 - 0.05 <= summary.bulk_edge <= (4.0 if n_outliers else 1.0)
    assert abs(summary.trace - values.sum()) <= 3 * summary.trace_stderr
    mean_abs = np.abs(values).mean()
    assert summary.mean_abs == pytest.approx(mean_abs, rel=0.1)
    assert summary.conditioning == pytest.approx(summary.eig_max / summary.mean_abs)
    assert [q for q, _ in summary.rows()] == list(SPECTRUM_QUANTITIES)


# ------------------------------------------------------------------------------- the study


def test_study_entries_expand_the_mlp_families():
    section = {
        "mlp": {"width": 6, "depths": [1, 3], "variants": ["plain", "residual_layernorm"],
                "activation": "tanh"},
        "models": {"vit": {"model": {"name": "vit", "dim": 8, "heads": 2},
                           "optimizer": {"name": "adam", "lr": 0.001}, "settings": {"map_size": 8}}},
        "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 2, "batch_size": 16,
        "settings": {"map_size": 64, "map_seeds": [0]}, "seeds": [0, 1],
    }  # fmt: skip
    entries = study_entries(section)
    assert list(entries) == ["mlp_plain_d1", "mlp_plain_d3", "mlp_residual_layernorm_d1",
                             "mlp_residual_layernorm_d3", "vit"]  # fmt: skip
    assert entries["mlp_residual_layernorm_d3"]["model"] == {
        "name": "mlp", "input_dim": 784, "hidden": [6, 6, 6], "num_classes": 10,
        "activation": "tanh", "residual": True, "norm": "layernorm"}  # fmt: skip
    assert entries["vit"]["optimizer"] == {"name": "adam", "lr": 0.001}
    assert entries["vit"]["epochs"] == 2 and "settings" not in entries["vit"]
    assert study_settings(section, "vit") == {"map_size": 8, "map_seeds": [0], "seeds": [0, 1]}
    assert study_settings(section, "mlp_plain_d1")["map_size"] == 64
    assert describe(entries["mlp_residual_layernorm_d1"]["model"])["skip"] == 0  # one layer
    assert describe(entries["mlp_residual_layernorm_d3"]["model"]) == {
        "family": "mlp", "depth": 3, "skip": 1, "norm": "layernorm"}  # fmt: skip
    assert describe({"name": "resnet", "channels": [4, 8], "blocks": 2, "skip": False}) == {
        "family": "resnet", "depth": 4, "skip": 0, "norm": "batchnorm"}  # fmt: skip


def test_measured_epochs_are_evenly_spaced_with_both_ends():
    assert measured_epochs(range(9), 4) == [0, 3, 5, 8]
    assert measured_epochs([4, 0, 2], 2) == [0, 4]
    assert measured_epochs(range(5), 3) == [0, 2, 4]
    assert measured_epochs(range(2), 5) == [0, 1]
    with pytest.raises(ValueError, match="at least 2"):
        measured_epochs(range(5), 1)


def small_study_settings() -> StudySettings:
    """Two seeds, few products and points: the whole study in seconds (also tests/test_cuda.py)."""
    return StudySettings(seeds=(0, 1), curvature_size=64, n_iter=8, n_runs=2,
                         density_points=20, map_resolution=3, map_iter=6, map_size=32,
                         barrier_points=5, barrier_size=64, accuracy_target=0.2,
                         accuracy_window=2)  # fmt: skip


def test_measure_architecture_fills_every_table(tmp_path, synthetic_data):
    settings = small_study_settings()
    recipe = {"optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "epochs": 2,
              "batch_size": 32}  # fmt: skip
    tables = {}
    for name, model in (("mlp", {"name": "mlp", "hidden": [8, 8], "residual": True,
                                 "norm": "batchnorm"}),
                        ("vit", {"name": "vit", "dim": 8, "heads": 2, "depth": 1})):  # fmt: skip
        spec = {**recipe, "model": {"input_dim": 784, "num_classes": 10, **model}}
        tables[name] = measure_architecture(name, spec, synthetic_data, settings,
                                            tmp_path / name, log=lambda _: None)  # fmt: skip
    mlp, vit = tables["mlp"], tables["vit"]
    quantities = {r["quantity"] for r in mlp.rows}
    assert quantities == set(ARCHITECTURE_QUANTITIES) - {"steps_to_95"}  # the target is 0.2
    assert {r["seed"] for r in mlp.rows if r["quantity"] == "nonconvexity_median"} == {0}
    assert len(mlp.nonconvexity) == 9 and len(mlp.barriers) == 2  # one pair, two paths
    assert {(r["seed"], r["epoch"]) for r in mlp.curvature} == {
        (s, e) for s in (0, 1) for e in range(3)
    }
    assert {r["epoch"] for r in mlp.density} == {0, 2} and len(mlp.density) == 2 * 2 * 20
    steps = [r["value"] for r in mlp.rows if r["quantity"] == "steps_to_target"]
    assert all(1 <= s <= mlp.runs[0]["steps"] for s in steps)
    aligned = [b for b in vit.barriers if b["path"] == "aligned"]
    assert np.isnan(aligned[0]["barrier"]) and "not applicable to ViT" in aligned[0]["note"]
    linear = [b for b in vit.barriers if b["path"] == "linear"]
    assert np.isfinite(linear[0]["barrier"]) and linear[0]["barrier"] >= 0
    assert {r["family"] for r in vit.rows} == {"vit"}
