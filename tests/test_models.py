"""The model registry: the report's MLP and clear errors for bad specifications."""

import pytest
import torch

from lossgeom.models import ModelConfigError, build_model, parameter_count


def test_report_mlp_shape():
    model = build_model({"name": "mlp"})
    assert parameter_count(model) == 784 * 512 + 512 + 512 * 10 + 10
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"name": "resnet50"}, "model.name 'resnet50' is unknown"),
        ({"name": "mlp", "hidden": [0]}, "model.hidden"),
        ({"name": "mlp", "hidden": [64, 32], "residual": True}, "equal hidden widths"),
        ({"name": "mlp", "activation": "swish"}, "model.activation 'swish' is unknown"),
        ({"name": "mlp", "norm": "groupnorm"}, "model.norm 'groupnorm' is unknown"),
        ({"name": "mlp", "depth": 3}, "bad options for model 'mlp'"),
        ({"name": "mlp", "input_dim": -1}, "model.input_dim"),
    ],
)
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ModelConfigError, match=message):
        build_model(spec)


def test_wrong_input_shape_is_named():
    with pytest.raises(ValueError, match="expects 784 input features, got 100"):
        build_model({"name": "mlp"})(torch.zeros(2, 100))


def test_variants_build_and_run():
    for spec in (
        {"hidden": [32, 32, 32], "residual": True, "norm": "layernorm", "activation": "gelu"},
        {"hidden": [32, 16], "norm": "batchnorm", "activation": "tanh"},
        {"hidden": []},
    ):
        model = build_model({"name": "mlp", **spec})
        assert model(torch.randn(4, 784)).shape == (4, 10)
