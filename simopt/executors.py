"""Where independent jobs run, re-exported from :mod:`core.executors` where it lives (the
training launcher connects to Ray through the same code)."""

from core.executors import (
    RAY_ADDRESS_ENV,
    Executor,
    Job,
    LocalExecutor,
    RayExecutor,
    connect_ray,
    get_executor,
    ray_address,
)

__all__ = ["RAY_ADDRESS_ENV", "Executor", "Job", "LocalExecutor", "RayExecutor", "connect_ray",
           "get_executor", "ray_address"]
