"""The Dask engine: one task per submission on a Dask cluster, nothing lost when a machine fails.

- The request (calls, the arrays the students' functions get, the limits) is made once and held by the
  cluster as one task that every grading task depends on: each worker fetches it once from a peer.
  It is a task, not ``client.scatter`` data, because scattered data dies with the workers that hold
  it (Dask: "lose scattered data, which can't be recovered", and every task that needs it is
  cancelled), whereas a task's result is recomputed. The reference's answers never leave the grader.
- Each submission is one task, ``cluster_task.run_packed``, keyed by its place in the class, its name
  and a digest of its files and of the request: a retried task replaces its result, never adds one.
- A worker that dies mid-task has its task rerun elsewhere by the scheduler; one that dies
  ``distributed.scheduler.allowed-failures`` + 1 times (4 by default) running the same submission
  makes that submission's row "it ended every worker it ran on". A task that *raised* (the grader
  failed on that machine: no sandbox there, a full disk) is retried ``retries`` times.
- At most ``window`` tasks are in the cluster at a time, so that neither the scheduler nor this
  process holds the files of a whole course at once; results are fetched and released as they come.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask
import numpy as np
from distributed import Client, KilledWorker, LocalCluster, as_completed

from checker.grading import cluster_task
from checker.grading.cluster_records import RETRIES, ClusterUnavailable, Finished
from checker.grading.cluster_task import (
    GraderFailed,
    PackProblem,
    Request,
    code_digest,
    pack_submission,
    run_packed,
    worker_sandbox,
)
from checker.grading.records import Call, Limits, SubmissionRun, clean_text
from checker.grading.runtime import SandboxUnavailable

__all__ = ["DaskEngine"]


def _request_of(request: Request) -> Request:
    return request


def _key_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)[:60]


class DaskEngine:
    """``kind``/``where`` from ``cluster.parse_scheduler``: ("local", N), ("address", "tcp://host:8786")
    or ("file", "scheduler.json")."""

    def __init__(
        self, kind: str, where: int | str, *, retries: int = RETRIES, connect_timeout: float = 30.0
    ) -> None:
        self.retries = retries
        self._cluster: LocalCluster | None = None
        self._in_flight: dict[Any, int] = {}
        self._shared: Any = None
        try:
            if kind == "local":
                assert isinstance(where, int)
                # One task at a time per single-threaded worker: a worker that dies then takes only
                # the submission it was running with it, not a queued neighbour.
                with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                    self._cluster = LocalCluster(
                        n_workers=where,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=":0",
                        silence_logs=logging.CRITICAL,  # each loss becomes a row; no log noise
                    )
                self.client = Client(self._cluster, timeout=connect_timeout, set_as_default=False)
                self.description = f"Dask LocalCluster ({where} worker processes)"
            elif kind == "file":
                self.client = Client(scheduler_file=str(where), timeout=connect_timeout, set_as_default=False)
                self.description = f"Dask cluster from {where}"
            else:
                self.client = Client(str(where), timeout=connect_timeout, set_as_default=False)
                self.description = f"Dask cluster at {where}"
        except (OSError, TimeoutError, ValueError) as exc:
            self.close()
            raise ClusterUnavailable(
                f"could not reach the Dask scheduler at {where} ({type(exc).__name__}: {clean_text(exc, 300)}); "
                "start one (`dask scheduler`, then `dask worker tcp://HOST:8786` on each machine), "
                "or use --scheduler local:N to start N workers on this machine"
            ) from None
        services = self.client.scheduler_info().get("services", {})
        self.dashboard_link = self.client.dashboard_link if "dashboard" in services else ""

    # -------------------------------------------------------------------------------- before running

    def sandbox(self, sandboxed: bool, *, wait_s: float = 60.0) -> str:
        """Check every worker: the same backprop-check as here, and a sandbox it can make. Describes it."""
        try:
            self.client.wait_for_workers(1, timeout=wait_s)
        except TimeoutError:
            raise ClusterUnavailable(
                f"no Dask worker joined {self.description} within {wait_s:g} s; start workers with "
                "`dask worker tcp://HOST:8786` (backprop-check and bubblewrap installed on each machine)"
            ) from None
        ours = code_digest()
        theirs = self.client.run(cluster_task.code_digest, on_error="return")
        unfit = {a: d for a, d in theirs.items() if d != ours}
        if unfit:
            address, found = next(iter(unfit.items()))
            said = (
                f"{type(found).__name__}: {clean_text(found, 200)}"
                if isinstance(found, BaseException)
                else found
            )
            raise ClusterUnavailable(
                f"{len(unfit)} of {len(theirs)} Dask worker(s) do not run this grader's backprop-check "
                f"(code {ours}; {address} has {said}); install the same version on every worker "
                f'(pip install "backprop-check[cluster]" from the same source) and restart them'
            )
        described = self.client.run(worker_sandbox, sandboxed, on_error="return")
        failed = {a: d for a, d in described.items() if isinstance(d, BaseException)}
        if failed:
            address, error = next(iter(failed.items()))
            raise SandboxUnavailable(
                f"{len(failed)} of {len(described)} Dask worker(s) cannot make the sandbox; {address}: "
                f"{clean_text(error, 1500)}"
            )
        return "; ".join(sorted(set(described.values())))

    # -------------------------------------------------------------------------------- running

    def _window(self) -> int:
        return max(64, 4 * sum(self.client.nthreads().values()))

    def run(
        self,
        submissions: Sequence[Path],
        calls: Sequence[Call],
        arrays: Mapping[str, np.ndarray],
        limits: Limits,
        *,
        sandboxed: bool,
    ) -> Iterator[Finished]:
        request = Request(tuple(calls), dict(arrays), limits, sandboxed)
        token = request.token()
        self._shared = self.client.submit(_request_of, request, key=f"backprop-check-request-{token}")
        window = self._window()
        waiting = iter(range(len(submissions)))
        completed = as_completed(loop=self.client.loop)
        unshipped: list[Finished] = []

        def fill() -> None:
            while len(self._in_flight) < window:
                index = next(waiting, None)
                if index is None:
                    return
                try:
                    packed = pack_submission(submissions[index])
                except (PackProblem, OSError) as exc:
                    reason = f"the grader could not read it to ship it: {clean_text(exc, 300)}"
                    unshipped.append(Finished(index, None, reason))
                    continue
                key = f"backprop-check-grade-{index:06d}-{_key_name(packed.name)}-{packed.digest()}-{token}"
                future = self.client.submit(run_packed, self._shared, packed, key=key, retries=self.retries)
                self._in_flight[future] = index
                completed.add(future)

        def next_finished() -> Finished | None:
            if unshipped:
                return unshipped.pop()
            if not self._in_flight:
                fill()
                if not self._in_flight:
                    return unshipped.pop() if unshipped else None
            future = next(completed)
            index = self._in_flight.pop(future)
            finished = self._finished(index, future, submissions[index])
            future.release()
            fill()
            return finished

        while True:
            try:
                finished = next_finished()
            except Exception as exc:  # the cluster itself failed (its scheduler was lost, say)
                lost = f"the cluster failed before it ran it: {type(exc).__name__}: {clean_text(exc, 300)}"
                rest = [*self._in_flight.values(), *waiting]
                self._in_flight.clear()
                yield from unshipped
                yield from (Finished(index, None, lost) for index in rest)
                return
            if finished is None:
                break
            yield finished
        self._shared.release()
        self._shared = None

    def _finished(self, index: int, future: Any, path: Path) -> Finished:
        try:
            run = future.result()
        except KilledWorker as exc:
            allowed = exc.args[2] if len(exc.args) > 2 and isinstance(exc.args[2], int) else None
            attempts = f" ({allowed + 1} attempts)" if allowed is not None else ""
            return Finished(index, None, f"it ended every worker it ran on{attempts}")
        except CancelledError as exc:
            return Finished(
                index, None, f"the cluster cancelled its task ({clean_text(exc, 300) or 'no reason given'})"
            )
        except Exception as exc:
            said = (
                clean_text(exc, 500)
                if isinstance(exc, GraderFailed)
                else f"{type(exc).__name__}: {clean_text(exc, 500)}"
            )
            return Finished(
                index, None, f"the grader failed on it on every attempt ({self.retries + 1}): {said}"
            )
        if type(run) is not SubmissionRun:
            return Finished(index, None, f"the worker sent back a {type(run).__name__}, not a run record")
        return Finished(index, replace(run, submission=str(path)))  # the grader's name for it wins

    # -------------------------------------------------------------------------------- ending

    def stop(self) -> None:
        """Cancel what is queued or running; a local cluster's workers (and their sandboxes) end with it."""
        try:
            if self._in_flight:
                self.client.cancel(list(self._in_flight), force=True)
        except Exception:  # the scheduler may be gone already: there is nothing left to cancel then
            pass
        self._in_flight.clear()
        self.close()

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
