"""docker-compose.yaml describes the production shape the distributed CI check runs natively.

There is no Docker engine on the build machines, so the file is checked structurally: the same
Airflow components, executor, broker, result backend and settings that
`DEMO_SHAPE=distributed scripts/demo.sh` (run by CI) starts as processes; the Dockerfile's stages
(the production image holds the pipeline only, the emulators live in the sandbox stage); and,
where Docker Compose v2 is installed, `docker compose config` (its parser needs no engine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
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
        assert svc["build"] == {"context": ".", "target": "pipeline"} and "orderflow" in svc["image"], name
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


def test_sandbox_only_runs_in_its_profile_from_its_own_image():
    services = COMPOSE["services"]
    sandbox = services["sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["entrypoint"][0] == "orderflow-sandbox"
    assert sandbox["build"] == {"context": ".", "target": "sandbox"}
    assert sandbox["image"] != services["airflow-init"]["image"]  # the emulators never end up in the Airflow image
    assert "--data-dir" in sandbox["entrypoint"] and "serve" in sandbox["entrypoint"]


# ----------------------------------------------------------------------------- the images (Dockerfile)


def dockerfile_stages() -> dict[str, dict]:
    """``{stage name: {"from": base, "lines": [instruction, ...]}}`` in file order (continuations joined)."""
    stages: dict[str, dict] = {}
    current: list[str] | None = None
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = " ".join((pending + line).split()), ""
        if line.upper().startswith("FROM "):
            words = line.split()
            assert len(words) == 4 and words[2].upper() == "AS", f"every stage is named: {line}"
            current = []
            stages[words[3]] = {"from": words[1], "lines": current}
        else:
            assert current is not None, f"instruction before FROM: {line}"
            current.append(line)
    return stages


def stage_chain(stages: dict[str, dict], name: str) -> list[str]:
    """The instructions an image built with ``--target name`` runs: its own and its base stages'."""
    chain: list[str] = []
    while name in stages:
        chain = stages[name]["lines"] + chain
        name = stages[name]["from"]
    assert name.startswith("apache/airflow:3.3.2-python3.11"), name
    return chain


def test_production_image_holds_the_pipeline_only():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "pipeline", "`docker build .` (no target) must give the production image"
    pipeline = stage_chain(stages, "pipeline")
    copied = [word for line in pipeline if line.startswith("COPY") for word in line.split()[1:]
              if not word.startswith("--")]
    assert "include" in copied and "pyproject.toml" in copied
    assert not any(word in ("sandbox", "salesforce") or word.startswith(("sandbox/", "salesforce/"))
                   for word in copied), pipeline
    installs = [line for line in pipeline if line.startswith("RUN") and "pip install" in line]
    assert installs, pipeline
    for line in installs:
        assert "sandbox" not in line, line
        # the whole pinned set (dev tools, the emulators' servers) only as constraints, never as requirements
        assert "-c /opt/orderflow/requirements.txt" in line and " -r " not in line, line
    assert any(line.split()[-1] == "/opt/orderflow" for line in installs)


def test_sandbox_image_adds_the_emulators_to_the_pipeline():
    stages = dockerfile_stages()
    sandbox = stage_chain(stages, "sandbox")
    assert stage_chain(stages, "pipeline") == sandbox[:len(stage_chain(stages, "pipeline"))]
    assert any(line.startswith("COPY") and " sandbox " in f"{line} " for line in sandbox)
    assert any(line.startswith("COPY") and " salesforce " in f"{line} " for line in sandbox)  # the org's metadata
    assert any("pip install" in line and line.endswith("-e /opt/orderflow/sandbox") for line in sandbox)


def test_the_pipeline_package_declares_no_sandbox_dependency():
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    names = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower() for dep in root["project"]["dependencies"]}
    assert not names & {"fastapi", "starlette", "uvicorn", "aiosmtpd"}, names
    assert "orderflow-sandbox" not in root["project"].get("scripts", {})
    found = root["tool"]["setuptools"]["packages"]["find"]
    assert found["where"] == ["include"] and all(not p.startswith("orderflow_sandbox") for p in found["include"])
    sandbox = tomllib.loads((REPO / "sandbox" / "pyproject.toml").read_text())["project"]
    assert sandbox["name"] == "orderflow-sandbox"
    assert sandbox["scripts"]["orderflow-sandbox"] == "orderflow_sandbox.cli:main"
    assert f"orderflow=={root['project']['version']}" in sandbox["dependencies"]
    assert {"uvicorn", "aiosmtpd", "starlette"} <= set(sandbox["dependencies"])
    importing = [str(p.relative_to(REPO)) for p in (REPO / "include").rglob("*.py")
                 if re.search(r"^\s*(from|import) orderflow_sandbox\b", p.read_text(), re.M)]
    assert importing == [], "the pipeline must run without the sandbox installed"


def _compose() -> list[str] | None:
    """``docker compose`` (the CLI plugin) or a v2 ``docker-compose``; None where neither is installed."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        done = subprocess.run([*cmd, "version", "--short"], capture_output=True, text=True, timeout=60)
        major = done.stdout.strip().lstrip("v").split(".")[0]
        if done.returncode == 0 and major.isdigit() and int(major) >= 2:  # v1 does not know env_file's path/required
            return cmd
    return None


def test_docker_compose_config_validates():
    """Compose's own parser (no engine needed) accepts the file, with the sandbox profile too."""
    compose = _compose()
    if compose is None:
        pytest.skip("no Docker Compose v2 here (neither the `docker compose` plugin nor a v2 `docker-compose`)")
    env = {**os.environ, "AIRFLOW__API_AUTH__JWT_SECRET": "compose-config-check"}
    done = subprocess.run([*compose, "--file", str(REPO / "docker-compose.yaml"), "--profile", "sandbox",
                           "config", "--format", "json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert {*AIRFLOW_SERVICES, "sandbox"} <= set(services)
    assert services["airflow-scheduler"]["build"]["target"] == "pipeline"
    assert services["sandbox"]["build"]["target"] == "sandbox"
