"""``AirflowApiClient``: start DAG runs through Airflow's stable REST API, many from one process.

Why not ``TriggerDagRunOperator``: it starts one run per task instance, so a burst of N approvals
cost N task instances competing with the provisioning tasks for executor slots. Here one task
starts the whole batch: ``POST /api/v2/dags/{dag_id}/dagRuns`` per run (there is no bulk create),
a few requests in flight, each retried while the answer is transient (the embedded default's
SQLite answers bursts with HTTP 500 "Database error"; connection errors while the API server
restarts). A run id that already exists (HTTP 409) is what makes a duplicate event or a re-drain
start nothing twice.

The answers are classified here, once: 200 started, 409 existing, 401 re-login once, 429/5xx and
transport errors transient, any other 4xx permanent (a broken DAG, a conf the params refuse).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from orderflow.errors import register_secret, safe_message

log = logging.getLogger(__name__)

STARTED, EXISTING = "started", "existing"


class AirflowApiError(Exception):
    """A classified failure of Airflow's REST API; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status = status


def classify_response(status: int, body: str, what: str) -> AirflowApiError:
    """The error for a non-2xx answer other than 409 (which callers treat as "exists")."""
    detail = safe_message(body or "", limit=300)
    if status == 429 or status >= 500:
        return AirflowApiError(f"{what}: HTTP {status} {detail}", transient=True, status=status)
    if status in (401, 403):
        return AirflowApiError(f"{what}: HTTP {status}: the airflow_api connection's user may not do this "
                               f"({detail})", transient=False, status=status)
    return AirflowApiError(f"{what}: HTTP {status} {detail}", transient=False, status=status)


@dataclass(frozen=True)
class RunStartReport:
    """What one batch start did: run ids started, already there, refused (permanent), given up (transient)."""

    dag_id: str
    started: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = ()
    gave_up: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    requests: int = 0
    retried: int = 0

    @property
    def ok(self) -> bool:
        return not self.refused and not self.gave_up

    def summary(self) -> str:
        return (f"{self.dag_id}: {len(self.started)} started, {len(self.existing)} already existed, "
                f"{len(self.refused)} refused, {len(self.gave_up)} not started (transient) in {self.seconds:.2f} s "
                f"({self.requests} request(s), {self.retried} retried)")

    def to_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "started": list(self.started), "existing": list(self.existing),
                "refused": [list(r) for r in self.refused], "gave_up": [list(r) for r in self.gave_up],
                "seconds": round(self.seconds, 3), "requests": self.requests, "retried": self.retried}


class AirflowApiClient:
    """A user of Airflow's REST API v2 (JWT from ``POST /auth/token``).

    :param retry_for: seconds one run's start may be retried while the answers are transient.
    :param concurrency: requests in flight at once (the API server runs them on its workers).
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        verify: bool | str = True,
        timeout: float = 30.0,
        retry_for: float = 60.0,
        concurrency: int = 4,
        session_factory: Callable[[], requests.Session] = requests.Session,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url:
            raise ValueError("airflow_api connection: host (the API server's URL) is empty")
        if not username or not password:
            raise ValueError("airflow_api connection: login and password are required")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        register_secret(password)
        self.verify = verify
        self.timeout = timeout
        self.retry_for = retry_for
        self.concurrency = max(1, int(concurrency))
        self._session_factory = session_factory
        self._sleep = sleep
        self._local = threading.local()
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._counts = {"requests": 0, "retried": 0}
        self._count_lock = threading.Lock()

    # ------------------------------------------------------------------ plumbing

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._session_factory()
        return session

    def _count(self, key: str) -> None:
        with self._count_lock:
            self._counts[key] += 1

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        self._count("requests")
        try:
            return self._session().request(method, f"{self.base_url}{path}", verify=self.verify,
                                           timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise AirflowApiError(f"{what}: Airflow API unreachable: {safe_message(f'{type(exc).__name__}: {exc}')}",
                                  transient=True) from None

    def token(self, *, renew: bool = False) -> str:
        """The JWT, fetched once per client (and again after a 401)."""
        with self._token_lock:
            if self._token is None or renew:
                resp = self._request("POST", "/auth/token", "login",
                                     json={"username": self.username, "password": self._password})
                if resp.status_code not in (200, 201):
                    raise classify_response(resp.status_code, resp.text, f"login as {self.username!r}")
                token = resp.json().get("access_token")
                if not token:
                    raise AirflowApiError("login: the answer has no access_token", transient=False)
                register_secret(token)
                self._token = token
            return self._token

    # ------------------------------------------------------------------ runs

    def trigger_run(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> str:
        """Start one run with ``logical_date`` null; ``"started"`` or ``"existing"`` (HTTP 409)."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        what = f"start {dag_id} run {run_id}"
        renewed = False
        while True:
            resp = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", what, json=body,
                                 headers={"Authorization": f"Bearer {self.token()}"})
            if resp.status_code == 200:
                return STARTED
            if resp.status_code == 409:
                return EXISTING
            if resp.status_code == 401 and not renewed:  # the token expired or the secret rotated
                renewed = True
                self.token(renew=True)
                continue
            raise classify_response(resp.status_code, resp.text, what)

    def _start_one(self, dag_id: str, spec: dict[str, Any]) -> tuple[str, str, str]:
        run_id = spec["trigger_run_id"]
        deadline = time.monotonic() + self.retry_for
        delay = 0.25
        while True:
            try:
                return run_id, self.trigger_run(dag_id, run_id, spec["conf"]), ""
            except AirflowApiError as exc:
                if not exc.transient:
                    return run_id, "refused", exc.message
                if time.monotonic() + delay > deadline:
                    return run_id, "gave_up", exc.message
                self._count("retried")
                log.info("%s; retrying in %.2f s", exc.message, delay)
                self._sleep(delay)
                delay = min(delay * 2, 5.0)

    def start_runs(self, dag_id: str, specs: Iterable[dict[str, Any]]) -> RunStartReport:
        """Start one run per spec (``{"trigger_run_id", "conf"}``); every spec is tried, whatever the others do."""
        specs = list(specs)
        began = time.monotonic()
        before = dict(self._counts)
        if specs:
            self.token()  # log in once, before the threads need it
        outcomes: dict[str, list] = {STARTED: [], EXISTING: [], "refused": [], "gave_up": []}
        if self.concurrency == 1 or len(specs) <= 1:
            results = [self._start_one(dag_id, spec) for spec in specs]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(specs)),
                                    thread_name_prefix="start-runs") as pool:
                results = list(pool.map(lambda s: self._start_one(dag_id, s), specs))
        for run_id, outcome, message in results:
            outcomes[outcome].append((run_id, message) if message else run_id)
        report = RunStartReport(
            dag_id=dag_id,
            started=tuple(outcomes[STARTED]),
            existing=tuple(outcomes[EXISTING]),
            refused=tuple(outcomes["refused"]),
            gave_up=tuple(outcomes["gave_up"]),
            seconds=time.monotonic() - began,
            requests=self._counts["requests"] - before["requests"],
            retried=self._counts["retried"] - before["retried"],
        )
        log.info("%s", report.summary())
        return report

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
