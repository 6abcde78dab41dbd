"""docker-compose.yaml describes the production shape the distributed CI check runs natively.

There is no Docker engine (or compose plugin) on the build machines, so the file is checked
structurally: the same Airflow components, executor, broker, result backend and settings that
`DEMO_SHAPE=distributed scripts/demo.sh` (run by CI) starts as processes.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
AIRFLOW_SERVICES = {
    "airflow-init": None,
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}


def test_every_airflow_component_runs_from_the_orderflow_image():
    services = COMPOSE["services"]
    assert {"postgres", "redis", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        svc = services[name]
        assert svc["build"] == "." and "orderflow" in svc["image"], name
        if command:
            assert svc["command"] == command, name


def test_celery_postgres_redis_and_shared_jwt_secret():
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in env
    assert env["ORDERFLOW_LOCK_URL"].startswith("redis://redis:")  # workers on several hosts share the lock
    worker_env = COMPOSE["services"]["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_every_airflow_component_shares_one_environment():
    """Executor, DB, broker, JWT secret and the lock URL must agree across components, or tasks break."""
    services = COMPOSE["services"]
    common = services["airflow-init"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert {key: env.get(key) for key in common} == common, name
        assert set(env) - set(common) <= {"DUMB_INIT_SETSID"}, name  # only the worker's own setting
        assert services[name]["image"] == services["airflow-init"]["image"], name
        assert services[name]["env_file"] == [{"path": ".env", "required": False}], name


def test_components_wait_for_their_dependencies():
    services = COMPOSE["services"]
    for name in AIRFLOW_SERVICES:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy", name
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]


def test_init_creates_the_pools_and_dockerfile_installs_the_pinned_set():
    init = " ".join(COMPOSE["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in init and "pools import" in init and "pools.json" in init
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-c /opt/orderflow/requirements.txt" in dockerfile


def test_sandbox_only_runs_in_its_profile():
    sandbox = COMPOSE["services"]["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["entrypoint"][0] == "orderflow-sandbox"
