"""The model registry.

The default is the report's MLP (784-512-10, ReLU). Depth, width, activation, residual
connections and normalisation layers are options, so that later stages can compare
architectures on the same footing.

Example:
    >>> model = build_model({"name": "mlp", "hidden": [512], "activation": "relu"})
    >>> sum(p.numel() for p in model.parameters())
    407050
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
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


MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": MLP}


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
