"""Flax NNX image classifiers of the study, built by name through one registry."""

from jax_models import (  # noqa: F401  (importing a model module registers its models)
    alexnet,
    googlenet,
    lenet,
    resnet,
    senet,
    vgg,
    xception,
)
from jax_models.complexity import complexity, count_params, forward_flops
from jax_models.registry import check_name, create, names, register

MODELS: tuple[str, ...] = names()

__all__ = [
    "MODELS",
    "check_name",
    "complexity",
    "count_params",
    "create",
    "forward_flops",
    "register",
]
