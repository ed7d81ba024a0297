"""Name -> constructor registry, so trainers, scripts and the app build models by name."""

from collections.abc import Callable

from flax import nnx

from jax_models.errors import UserError

ModelFactory = Callable[..., nnx.Module]
_FACTORIES: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Registers `factory(*, num_classes, input_shape, rngs)` under `name`."""

    def wrap(factory: ModelFactory) -> ModelFactory:
        if name in _FACTORIES:
            raise ValueError(f"model name {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return wrap


def names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def check_name(name: str) -> None:
    """Refuses a name the registry does not hold, listing those it does."""
    if name not in _FACTORIES:
        raise UserError(f"Unknown model {name!r}; choose one of: {', '.join(names())}.")


def create(
    name: str, *, num_classes: int, input_shape: tuple[int, int, int], seed: int = 0
) -> nnx.Module:
    """Builds model `name` for NHWC inputs of `input_shape` (H, W, C) with `num_classes` logits."""
    check_name(name)
    return _FACTORIES[name](
        num_classes=num_classes, input_shape=tuple(input_shape), rngs=nnx.Rngs(seed)
    )
