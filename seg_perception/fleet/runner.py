"""Replay + regress of many bags as Ray actors: one engine per worker, one result per bag.

Why Ray and not a process pool of our own: a regression suite outgrows one machine, and
Ray runs the same code on this machine (``ray.init()`` starts a local instance) or on an
existing cluster (``--address`` / ``RAY_ADDRESS``), with worker restarts and task retries
built in. Each worker is an actor holding the replay settings, the LiDAR segmenter and,
once the first bag needs it, the 2D engine: a model loads once per worker, not per bag.

A bag's work is exactly :func:`seg_perception.bag.replay.replay` (so its output bag is
the one ``seg-perception replay`` writes), then :func:`~seg_perception.bag.regress.regress`
against ``<golden>/<name>``. Anything a bag raises becomes its result ("failed", with the
sentence); the other bags go on. Results are written beside the outputs as
``<name>.result.json`` when a bag is done, which is what makes a rerun skip it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg_perception.bag.regress import Tolerances
from seg_perception.bag.replay import ReplayConfig
from seg_perception.fleet.bags import bag_name
from seg_perception.fleet.report import BagResult

#: How often a worker's lost task is tried again (on a restarted actor) before the bag
#: is reported failed.
TASK_RETRIES = 2


@dataclass
class FleetJob:
    """What every worker needs, shipped to it once."""

    config: ReplayConfig
    #: The engine images are segmented with; None: only label-image bags can be replayed.
    engine: Any | None = None
    #: Why there is no engine (said when a bag needs one).
    no_engine: str = ""
    segmenter: Any | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    #: The golden run's folder ("": replay only, no comparison).
    golden: str = ""


class BagRunner:
    """Replays bags one after another in one process; the Ray actor wraps this class (and
    tests can use it without Ray)."""

    def __init__(self, job: FleetJob) -> None:
        self.job = job
        self._engine: Any | None = None
        self.engine_load_s = 0.0

    def engine(self) -> Any:
        """The 2D engine, loaded on first use and kept for every later bag."""
        if self._engine is None:
            if self.job.engine is None:
                raise ValueError(f"images must be segmented but {self.job.no_engine}")
            from seg_perception.engines.factory import create_engine

            start = time.perf_counter()
            self._engine = create_engine(self.job.engine)
            self.engine_load_s = time.perf_counter() - start
        return self._engine

    def run(self, bag: str, out_dir: str) -> dict[str, Any]:
        """Replay (and compare) one bag; never raises: a failure is the result."""
        from seg_perception.bag.io import open_bag, topic_types
        from seg_perception.bag.regress import regress
        from seg_perception.bag.replay import find_topics, replay

        name = bag_name(Path(bag))
        output = Path(out_dir) / name
        result = BagResult(bag=str(bag), name=name, worker=os.getpid())
        start = time.perf_counter()
        loaded = self.engine_load_s
        try:
            if output.exists():  # a replay that ended without its result: do it again
                shutil.rmtree(output) if output.is_dir() else output.unlink()
            with open_bag(bag) as reader:
                _, cameras = find_topics(topic_types(reader), self.job.config)
            engine = self.engine() if any(not c.labels_topic for c in cameras) else None
            summary = replay(bag, output, self.job.config, engine, self.job.segmenter)
            result.clouds_read = summary.clouds_read
            result.clouds_processed = summary.clouds_processed
            result.dropped = dict(summary.dropped)
            result.class_counts = {str(k): int(v) for k, v in summary.class_counts.items()}
            result.status = "ok"
            if self.job.golden:
                report = regress(output, Path(self.job.golden) / name, self.job.tolerances)
                result.agreement = report.agreement
                result.regressions = report.regressions
                result.config_changes = report.config_changes
                result.clouds_compared = report.clouds
                result.status = "ok" if report.passed else "regression"
        except Exception as error:  # one bag, never the fleet
            text = " ".join(str(error).split())[:400] or type(error).__name__
            result.status = "failed"
            result.error = f"{type(error).__name__}: {text}"
        result.engine_load_s = self.engine_load_s - loaded
        result.seconds = time.perf_counter() - start
        return asdict(result)


def result_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{name}.result.json"


def finished(out_dir: Path, bag: Path) -> dict[str, Any] | None:
    """The stored result of a bag done by an earlier run (its output still there), else None."""
    name = bag_name(bag)
    path = result_path(out_dir, name)
    if not path.is_file() or not (out_dir / name).exists():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return stored if stored.get("status") != "failed" else None


def run_fleet(
    job: FleetJob, bags: list[Path], out_dir: Path, workers: int, address: str = "",
    progress: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], float]:  # fmt: skip
    """Every bag's result (finished ones from earlier runs included, marked ``skipped``) and
    the wall time. ``address``: a Ray cluster ("" = a local instance with ``workers`` CPUs)."""
    import ray

    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda text: print(text, file=sys.stderr))
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for bag in bags:
        earlier = finished(out_dir, bag)
        if earlier is not None:
            earlier["skipped"] = True
            results[bag_name(bag)] = earlier
        else:
            todo.append(bag)
    if len(todo) < len(bags):
        say(f"fleet: {len(bags) - len(todo)} bag(s) done by an earlier run, skipped")
    start = time.perf_counter()
    if not todo:
        return [results[bag_name(b)] for b in bags], 0.0
    _start_ray(ray, address, workers)
    try:
        actor_class = ray.remote(num_cpus=1, max_restarts=TASK_RETRIES,
                                 max_task_retries=TASK_RETRIES)(BagRunner)  # fmt: skip
        actors = [actor_class.remote(job) for _ in range(min(workers, len(todo)))]
        pending: dict[Any, tuple[Path, Any]] = {}
        queue = list(todo)
        for actor in actors:
            if queue:
                bag = queue.pop(0)
                pending[actor.run.remote(str(bag), str(out_dir))] = (bag, actor)
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            bag, actor = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as error:  # the worker died more often than it was retried
                lost = BagResult(str(bag), bag_name(bag), "failed", f"worker lost: {error!r}"[:400])
                result = asdict(lost)
            results[result["name"]] = result
            if result["status"] != "failed":
                result_path(out_dir, result["name"]).write_text(json.dumps(result, indent=1))
            done += 1
            elapsed = time.perf_counter() - start
            eta = elapsed / done * (len(todo) - done)
            failed = sum(r["status"] == "failed" for r in results.values())
            say(f"fleet: {done}/{len(todo)} bags ({failed} failed), {result['name']} "
                f"{result['status']}, ETA {eta:.0f} s")  # fmt: skip
            if queue:
                bag = queue.pop(0)
                pending[actor.run.remote(str(bag), str(out_dir))] = (bag, actor)
    finally:
        ray.shutdown()  # on a cluster: disconnects this driver, the cluster stays
    return [results[bag_name(b)] for b in bags], time.perf_counter() - start


def _start_ray(ray: Any, address: str, workers: int) -> None:
    """A local Ray with ``workers`` CPUs, or the cluster at ``address``. Workers run numpy
    with one BLAS thread each (they are the parallelism)."""
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local run needs no token
    options: dict[str, Any] = {
        "include_dashboard": False, "log_to_driver": False, "runtime_env": {"env_vars": env},
    }  # fmt: skip
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=workers, **options)
