"""Where independent jobs run: this process, local worker processes (joblib), or a Ray cluster.

A job is ``(fn, args)`` with a module-level ``fn`` and picklable ``args``; every job's seeds are
fixed before it is submitted, so the results, returned in submission order, are the same
whichever executor runs them. The portfolio race on replicas (solver x replica x
macro-replication) and the post-replications go through :meth:`Executor.map`.

Choosing one (:func:`get_executor`): an explicit ``"local"`` / ``"ray"`` / executor object, else
Ray when a cluster address is configured (:func:`ray_address`: ``SOCRATES_RAY_ADDRESS`` or
``ray_address`` in ``socrates.toml``), else local with ``n_jobs`` processes. Ray is an optional
dependency (the ``ray`` extra). :class:`BackgroundJobs` runs such work behind a caller that keeps
going (the planner's monitor).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from joblib import Parallel, delayed

from core.errors import InputError
from core.settings import load_settings

Job = tuple[Callable[..., Any], tuple]
RAY_ADDRESS_ENV = "SOCRATES_RAY_ADDRESS"


def ray_address() -> str | None:
    """The configured Ray cluster address, or None (local execution): ``ray_address`` of the
    one settings object (``$SOCRATES_RAY_ADDRESS``, else ``socrates.toml``).

    ``auto`` joins the cluster this machine belongs to, ``ray://HOST:10001`` a remote one, and
    ``local`` starts a private Ray instance in this process.
    """
    return load_settings().ray_address


class Executor(Protocol):
    """Runs jobs and returns their results in submission order."""

    def map(self, jobs: Sequence[Job]) -> list[Any]:
        """``[fn(*args) for fn, args in jobs]``, possibly in parallel."""


class LocalExecutor:
    """This process (``n_jobs == 1``) or ``n_jobs`` joblib worker processes.

    Args:
        n_jobs: worker processes; 1 runs the jobs in order in this process.
    """

    def __init__(self, n_jobs: int = 1):
        if n_jobs < 1:
            raise InputError(f"n_jobs must be >= 1, got {n_jobs}")
        self.n_jobs = n_jobs

    def map(self, jobs: Sequence[Job]) -> list[Any]:
        if self.n_jobs == 1 or len(jobs) <= 1:
            return [fn(*args) for fn, args in jobs]
        try:
            return Parallel(n_jobs=self.n_jobs)(delayed(fn)(*args) for fn, args in jobs)
        except Exception:  # noqa: BLE001 - unpicklable user replicas: same results, one core
            return [fn(*args) for fn, args in jobs]


def connect_ray(address: str | None = None) -> Any:
    """The ``ray`` module, initialized: an instance already running in this process, else the
    cluster at ``address`` (``auto``, ``ray://HOST:PORT``), else a private one (``local`` or
    None).

    Raises:
        InputError: ray is not installed, or the cluster cannot be reached.
    """
    try:  # here, not at the top: ray is an optional dependency (the `ray` extra)
        import ray
    except ImportError:
        raise InputError(
            "the Ray executor needs the ray package: pip install 'socrates-lab[ray]', or "
            f"unset {RAY_ADDRESS_ENV} to run locally"
        ) from None
    if not ray.is_initialized():
        target = None if address in (None, "local") else address
        try:
            ray.init(address=target, include_dashboard=False, log_to_driver=False)
        except ConnectionError as exc:
            raise InputError(f"cannot reach the Ray cluster at {target!r} ({exc}); check "
                             f"{RAY_ADDRESS_ENV} or start it with `ray start --head`") from None
    return ray


class RayExecutor:
    """Each job is a Ray task (``num_cpus`` CPUs each); results gathered in order.

    Connects on first use: to ``address`` (or the configured one), unless Ray is already
    initialized in this process (then that instance is used, e.g. one a test started).

    Args:
        address: ``auto``, ``ray://HOST:PORT``, ``local`` (start a private instance), or None for
            :func:`ray_address` (and, if that is unset too, a private instance).
        num_cpus: CPUs reserved per task.
    """

    def __init__(self, address: str | None = None, num_cpus: float = 1.0):
        self.address = address if address is not None else ray_address()
        self.num_cpus = num_cpus

    def _ray(self) -> Any:
        return connect_ray(self.address)

    def map(self, jobs: Sequence[Job]) -> list[Any]:
        if not jobs:
            return []
        ray = self._ray()
        remote = ray.remote(num_cpus=self.num_cpus, max_retries=0)(_call)
        return ray.get([remote.remote(fn, args) for fn, args in jobs])


def _call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(*args)


def get_executor(executor: str | Executor | None = None, n_jobs: int = 1) -> Executor:
    """The executor to use.

    Args:
        executor: ``"local"``, ``"ray"``, an object with ``map``, or None: Ray if
            :func:`ray_address` is set, else local.
        n_jobs: worker processes of the local executor.
    """
    if executor is None:
        executor = "ray" if ray_address() else "local"
    if isinstance(executor, str):
        if executor == "local":
            return LocalExecutor(n_jobs)
        if executor == "ray":
            return RayExecutor()
        raise InputError(f"executor {executor!r} is not one of: local, ray")
    if not callable(getattr(executor, "map", None)):
        raise InputError(f"executor {executor!r} has no map(jobs) method")
    return executor


class BackgroundJobs:
    """Work started in background threads, each batch under the keys of the runs it carries.

    The planner starts a plan's runs with :meth:`start` (one batch for the training launcher,
    one for the solver runs through an :class:`Executor`) and, while they run, reads their run
    folders (:mod:`core.run_folder`); :meth:`running` says whether a run's batch is still
    alive, so a run that ended without a summary is seen as failed and one still running is
    not started twice. An instance belongs to one planner invocation (its context), not to the
    module: a resumed planner, or a second one in the same process, starts with none.
    Threads are daemons: a process that exits does not wait for them (their runs are launched
    again when the planner resumes).
    """

    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, keys: Sequence[str], fn: Callable[..., Any], *args: Any,
              name: str = "background") -> None:
        """Run ``fn(*args)`` in a daemon thread on behalf of ``keys``."""
        thread = threading.Thread(target=fn, args=args, daemon=True, name=name)
        with self._lock:
            for key in keys:
                self._threads[key] = thread
        thread.start()

    def running(self, key: str) -> bool:
        """Whether the batch carrying ``key`` is still alive."""
        with self._lock:
            thread = self._threads.get(key)
        return thread is not None and thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        """Wait for every batch (at most ``timeout`` seconds each)."""
        with self._lock:
            threads = set(self._threads.values())
        for thread in threads:
            thread.join(timeout)
