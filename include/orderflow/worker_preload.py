"""Importing this module warms a worker process before it forks its task processes.

Every task process re-executes its DAG file. In a fresh child that costs the imports and first-use
set-up behind the file (TaskFlow decorators, timetables, orderflow's clients): about 270 ms for
``provision_order`` against about 30 ms once those are in memory. A worker that executed each DAG
file once, before its task processes fork from it, hands them all of that copy-on-write.

Wired, never imported by the DAGs or the library:

- LocalExecutor: the scheduler's workers come from a forkserver that imports this module
  (``[scheduler] mp_start_method = forkserver``, ``mp_forkserver_preload = orderflow.worker_preload``).
- CeleryExecutor: ``orderflow.celery_config`` imports it when the worker starts, before its pool forks.

The same workers run the task supervisors: ``orderflow.task_exit_wait`` is installed here too.

Executing a DAG file only builds DAG objects: no network at parse time is a rule of this project.
Anything that fails here is logged and skipped; a cold task process then pays the import itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def dag_files(folder: Path) -> list[Path]:
    """The files Airflow's DAG processor would parse: its own finder (``.airflowignore``, safe mode)."""
    from airflow.utils.file import list_py_file_paths

    return sorted(Path(p) for p in list_py_file_paths(folder))


def warm(folder: Path) -> list[str]:
    """Execute each DAG file of ``folder`` once as a throw-away module; returns the files that ran."""
    warmed = []
    for index, path in enumerate(dag_files(folder)):
        started = time.perf_counter()
        try:
            spec = importlib.util.spec_from_file_location(f"orderflow_preload_{index}", path)
            if spec is None or spec.loader is None:
                continue
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        except Exception:  # a broken DAG file is the DAG processor's to report, not the worker's
            log.warning("preload: %s did not execute; its tasks import cold", path, exc_info=True)
            continue
        warmed.append(path.name)
        log.debug("preload: %s in %.0f ms", path.name, 1000 * (time.perf_counter() - started))
    return warmed


# What a task process imports before it reaches its DAG file (task_runner.parse): a worker forked from the
# scheduler may have these already; one forked from a bare forkserver would not, and pays ~0.65 s a task.
TASK_RUNNER_MODULES = (
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.dag_processing.bundles.manager",
)


def _preload() -> None:
    from airflow.configuration import conf

    from orderflow import settings, task_exit_wait

    task_exit_wait.install()  # the supervisors these workers run notice a finished task at once
    if not settings.worker_warm():
        log.info("preload: ORDERFLOW_WORKER_WARM=0, DAG files not executed")
        return

    for name in TASK_RUNNER_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # an Airflow without one of them: its tasks import the rest cold
            log.warning("preload: %s did not import", name, exc_info=True)
    folder = Path(conf.get("core", "dags_folder")).expanduser()
    if folder.is_dir():
        log.info("preload: warmed %s", ", ".join(warm(folder)) or "nothing")


_preload()
