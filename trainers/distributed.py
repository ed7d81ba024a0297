"""Joins the processes of a multi-host run into one JAX runtime before any array exists.

`jax.distributed.initialize()` finds the coordinator by itself on Cloud TPU and under SLURM;
elsewhere JAX reads only `JAX_COORDINATOR_ADDRESS` from the environment, so the process count
and index come from `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` here. CPU processes exchange
gradients through gloo, which JAX does not enable by default.
"""

import os

import jax

from jax_models.errors import UserError

ENV_KEYS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise UserError(f"{name}={value!r} is not a non-negative integer; fix the environment.")
    return int(value)


def initialize() -> None:
    """`jax.distributed.initialize` with the process layout of the environment, one-line
    errors for a missing or inconsistent one."""
    # Only CPU arrays use it; accelerators keep their own collectives (NCCL, ICI).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            num_processes=_env_int("JAX_NUM_PROCESSES"), process_id=_env_int("JAX_PROCESS_ID")
        )
    except (ValueError, TypeError, RuntimeError) as error:
        raise UserError(
            f"Could not start the multi-host run ({str(error).splitlines()[0]}); on Cloud TPU "
            "and SLURM this is automatic, elsewhere set "
            f"{', '.join(ENV_KEYS)} on every process (README, 'Scaling out')."
        ) from error
