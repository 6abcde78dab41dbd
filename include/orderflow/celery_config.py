"""Celery settings for orderflow's workers: Airflow's defaults, plus warming the worker before it forks.

Set ``[celery] celery_config_options = orderflow.celery_config.CELERY_CONFIG``. When an ``airflow
celery worker`` starts, ``worker_init`` fires in its main process before the prefork pool exists;
importing ``orderflow.worker_preload`` there means every pool process, and every task process the
pool forks, starts with the DAG files' imports done (see that module for the figures), and every task
supervisor the pool runs has ``orderflow.task_exit_wait`` installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)


@worker_init.connect
def _warm_worker(**_: Any) -> None:
    importlib.import_module("orderflow.worker_preload")
