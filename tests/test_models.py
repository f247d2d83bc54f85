"""The model registry: the report's MLP, the CNN, ResNet and ViT, and clear errors for bad
specifications."""

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
        ({"name": "cnn", "channels": []}, "model.channels must be a list of positive integers"),
        ({"name": "cnn", "kernel_size": 4}, "model.kernel_size must be odd"),
        ({"name": "cnn", "channels": [4, 4, 4, 4, 4]}, "shrink a 28 x 28 image to nothing"),
        ({"name": "cnn", "input_dim": 700}, "model.input_dim 700 is not 1 square image"),
        ({"name": "cnn", "norm": "layernorm"}, "model.norm 'layernorm' is unknown"),
        ({"name": "resnet", "blocks": 0}, "model.blocks must be a positive integer, got 0"),
        ({"name": "resnet", "skip": "yes"}, "model.skip must be true or false"),
        ({"name": "resnet", "stem_stride": 0}, "model.stem_stride must be a positive integer"),
        ({"name": "resnet", "stem_stride": 29}, "model.stem_stride: 29 is larger than the 28 x 28"),
        ({"name": "vit", "patch_size": 5}, "model.patch_size 5 does not divide the image side 28"),
        ({"name": "vit", "dim": 30, "heads": 4}, "model.dim 30 is not a multiple of model.heads"),
        ({"name": "vit", "depth": 0}, "model.depth must be a positive integer, got 0"),
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


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "cnn"},
        {"name": "cnn", "channels": [4, 8, 8], "hidden": [], "norm": "batchnorm"},
        {"name": "resnet"},
        {"name": "resnet", "skip": False, "norm": "none", "blocks": 2},
        {"name": "resnet", "stem_stride": 2},
        {"name": "vit"},
        {"name": "vit", "patch_size": 4, "dim": 16, "heads": 2, "depth": 3},
    ],
)
def test_image_models_take_images_or_flat_pixels(spec):
    model = build_model(spec).eval()
    images = torch.randn(5, 1, 28, 28)
    out = model(images)
    assert out.shape == (5, 10)
    torch.testing.assert_close(model(images.flatten(1)), out)
    with pytest.raises(ValueError, match="expects 1 x 28 x 28 inputs"):
        model(torch.zeros(2, 100))


def test_resnet_switches_change_only_what_they_name():
    def names(**options):
        return {n for n, _ in build_model({"name": "resnet", **options}).named_parameters()}

    plain = names()
    no_skip = names(skip=False)
    assert {n for n in plain - no_skip} == {n for n in plain if ".projection." in n}
    assert no_skip < plain
    no_norm = names(norm="none")
    assert not any("norm" in n for n in no_norm)
    assert {n for n in no_norm if n.endswith(".bias")} >= {"stem.bias", "stages.0.0.conv1.bias"}


def test_resnet_without_skips_is_not_residual():
    """With skips the identity path carries a zero-weight block's input through; without, not."""
    torch.manual_seed(0)
    x = torch.rand(3, 1, 28, 28)
    for skip in (True, False):
        model = build_model({"name": "resnet", "channels": [4], "norm": "none", "skip": skip})
        block = model.stages[0][0]
        with torch.no_grad():
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()
            h = model.activation(model.stem(x))
            expected = model.activation(h) if skip else torch.zeros_like(h)
        torch.testing.assert_close(block(h), expected)


@pytest.mark.parametrize("stride,sides", [(1, [28, 14, 7]), (2, [14, 7, 4])])
def test_resnet_stem_stride_sets_the_stages_resolution(stride, sides):
    model = build_model({"name": "resnet", "channels": [4, 4, 4], "stem_stride": stride})
    seen = []
    for stage in model.stages:
        stage[-1].register_forward_hook(lambda module, args, out: seen.append(out.shape[-1]))
    model.eval()(torch.zeros(2, 784))
    assert seen == sides
