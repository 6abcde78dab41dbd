"""The console's FastAPI app, mounted by the Airflow API server at ``/orderflow``.

Airflow gives a plugin's FastAPI app no authentication of its own, so every route depends on
Airflow's auth manager: the caller must be a logged-in Airflow user allowed to read DAGs (the JWT
the UI keeps in its ``_token`` cookie, or a bearer token as the REST API takes). Browsers that are
not logged in are sent to Airflow's login page; API callers get 401. All routes are GET: the
console shows state and links to Airflow's own actions, it changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from orderflow import settings
from orderflow.console import orders as order_lookup
from orderflow.console.query import InvalidQuery, OrderQuery, parse_query
from orderflow.console.reports import RECONCILE_DAG_ID, ReportRun, ReportStore
from orderflow.console.runs import PROVISION_DAG_ID, find_runs, run_url
from orderflow.errors import safe_message

log = logging.getLogger(__name__)

MOUNT_PREFIX = "/orderflow"
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; "
    "frame-src 'self'; "
    "frame-ancestors 'self'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The report is a file written by a worker; shown sandboxed so nothing in it runs as the Airflow origin.
_REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


_CONSOLE_JS = Path(__file__).parent / "static" / "console.js"
_BACKTICKS = re.compile(r"`([^`]+)`")


def when(value: str | None) -> str:
    """An ISO timestamp from Salesforce or Airflow as ``YYYY-MM-DD HH:MM:SS`` (both are UTC)."""
    text = (value or "").replace("T", " ")
    return text[:19]


def code_spans(text: str | None) -> Markup:
    """Escape ``text`` and show its Markdown code spans (the runbook's `field` names) as <code>."""
    escaped = str(escape(text or ""))
    return Markup(_BACKTICKS.sub(lambda m: f"<code>{m.group(1)}</code>", escaped))


def require_dag_read() -> Callable[..., None]:
    """Airflow's own check: an authenticated user with read access to DAGs."""
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET")


class ConsoleClients:
    """The Salesforce and WHMCS clients, built from the Airflow connections on first use and then kept
    (so the Salesforce token is reused across requests)."""

    def __init__(self, salesforce_conn_id: str = settings.SALESFORCE_CONN_ID,
                 whmcs_conn_id: str = settings.WHMCS_CONN_ID) -> None:
        self.salesforce_conn_id = salesforce_conn_id
        self.whmcs_conn_id = whmcs_conn_id

    @cached_property
    def salesforce(self) -> Any:
        from orderflow.salesforce.hook import SalesforceJwtHook

        return SalesforceJwtHook(self.salesforce_conn_id).get_conn()

    @cached_property
    def whmcs(self) -> Any:
        from orderflow.whmcs.hook import WhmcsHook

        return WhmcsHook(self.whmcs_conn_id).get_conn()


def _ui_base(request: Request) -> str:
    """Where the Airflow UI lives, as seen by this request (honours a base path in front of Airflow)."""
    root = request.scope.get("root_path", "") or ""
    return root[: -len(MOUNT_PREFIX)] if root.endswith(MOUNT_PREFIX) else root.rstrip("/")


def _wants_html(request: Request) -> bool:
    return "/api/" not in request.url.path and "text/html" in request.headers.get("accept", "")


def create_app(
    clients: ConsoleClients | None = None,
    store_factory: Callable[[], ReportStore] = ReportStore,
    authorize: Callable[..., None] | None = None,
) -> FastAPI:
    """The console app; ``authorize`` defaults to Airflow's DAG-read check (tests pass the real one too)."""
    clients = clients or ConsoleClients()
    check = authorize or require_dag_read()
    templates = Environment(
        loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    templates.filters["code_spans"] = code_spans
    templates.filters["when"] = when
    app = FastAPI(
        title="orderflow console",
        dependencies=[Depends(check)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        not_logged_in = exc.status_code == 401 or (exc.status_code == 403 and exc.detail == "Invalid JWT token")
        if not_logged_in and _wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = f"{_ui_base(request)}/api/v2/auth/login?{urlencode({'next': target})}"
            return RedirectResponse(login, status_code=303)
        return JSONResponse({"detail": safe_message(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    def page(name: str, request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
        base = _ui_base(request)
        html = templates.get_template(name).render(
            console=f"{base}{MOUNT_PREFIX}", ui=base, provision_dag=PROVISION_DAG_ID, **context
        )
        return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)

    def report_links(request: Request) -> tuple[Callable[[str], str], Callable[[str], str]]:
        base = _ui_base(request)
        return (
            lambda folder: f"{base}{MOUNT_PREFIX}/reports/{quote(folder, safe='')}",
            lambda run_id: run_url(base, RECONCILE_DAG_ID, run_id),
        )

    def lookup(request: Request, query: OrderQuery) -> list[order_lookup.OrderView]:
        """Views of every order matching the query (several only for an ambiguous number)."""
        records = order_lookup.find_salesforce_orders(clients.salesforce, query, _whmcs_or_none())
        if not records:
            raise order_lookup.OrderNotFound(query.value)
        if len(records) > 1:
            return [_summary_only(rec) for rec in records]
        base = _ui_base(request)
        report_url, recon_run_url = report_links(request)
        store = _store_or_none()
        view = order_lookup.build_order_view(
            records[0],
            _whmcs_or_none(),
            runs=lambda oid: find_runs(oid, base),
            reconciliation=lambda oid: order_lookup.reconciliation_view(store, oid, report_url, recon_run_url),
        )
        return [view]

    def _summary_only(record: dict) -> order_lookup.OrderView:
        return order_lookup.OrderView(order_lookup.salesforce_view(record), (), (), None, None, ())

    def _whmcs_or_none() -> Any:
        try:
            return clients.whmcs
        except Exception as exc:  # noqa: BLE001 - the page says WHMCS is not configured
            log.warning("console: WHMCS connection unusable: %s", safe_message(exc))
            return None

    def _store_or_none() -> ReportStore | None:
        try:
            return store_factory()
        except Exception as exc:  # noqa: BLE001
            log.warning("console: reports base unusable: %s", safe_message(exc))
            return None

    # ----------------------------------------------------------------- Orders

    @app.get("/static/console.js", include_in_schema=False)
    def console_js() -> Response:
        return Response(_CONSOLE_JS.read_text(), media_type="text/javascript",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{_ui_base(request)}{MOUNT_PREFIX}/orders", status_code=303)

    @app.get("/orders", response_class=HTMLResponse)
    def orders_page(request: Request, q: str | None = None) -> HTMLResponse:
        """One order (``q`` = Order Id, OrderNumber or WHMCS order id), or the recent failures."""
        if q is None or not q.strip():
            try:
                groups = order_lookup.failed_orders(clients.salesforce)
                problem = None
            except Exception as exc:  # noqa: BLE001
                groups, problem = [], f"Salesforce: {safe_message(exc)}"
            return page("failed.html", request, groups=groups, days=order_lookup.FAILED_LOOKBACK_DAYS, q="",
                        problem=problem)
        try:
            views = lookup(request, parse_query(q))
        except InvalidQuery as exc:
            return page("failed.html", request, 400, groups=None, q=q, q_error=safe_message(exc), problem=None)
        except order_lookup.OrderNotFound:
            return page("failed.html", request, 404, groups=None, q=q, problem=None,
                        q_error=f"q: no Salesforce Order matches {safe_message(q, limit=40)!r}")
        except Exception as exc:  # noqa: BLE001 - Salesforce unreachable, misconfigured, ...
            return page("failed.html", request, 502, groups=None, q=q, q_error=None,
                        problem=f"Salesforce: {safe_message(exc)}")
        if len(views) > 1:
            return page("matches.html", request, q=q, views=views)
        return page("order.html", request, q=q, view=views[0])

    @app.get("/api/orders/{order_id}")
    def order_json(request: Request, order_id: str) -> JSONResponse:
        """The Orders page's data for one order, as JSON."""
        try:
            views = lookup(request, parse_query(order_id, field="order_id"))
        except InvalidQuery as exc:
            return JSONResponse({"detail": safe_message(exc)}, status_code=400)
        except order_lookup.OrderNotFound:
            return JSONResponse({"detail": "order_id: no Salesforce Order matches"}, status_code=404)
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"detail": f"Salesforce: {safe_message(exc)}"}, status_code=502)
        if len(views) > 1:
            return JSONResponse(
                {"detail": "order_id matches several orders", "matches": [v.salesforce.id for v in views]},
                status_code=409,
            )
        return JSONResponse(views[0].to_dict())

    @app.get("/api/orders")
    def failed_json() -> JSONResponse:
        """The recent failures grouped by error code, as JSON."""
        try:
            groups = order_lookup.failed_orders(clients.salesforce)
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"detail": f"Salesforce: {safe_message(exc)}"}, status_code=502)
        from dataclasses import asdict

        return JSONResponse({"days": order_lookup.FAILED_LOOKBACK_DAYS, "groups": [asdict(g) for g in groups]})

    # ----------------------------------------------------------------- drift reports

    def report_page(request: Request, store: ReportStore, run: ReportRun | None, runs: list[ReportRun]) -> HTMLResponse:
        report_url, recon_run_url = report_links(request)
        return page(
            "reports.html", request, 200 if run else 404, run=run, runs=runs, report_url=report_url,
            run_url=recon_run_url,
        )

    @app.get("/reports/latest", response_class=HTMLResponse)
    def latest_report(request: Request) -> HTMLResponse:
        """The newest reconciliation report, with links to earlier ones and to the runs behind them."""
        store = store_factory()
        runs = store.runs()
        return report_page(request, store, runs[0] if runs else None, runs)

    @app.get("/reports/{folder}", response_class=HTMLResponse)
    def one_report(request: Request, folder: str) -> HTMLResponse:
        """One earlier report (``folder`` as listed on the latest report's page)."""
        store = store_factory()
        return report_page(request, store, store.find(folder), store.runs())

    @app.get("/reports/{folder}/report.html", response_class=HTMLResponse)
    def report_file(folder: str) -> HTMLResponse:
        store = store_factory()
        run = store.find(folder)
        if run is None or not run.has_html:
            raise HTTPException(404, "no report.html for that run")
        return HTMLResponse(store.html(run), headers=_REPORT_HEADERS)

    @app.get("/api/reports")
    def reports_json() -> JSONResponse:
        store = store_factory()
        return JSONResponse(
            {"runs": [{"run_id": r.run_id, "folder": r.folder, "generated_at": r.generated_at, "counts": r.counts,
                       "has_html": r.has_html, "report_url": f"{MOUNT_PREFIX}/reports/{quote(r.folder, safe='')}"}
                      for r in store.runs()]}
        )

    return app
