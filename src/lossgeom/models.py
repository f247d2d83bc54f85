"""The model registry.

The default is the report's MLP (784-512-10, ReLU). Depth, width, activation, residual
connections and normalisation layers are options, so that later stages can compare
architectures on the same footing. Beside it: a LeNet-style CNN (``cnn``), a small ResNet for
28 x 28 inputs with switchable skips and BatchNorm (``resnet``) and a small vision transformer
(``vit``). Every model takes the registry's uniform ``input_dim`` and ``num_classes``; the
convolutional ones read square images of ``in_channels`` channels out of ``input_dim``.

Example:
    >>> model = build_model({"name": "mlp", "hidden": [512], "activation": "relu"})
    >>> sum(p.numel() for p in model.parameters())
    407050
    >>> sum(p.numel() for p in build_model({"name": "cnn"}).parameters())
    107786
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ModelConfigError(ValueError):
    """A model specification that names an unknown model or impossible shapes."""


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
}

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda width: nn.Identity(),
    "batchnorm": nn.BatchNorm1d,
    "layernorm": nn.LayerNorm,
}


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ModelConfigError(f"model.{name} must be a positive integer, got {value!r}")


def _positive_ints(name: str, values: Any, allow_empty: bool = False) -> list[int]:
    values = list(values) if isinstance(values, (list, tuple)) else values
    if (
        not isinstance(values, list)
        or (not values and not allow_empty)
        or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values)
    ):
        raise ModelConfigError(f"model.{name} must be a list of positive integers, got {values!r}")
    return values


def _choice(name: str, value: Any, known: dict) -> None:
    if value not in known:
        raise ModelConfigError(f"model.{name} {value!r} is unknown; known: {sorted(known)}")


def _image_side(input_dim: int, in_channels: int) -> int:
    """The side of the square images held in ``input_dim`` features of ``in_channels``."""
    _positive_int("input_dim", input_dim)
    _positive_int("in_channels", in_channels)
    side = math.isqrt(input_dim // in_channels)
    if side * side * in_channels != input_dim:
        raise ModelConfigError(
            f"model.input_dim {input_dim} is not {in_channels} square image channel(s); "
            "convolutional models need square images"
        )
    return side


def _images(x: Tensor, in_channels: int, side: int) -> Tensor:
    """Inputs as ``(batch, channels, side, side)`` images, whatever their incoming layout."""
    if x[0].numel() != in_channels * side * side:
        raise ValueError(
            f"the model expects {in_channels} x {side} x {side} inputs, got {tuple(x.shape[1:])}"
        )
    return x.reshape(x.shape[0], in_channels, side, side)


class MLP(nn.Module):
    """A fully connected network on flattened inputs.

    Layer ``i`` computes ``act(norm(W_i h + b_i))``; with ``residual=True`` the hidden layers
    after the first add their input (``h + act(norm(W_i h + b_i))``, He et al. 2016), which
    requires equal widths. ``hidden=[]`` gives a linear (softmax-regression) model.

    The first affine map is kept apart (``input_layer``) because slices exploit that its
    output is affine in its own parameters: ``forward`` accepts a precomputed
    ``first_preactivation`` in place of the input.
    """

    def __init__(
        self,
        input_dim: int = 784,
        hidden: list[int] | tuple[int, ...] = (512,),
        num_classes: int = 10,
        activation: str = "relu",
        residual: bool = False,
        norm: str = "none",
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        for name, value in (("input_dim", input_dim), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelConfigError(f"model.{name} must be a positive integer, got {value!r}")
        for width in hidden:
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise ModelConfigError(f"model.hidden must hold positive integers, got {hidden!r}")
        if activation not in ACTIVATIONS:
            raise ModelConfigError(
                f"model.activation {activation!r} is unknown; known: {sorted(ACTIVATIONS)}"
            )
        if norm not in NORMS:
            raise ModelConfigError(f"model.norm {norm!r} is unknown; known: {sorted(NORMS)}")
        if residual and len(set(hidden)) > 1:
            raise ModelConfigError(
                f"model.residual needs equal hidden widths to add a layer's input to its "
                f"output, got hidden={hidden}"
            )
        self.input_dim = input_dim
        self.residual = residual
        widths = [*hidden, num_classes]
        self.input_layer = nn.Linear(input_dim, widths[0])
        self.hidden_layers = nn.ModuleList(
            nn.Linear(widths[i], widths[i + 1]) for i in range(len(hidden) - 1)
        )
        self.norms = nn.ModuleList(NORMS[norm](width) for width in hidden)
        self.activation = ACTIVATIONS[activation]()
        self.output_layer = nn.Linear(hidden[-1], num_classes) if hidden else None

    def forward(self, x: Tensor, first_preactivation: Tensor | None = None) -> Tensor:
        """Logits of ``x``, or of a precomputed first-layer output ``first_preactivation``."""
        if first_preactivation is None:
            x = x.flatten(1)
            if x.shape[1] != self.input_dim:
                raise ValueError(
                    f"the model expects {self.input_dim} input features, got {x.shape[1]}"
                )
            first_preactivation = self.input_layer(x)
        if self.output_layer is None:
            return first_preactivation
        h = self.activation(self.norms[0](first_preactivation))
        for layer, norm in zip(self.hidden_layers, list(self.norms)[1:], strict=True):
            z = self.activation(norm(layer(h)))
            h = h + z if self.residual else z
        return self.output_layer(h)


HOMOGENEOUS_ACTIVATIONS = ("relu", "leaky_relu")


def affine_layers(model: MLP) -> list[nn.Linear]:
    """An MLP's affine maps in order: the input layer, the hidden layers, the output layer."""
    return [model.input_layer, *model.hidden_layers] + (
        [model.output_layer] if model.output_layer is not None else []
    )


@torch.no_grad()
def rescale_layer(model: MLP, layer: int, alpha: float) -> MLP:
    """Dinh et al. (2017)'s reparametrisation, in place (the model is returned).

    Affine map ``layer`` is multiplied by ``alpha``, the next one's weight by ``1 / alpha``.

    For a positively homogeneous activation (``relu(a z) = a relu(z)`` for ``a > 0``) without
    normalisation or skips the function is unchanged, while the Hessian at the new point is
    ``S H S`` with ``S = 1 / alpha`` on layer ``layer``'s weight and bias and ``alpha`` on the
    next layer's weight: sharpness and trace change, the network does not.

    Raises:
        ValueError: a model on which the rescaling changes the function (another activation,
            normalisation, skips), a layer without a next one, or ``alpha <= 0``.
    """
    if not isinstance(model, MLP):
        raise ValueError(f"rescaling is defined here for MLPs, got {type(model).__name__}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    name = next((k for k, v in ACTIVATIONS.items() if isinstance(model.activation, v)), None)
    if name not in HOMOGENEOUS_ACTIVATIONS:
        raise ValueError(
            f"the activation {type(model.activation).__name__} is not positively homogeneous "
            f"({', '.join(HOMOGENEOUS_ACTIVATIONS)} are): rescaling would change the function"
        )
    if model.residual or any(not isinstance(n, nn.Identity) for n in model.norms):
        raise ValueError("rescaling changes the function of networks with skips or normalisation")
    layers = affine_layers(model)
    if not 0 <= layer < len(layers) - 1:
        raise ValueError(f"layer must be in [0, {len(layers) - 2}] (a next layer must exist)")
    layers[layer].weight.mul_(alpha)
    layers[layer].bias.mul_(alpha)
    layers[layer + 1].weight.div_(alpha)
    return model


CONV_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda channels: nn.Identity(),
    "batchnorm": nn.BatchNorm2d,
}


class CNN(nn.Module):
    """A LeNet-style network (LeCun et al. 1998) for square images.

    ``len(channels)`` blocks of ``conv (kernel_size, same padding) - norm - act - max-pool 2``,
    each halving the side, then fully connected hidden layers of widths ``hidden`` and the
    output layer. With the defaults on MNIST: 28 -> 14 -> 7, 16 x 7 x 7 features, 120, 84, 10.
    """

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        in_channels: int = 1,
        channels: list[int] | tuple[int, ...] = (6, 16),
        hidden: list[int] | tuple[int, ...] = (120, 84),
        kernel_size: int = 5,
        activation: str = "relu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.side = _image_side(input_dim, in_channels)
        _positive_int("num_classes", num_classes)
        channels = _positive_ints("channels", channels)
        hidden = _positive_ints("hidden", hidden, allow_empty=True)
        _positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ModelConfigError(
                f"model.kernel_size must be odd (same padding), got {kernel_size}"
            )
        _choice("activation", activation, ACTIVATIONS)
        _choice("norm", norm, CONV_NORMS)
        side = self.side
        for _ in channels:
            side //= 2
        if side < 1:
            raise ModelConfigError(
                f"model.channels: {len(channels)} pooling blocks shrink a {self.side} x "
                f"{self.side} image to nothing"
            )
        self.in_channels = in_channels
        widths = [in_channels, *channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2)
            for i in range(len(channels))
        )
        self.conv_norms = nn.ModuleList(CONV_NORMS[norm](c) for c in channels)
        features = [channels[-1] * side * side, *hidden, num_classes]
        self.fcs = nn.ModuleList(
            nn.Linear(features[i], features[i + 1]) for i in range(len(features) - 1)
        )
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        """Logits of ``x`` (images, or the same pixels flattened)."""
        h = _images(x, self.in_channels, self.side)
        for conv, norm in zip(self.convs, self.conv_norms, strict=True):
            h = F.max_pool2d(self.activation(norm(conv(h))), 2)
        h = h.flatten(1)
        for fc in self.fcs[:-1]:
            h = self.activation(fc(h))
        return self.fcs[-1](h)


class BasicBlock(nn.Module):
    """``act(norm(conv(act(norm(conv(h))))) + skip(h))`` (He et al. 2016), 3 x 3 convolutions.

    The skip is the identity, or a 1 x 1 convolution with norm where the shape changes;
    ``skip=False`` drops it (Li et al. 2018's "no short-cut" networks).
    """

    def __init__(
        self, in_channels: int, channels: int, stride: int, norm: str, skip: bool, activation: str
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=norm == "none")
        self.norm1 = CONV_NORMS[norm](channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=norm == "none")
        self.norm2 = CONV_NORMS[norm](channels)
        self.activation = ACTIVATIONS[activation]()
        self.skip = skip
        self.projection = None
        if skip and (stride != 1 or in_channels != channels):
            self.projection = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=norm == "none"),
                CONV_NORMS[norm](channels),
            )

    def forward(self, h: Tensor) -> Tensor:
        """The block's output for feature maps ``h``."""
        out = self.norm2(self.conv2(self.activation(self.norm1(self.conv1(h)))))
        if self.skip:
            out = out + (h if self.projection is None else self.projection(h))
        return self.activation(out)


class ResNet(nn.Module):
    """A small ResNet for square images (He et al. 2016), with switchable skips and norm.

    A 3 x 3 stem convolution to ``channels[0]`` (norm, act) of stride ``stem_stride`` (2
    halves the side first, as ImageNet ResNets do, for about a third of the cost on 28 x 28
    images), then one stage per entry of
    ``channels`` of ``blocks`` basic blocks; every stage after the first starts with a stride-2
    block (a 1 x 1 projection on its skip); global average pooling and a linear classifier.
    ``skip=False`` is the same network without skips; ``norm="none"`` drops BatchNorm (the
    convolutions then get biases).
    """

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        in_channels: int = 1,
        channels: list[int] | tuple[int, ...] = (16, 32, 64),
        blocks: int = 1,
        skip: bool = True,
        norm: str = "batchnorm",
        activation: str = "relu",
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.side = _image_side(input_dim, in_channels)
        _positive_int("num_classes", num_classes)
        channels = _positive_ints("channels", channels)
        _positive_int("blocks", blocks)
        _positive_int("stem_stride", stem_stride)
        if stem_stride > self.side:
            raise ModelConfigError(
                f"model.stem_stride: {stem_stride} is larger than the {self.side} x {self.side} image"
            )
        if not isinstance(skip, bool):
            raise ModelConfigError(f"model.skip must be true or false, got {skip!r}")
        _choice("norm", norm, CONV_NORMS)
        _choice("activation", activation, ACTIVATIONS)
        self.in_channels = in_channels
        self.stem = nn.Conv2d(in_channels, channels[0], 3, stem_stride, 1, bias=norm == "none")
        self.stem_norm = CONV_NORMS[norm](channels[0])
        self.activation = ACTIVATIONS[activation]()
        self.stages = nn.ModuleList()
        previous = channels[0]
        for index, width in enumerate(channels):
            stage = nn.ModuleList()
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                stage.append(BasicBlock(previous, width, stride, norm, skip, activation))
                previous = width
            self.stages.append(stage)
        self.head = nn.Linear(previous, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of ``x`` (images, or the same pixels flattened)."""
        h = self.activation(self.stem_norm(self.stem(_images(x, self.in_channels, self.side))))
        for stage in self.stages:
            for block in stage:
                h = block(h)
        return self.head(h.mean((2, 3)))


class Attention(nn.Module):
    """Multi-head self-attention written out (twice differentiable, for Hessian products)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: Tensor) -> Tensor:
        """Attention over the tokens of ``h`` (batch, tokens, dim)."""
        batch, tokens, dim = h.shape
        q, k, v = (
            self.qkv(h)
            .reshape(batch, tokens, 3, self.heads, dim // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads), dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))


class TransformerBlock(nn.Module):
    """A pre-norm transformer block: ``h + attn(LN(h))``, then ``h + MLP(LN(h))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, activation: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            ACTIVATIONS[activation](),
            nn.Linear(mlp_ratio * dim, dim),
        )

    def forward(self, h: Tensor) -> Tensor:
        """The block's output for tokens ``h``."""
        h = h + self.attention(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class ViT(nn.Module):
    """A small vision transformer (Dosovitskiy et al. 2021) for square images.

    Non-overlapping ``patch_size`` x ``patch_size`` patches, embedded linearly to ``dim`` with
    a learned position embedding; ``depth`` pre-norm blocks of ``heads`` heads; a final
    LayerNorm, mean pooling over the patches and a linear classifier.
    """

    def __init__(
        self,
        input_dim: int = 784,
        num_classes: int = 10,
        in_channels: int = 1,
        patch_size: int = 7,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 2,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        self.side = _image_side(input_dim, in_channels)
        _positive_int("num_classes", num_classes)
        for name, value in (("patch_size", patch_size), ("dim", dim), ("depth", depth),
                            ("heads", heads), ("mlp_ratio", mlp_ratio)):  # fmt: skip
            _positive_int(name, value)
        if self.side % patch_size:
            raise ModelConfigError(
                f"model.patch_size {patch_size} does not divide the image side {self.side}"
            )
        if dim % heads:
            raise ModelConfigError(f"model.dim {dim} is not a multiple of model.heads {heads}")
        _choice("activation", activation, ACTIVATIONS)
        self.in_channels = in_channels
        self.patch_size = patch_size
        tokens = (self.side // patch_size) ** 2
        self.embed = nn.Linear(in_channels * patch_size * patch_size, dim)
        self.position = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, activation) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of ``x`` (images, or the same pixels flattened)."""
        images, p = _images(x, self.in_channels, self.side), self.patch_size
        patches = F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)  # (B, tokens, C p p)
        h = self.embed(patches) + self.position
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h).mean(1))


MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "cnn": CNN, "resnet": ResNet, "vit": ViT}


def complete_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with every option of its model filled in with the model's default.

    The result (JSON types: tuples become lists) is what a configuration records, so that a
    stored specification says everything about the network it built.

    Raises:
        ModelConfigError: an unknown model name or an option the model does not take.
    """
    spec = dict(spec)
    name = spec.pop("name", "mlp")
    if name not in MODELS:
        raise ModelConfigError(f"model.name {name!r} is unknown; known: {sorted(MODELS)}")
    parameters = inspect.signature(MODELS[name]).parameters
    unknown = sorted(set(spec) - set(parameters))
    if unknown:
        raise ModelConfigError(
            f"model.{unknown[0]} is not an option of model {name!r}; its options: "
            f"{sorted(parameters)}"
        )
    defaults = {
        key: list(p.default) if isinstance(p.default, tuple) else p.default
        for key, p in parameters.items()
    }
    return {"name": name, **defaults, **spec}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build a model from a specification ``{"name": ..., **options}``.

    Raises:
        ModelConfigError: for an unknown name, an unknown option or impossible shapes.
    """
    spec = dict(spec)
    name = spec.pop("name", "mlp")
    if name not in MODELS:
        raise ModelConfigError(f"model.name {name!r} is unknown; known: {sorted(MODELS)}")
    try:
        return MODELS[name](**spec)
    except TypeError as error:
        raise ModelConfigError(f"bad options for model {name!r}: {error}") from error


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; give each one back its own mode afterwards.

    ``model.train(was_training)`` would reset a submodule deliberately left in eval mode (a
    frozen BatchNorm, say), so each module's flag is saved and restored.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def parameter_count(model: nn.Module) -> int:
    """Number of parameters that require gradients (the length of flat vectors)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flat_parameters(model: nn.Module) -> Tensor:
    """The parameters that require gradients as one flat vector (a detached copy)."""
    return (
        torch.nn.utils.parameters_to_vector([p for p in model.parameters() if p.requires_grad])
        .detach()
        .clone()
    )


def set_flat_parameters(model: nn.Module, vector: Tensor) -> None:
    """Write a flat vector into the parameters that require gradients."""
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(
            vector, [p for p in model.parameters() if p.requires_grad]
        )
