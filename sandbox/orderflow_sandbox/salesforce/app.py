"""The org's HTTPS REST surface (ASGI): OAuth token, query, sObjects, collections, Bulk 2.0, admin.

Every request is named after its endpoint (``token``, ``query``, ``sobject_get`` ...); the name
selects fault rules and counts in the stats. Data endpoints need a valid ``Authorization: Bearer``
token, consume the daily API limit and carry ``Sforce-Limit-Info``. Errors use Salesforce's bodies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orderflow_sandbox.faults import FaultRule
from orderflow_sandbox.salesforce import soql as soql_mod
from orderflow_sandbox.salesforce.auth import TokenError, exchange_jwt
from orderflow_sandbox.salesforce.bulk import BulkError, BulkJobs
from orderflow_sandbox.salesforce.org import RecordError, SalesforceOrg, now_utc

log = logging.getLogger(__name__)

MIN_VERSION, MAX_VERSION = 31.0, 64.0
MAX_COLLECTION_RECORDS = 200
_V = r"/services/data/v(?P<version>\d+\.\d)"
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    (m, name, re.compile(f"^{pattern}/?$"))
    for m, name, pattern in [
        ("POST", "token", r"/services/oauth2/token"),
        ("GET", "userinfo", r"/services/oauth2/userinfo"),
        ("GET", "versions", r"/services/data"),
        ("GET", "resources", _V),
        ("GET", "limits", _V + r"/limits"),
        ("GET", "query", _V + r"/(?P<endpoint>query|queryAll)"),
        ("GET", "query_more", _V + r"/(?P<endpoint>query|queryAll)/(?P<locator>[A-Za-z0-9]+-\d+)"),
        ("GET", "describe_global", _V + r"/sobjects"),
        ("GET", "describe", _V + r"/sobjects/(?P<sobject>\w+)/describe"),
        ("GET", "sobject_info", _V + r"/sobjects/(?P<sobject>\w+)"),
        ("POST", "sobject_post", _V + r"/sobjects/(?P<sobject>\w+)"),
        ("GET", "sobject_get", _V + r"/sobjects/(?P<sobject>\w+)/(?P<id>[A-Za-z0-9]+)"),
        ("PATCH", "sobject_patch", _V + r"/sobjects/(?P<sobject>\w+)/(?P<id>[A-Za-z0-9]+)"),
        ("DELETE", "sobject_delete", _V + r"/sobjects/(?P<sobject>\w+)/(?P<id>[A-Za-z0-9]+)"),
        ("POST", "collections", _V + r"/composite/sobjects"),
        ("PATCH", "collections", _V + r"/composite/sobjects"),
        ("DELETE", "collections", _V + r"/composite/sobjects"),
        ("POST", "bulk", _V + r"/jobs/query"),
        ("GET", "bulk", _V + r"/jobs/query/(?P<job>\w+)"),
        ("PATCH", "bulk", _V + r"/jobs/query/(?P<job>\w+)"),
        ("DELETE", "bulk", _V + r"/jobs/query/(?P<job>\w+)"),
        ("GET", "bulk", _V + r"/jobs/query/(?P<job>\w+)/results"),
        ("GET", "admin_faults", r"/__sandbox/faults"),
        ("POST", "admin_faults", r"/__sandbox/faults"),
        ("DELETE", "admin_faults", r"/__sandbox/faults"),
        ("GET", "admin_stats", r"/__sandbox/stats"),
        ("DELETE", "admin_stats", r"/__sandbox/stats"),
        ("GET", "admin_state", r"/__sandbox/state"),
        ("GET", "admin_config", r"/__sandbox/config"),
        ("POST", "admin_config", r"/__sandbox/config"),
        ("POST", "admin_backdate", r"/__sandbox/backdate"),
        ("DELETE", "admin_tokens", r"/__sandbox/tokens"),
        ("GET", "admin_tokens", r"/__sandbox/tokens"),
        ("GET", "admin_events", r"/__sandbox/events"),
    ]
]
_UNAUTHENTICATED = {"token", "versions"}


def route(method: str, path: str) -> tuple[str | None, dict[str, str]]:
    """The endpoint name and path parameters for a request (None when nothing matches)."""
    for m, name, pattern in _ROUTES:
        match = pattern.match(path)
        if match and m == method:
            return name, match.groupdict()
    return None, {}


def sf_error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": code}], status_code=status, headers=headers)


class _Handled(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class _DropFilter(logging.Filter):
    """Silence uvicorn's complaint about the responses we cut off on purpose (the ``drop`` fault)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


class SalesforceApp:
    """ASGI application for one org."""

    def __init__(self, org: SalesforceOrg) -> None:
        self.org = org
        self.bulk = BulkJobs(org)
        logging.getLogger("uvicorn.error").addFilter(_DropFilter())

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        name, params = route(request.method, request.url.path)
        # simple-salesforce and others may override the method: POST ...?_HttpMethod=PATCH
        override = request.query_params.get("_HttpMethod")
        if request.method == "POST" and override:
            name, params = route(override.upper(), request.url.path)
        if name is None:
            await sf_error(404, "NOT_FOUND", "The requested resource does not exist")(scope, receive, send)
            return
        body = await request.body()
        if not name.startswith("admin_"):
            self.org.stats.hit(f"rest.{name}" if name != "token" else "token")
            rules = self.org.faults.take("query" if name == "query_more" else name)
            for rule in rules:
                if rule.kind == "latency":
                    await asyncio.sleep(rule.latency_ms / 1000)
            kinds = {rule.kind for rule in rules}
            if "drop" in kinds:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
                await send({"type": "http.response.body", "body": b"[", "more_body": True})
                return  # the server closes the connection: the client sees a dropped response
        else:
            kinds = set()
        try:
            response = await run_in_threadpool(self._dispatch, request, name, params, body, kinds)
        except _Handled as handled:
            response = handled.response
        except Exception:  # noqa: BLE001 - answer like Salesforce, keep serving
            log.exception("sandbox salesforce: %s %s failed", request.method, request.url.path)
            response = sf_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 0-0 (sandbox)")
        if not name.startswith("admin_") and name not in _UNAUTHENTICATED:
            response.headers["Sforce-Limit-Info"] = self.org.limit_info()
        await response(scope, receive, send)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, request: Request, name: str, params: dict, body: bytes, kinds: set[str]) -> Response:
        if "http_500" in kinds:
            return sf_error(500, "UNKNOWN_EXCEPTION",
                            "An unexpected error occurred. Please include this ErrorId if you contact support: 1913-4372 (-1062398112)")
        if "http_503" in kinds:
            return Response("<html><head><title>Service Unavailable</title></head><body><h1>Service Unavailable</h1>"
                            "<p>The server is temporarily unable to service your request.</p></body></html>",
                            status_code=503, media_type="text/html")
        if name.startswith("admin_"):
            return getattr(self, f"_{name}")(request, body)
        if name == "token":
            if "request_limit" in kinds:
                return JSONResponse({"error": "invalid_grant", "error_description": "ip restricted or invalid login hours"}, 400)
            return self._token(body)
        if name == "versions":
            return JSONResponse(self._versions())
        version = params.pop("version", None)
        if version is not None and not (MIN_VERSION <= float(version) <= MAX_VERSION):
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        token = _bearer(request)
        if "invalid_session" in kinds and token:
            self.org.revoke_access_token(token)
        if not self.org.validate_access_token(token):
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if "request_limit" in kinds or not self.org.consume_api_call():
            return sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        # unable_to_lock_row fails the first record; lock_last_record (collections) the last one only.
        lock_fault = "first" if "unable_to_lock_row" in kinds else "last" if "lock_last_record" in kinds else ""
        handler = getattr(self, f"_{name}")
        try:
            return handler(request, body, version=version or self.org.api_version, lock_fault=lock_fault, **params)
        except RecordError as exc:
            return JSONResponse(exc.as_rest_body(), status_code=exc.http_status)
        except soql_mod.SoqlError as exc:
            return sf_error(400, exc.error_code, exc.message)
        except BulkError as exc:
            return sf_error(exc.status, exc.code, exc.message)

    # ------------------------------------------------------------------ auth

    def _token(self, body: bytes) -> Response:
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        try:
            return JSONResponse(exchange_jwt(self.org, form))
        except TokenError as exc:
            return JSONResponse(exc.body, status_code=exc.status)

    def _userinfo(self, request: Request, body: bytes, **_: Any) -> Response:
        return JSONResponse({
            "sub": f"{self.org.instance_url}/id/{self.org.org_id}/{self.org.user_id}",
            "user_id": self.org.user_id,
            "organization_id": self.org.org_id,
            "preferred_username": self.org.username,
        })

    # ------------------------------------------------------------------ discovery

    def _versions(self) -> list[dict]:
        out = []
        v = MIN_VERSION
        while v <= MAX_VERSION:
            out.append({"label": f"API {v:.1f}", "url": f"/services/data/v{v:.1f}", "version": f"{v:.1f}"})
            v += 1.0
        return out

    def _resources(self, request: Request, body: bytes, version: str, **_: Any) -> Response:
        base = f"/services/data/v{version}"
        return JSONResponse({k: f"{base}/{k}" for k in ("sobjects", "query", "queryAll", "composite", "jobs", "limits")})

    def _limits(self, request: Request, body: bytes, **_: Any) -> Response:
        used = self.org.api_usage()
        return JSONResponse({"DailyApiRequests": {"Max": self.org.daily_api_limit,
                                                  "Remaining": max(self.org.daily_api_limit - used, 0)}})

    def _describe_global(self, request: Request, body: bytes, version: str, **_: Any) -> Response:
        return JSONResponse({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            self._object_info(obj.name, version) for obj in self.org.schema.values()]})

    def _object_info(self, name: str, version: str) -> dict:
        obj = self.org.sobject(name)
        return {"name": obj.name, "label": obj.name, "keyPrefix": obj.key_prefix, "custom": obj.name.endswith("__e"),
                "queryable": not obj.is_event, "createable": True, "updateable": not obj.is_event,
                "urls": {"sobject": f"/services/data/v{version}/sobjects/{obj.name}"}}

    def _sobject_info(self, request: Request, body: bytes, version: str, sobject: str, **_: Any) -> Response:
        return JSONResponse({"objectDescribe": self._object_info(sobject, version), "recentItems": []})

    def _describe(self, request: Request, body: bytes, version: str, sobject: str, **_: Any) -> Response:
        obj = self.org.sobject(sobject)
        info = self._object_info(obj.name, version)
        info["fields"] = [
            {"name": f.name, "type": f.type, "length": f.length or 0, "scale": f.scale or 0, "custom": f.custom,
             "nillable": f.nillable, "updateable": f.updateable, "createable": f.createable,
             "referenceTo": [f.reference_to] if f.reference_to else [], "relationshipName": f.relationship_name,
             "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False} for v in f.picklist]}
            for f in obj.fields.values()
        ]
        info["childRelationships"] = [{"relationshipName": rel, "childSObject": child, "field": fk}
                                      for rel, (child, fk) in obj.children.items()]
        return JSONResponse(info)

    # ------------------------------------------------------------------ query

    @staticmethod
    def _batch_size(request: Request) -> int:
        header = request.headers.get("sforce-query-options", "")
        match = re.search(r"batchSize\s*=\s*(\d+)", header)
        if not match:
            return 2000
        return min(max(int(match.group(1)), 200), 2000)

    def _query(self, request: Request, body: bytes, version: str, endpoint: str, **_: Any) -> Response:
        soql = request.query_params.get("q")
        if soql is None:
            return sf_error(400, "MALFORMED_QUERY", "A query string has to be specified")
        result = self.org.run_query(soql, include_deleted=endpoint == "queryAll", batch_size=self._batch_size(request),
                                    api_version=version)
        return JSONResponse(result)

    def _query_more(self, request: Request, body: bytes, version: str, endpoint: str, locator: str, **_: Any) -> Response:
        return JSONResponse(self.org.query_more(locator, self._batch_size(request), api_version=version))

    # ------------------------------------------------------------------ sObjects

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise RecordError("JSON_PARSER_ERROR", f"Unexpected character: {exc.msg} at [line:{exc.lineno}, column:{exc.colno}]") from None

    def _sobject_get(self, request: Request, body: bytes, version: str, sobject: str, id: str, **_: Any) -> Response:
        fields = request.query_params.get("fields")
        rec = self.org.get_record(sobject, id, [f.strip() for f in fields.split(",")] if fields else None)
        rec["attributes"]["url"] = rec["attributes"]["url"].replace(f"/v{self.org.api_version}/", f"/v{version}/")
        return JSONResponse(rec)

    def _sobject_post(self, request: Request, body: bytes, sobject: str, lock_fault: bool, **_: Any) -> Response:
        values = self._json(body)
        if not isinstance(values, dict):
            raise RecordError("JSON_PARSER_ERROR", "Expected a JSON object for the sObject data")
        obj = self.org.sobject(sobject)
        if obj.is_event:
            self.org.publish_event(obj.name, values)
            import uuid

            return JSONResponse({"id": "e00xx0000000001AAA", "success": True, "errors": [
                {"statusCode": "OPERATION_ENQUEUED", "message": str(uuid.uuid4()), "fields": []}]}, status_code=201)
        if lock_fault:
            raise RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        with self.org.transaction() as tx:
            new_id = self.org.create(tx, obj.name, values)
        return JSONResponse({"id": new_id, "success": True, "errors": []}, status_code=201)

    def _sobject_patch(self, request: Request, body: bytes, sobject: str, id: str, lock_fault: bool, **_: Any) -> Response:
        values = self._json(body)
        if not isinstance(values, dict):
            raise RecordError("JSON_PARSER_ERROR", "Expected a JSON object for the sObject data")
        if lock_fault:
            raise RecordError("UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 records: {id}")
        self._require_record(sobject, id)
        with self.org.transaction() as tx:
            self.org.update(tx, sobject, id, values)
        return Response(status_code=204)

    def _sobject_delete(self, request: Request, body: bytes, sobject: str, id: str, lock_fault: bool, **_: Any) -> Response:
        if lock_fault:
            raise RecordError("UNABLE_TO_LOCK_ROW", f"unable to obtain exclusive access to this record or 1 records: {id}")
        self._require_record(sobject, id)
        with self.org.transaction() as tx:
            self.org.delete(tx, sobject, id)
        return Response(status_code=204)

    def _require_record(self, sobject: str, record_id: str) -> None:
        self.org.get_record(sobject, record_id, ["Id"])  # 404 NOT_FOUND like the real URL resource

    # ------------------------------------------------------------------ collections

    def _collections(self, request: Request, body: bytes, lock_fault: str, **_: Any) -> Response:
        method = request.query_params.get("_HttpMethod", request.method).upper()
        if method == "DELETE":
            ids = [i for i in (request.query_params.get("ids") or "").split(",") if i]
            all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
            items: list[dict] = [{"Id": i} for i in ids]
        else:
            payload = self._json(body)
            if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
                return sf_error(400, "JSON_PARSER_ERROR", "The request body must be an object with a 'records' array")
            items = payload["records"]
            all_or_none = bool(payload.get("allOrNone", False))
        if len(items) > MAX_COLLECTION_RECORDS:
            return sf_error(400, "EXCEEDED_ID_LIMIT", f"Maximum number of records allowed is {MAX_COLLECTION_RECORDS}")
        results: list[dict] = []
        failed = False
        try:
            with self.org.transaction() as tx:
                for index, item in enumerate(items):
                    try:
                        if lock_fault and index == (len(items) - 1 if lock_fault == "last" else 0):
                            raise RecordError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records: "
                                              f"{item.get('id') or item.get('Id') or ''}")
                        with self.org.savepoint(tx):
                            results.append(self._collection_item(tx, method, item))
                    except RecordError as exc:
                        failed = True
                        entry: dict[str, Any] = {"success": False, "errors": [exc.as_error()]}
                        rid = item.get("id") or item.get("Id") if isinstance(item, dict) else None
                        if rid and method != "POST":
                            entry = {"id": rid, **entry}
                        results.append(entry)
                if failed and all_or_none:
                    raise _RollBack()
        except _RollBack:
            rolled = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                      "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                      "fields": []}
            results = [r if not r["success"] else {"id": r.get("id"), "success": False, "errors": [rolled]}
                       for r in results]
            if method == "POST":
                for r in results:
                    r.pop("id", None)
        return JSONResponse(results)

    def _collection_item(self, tx, method: str, item: Any) -> dict:
        if not isinstance(item, dict):
            raise RecordError("JSON_PARSER_ERROR", "Each record must be a JSON object")
        if method == "DELETE":
            rid = item["Id"]
            sobject = self._object_for_id(rid)
            return {"id": self.org.delete(tx, sobject, rid), "success": True, "errors": []}
        sobject = (item.get("attributes") or {}).get("type")
        if not sobject:
            raise RecordError("INVALID_TYPE", "sObject type must be specified in the attributes of each record")
        values = {k: v for k, v in item.items() if k != "attributes"}
        if method == "POST":
            if "id" in {k.lower() for k in values}:
                raise RecordError("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
            return {"id": self.org.create(tx, sobject, values), "success": True, "errors": []}
        id_key = next((k for k in values if k.lower() == "id"), None)
        rid = values.pop(id_key) if id_key else None
        return {"id": self.org.update(tx, sobject, rid, values), "success": True, "errors": []}

    def _object_for_id(self, rid: str) -> str:
        for obj in self.org.schema.values():
            if rid.startswith(obj.key_prefix) and not obj.is_event:
                return obj.name
        raise RecordError("MALFORMED_ID", f"malformed id {rid}")

    # ------------------------------------------------------------------ bulk 2.0

    def _bulk(self, request: Request, body: bytes, version: str, job: str | None = None, **_: Any) -> Response:
        if request.method == "POST" and job is None:
            payload = self._json(body)
            if not isinstance(payload, dict):
                return sf_error(400, "INVALIDJOB", "Invalid job definition")
            return JSONResponse(self.bulk.create(payload, version))
        assert job is not None
        if request.url.path.rstrip("/").endswith("/results"):
            max_records = request.query_params.get("maxRecords")
            data, locator, count = self.bulk.results(job, request.query_params.get("locator"),
                                                     int(max_records) if max_records and max_records.isdigit() else None)
            return Response(data, media_type="text/csv", headers={"Sforce-Locator": locator,
                                                                    "Sforce-NumberOfRecords": str(count)})
        method = request.query_params.get("_HttpMethod", request.method).upper()
        if method == "GET":
            return JSONResponse(self.bulk.get(job).info())
        if method == "PATCH":
            payload = self._json(body) or {}
            return JSONResponse(self.bulk.set_state(job, str(payload.get("state"))))
        self.bulk.delete(job)
        return Response(status_code=204)

    # ------------------------------------------------------------------ admin (/__sandbox)

    def _admin_faults(self, request: Request, body: bytes) -> Response:
        if request.method == "POST":
            try:
                rule: FaultRule = self.org.faults.add_from_dict(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(rule.public(), status_code=201)
        if request.method == "DELETE":
            self.org.faults.clear()
        return JSONResponse(self.org.faults.list())

    def _admin_stats(self, request: Request, body: bytes) -> Response:
        if request.method == "DELETE":
            self.org.stats.reset()
        return JSONResponse(stats_view(self.org))

    def _admin_state(self, request: Request, body: bytes) -> Response:
        limit = request.query_params.get("limit", "1000")
        return JSONResponse(self.org.dump(int(limit) if limit.isdigit() else 1000))

    def _admin_config(self, request: Request, body: bytes) -> Response:
        if request.method == "POST":
            try:
                return JSONResponse(self.org.set_config(json.loads(body or b"{}")))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(self.org.config())

    def _admin_backdate(self, request: Request, body: bytes) -> Response:
        """``{"ids": [...], "minutes": 30}`` or ``{"ids": [...], "last_modified": "<ISO datetime>"}``."""
        try:
            spec = json.loads(body or b"{}")
            ids = list(spec["ids"])
            if "last_modified" in spec:
                when = dt.datetime.fromisoformat(str(spec["last_modified"]).replace("Z", "+00:00"))
                when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            else:
                when = now_utc() - dt.timedelta(minutes=float(spec.get("minutes", 60)))
            n = self.org.backdate(spec.get("sobject", "Order"), ids, when)
        except (KeyError, ValueError, TypeError, RecordError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"updated": n, "last_modified": soql_mod.format_datetime(when)})

    def _admin_tokens(self, request: Request, body: bytes) -> Response:
        """DELETE revokes every token (INVALID_SESSION_ID); GET lists every token ever issued (secret scans)."""
        if request.method == "GET":
            return JSONResponse({"issued": self.org.issued_access_tokens()})
        return JSONResponse({"revoked": self.org.revoke_access_token(None)})

    def _admin_events(self, request: Request, body: bytes) -> Response:
        """Decoded events on the bus (for tests and demos): ``?topic=...&after=<replay id>&limit=N``."""
        bus = self.org.eventbus
        topic = request.query_params.get("topic", "/event/OrderProvisionRequested__e")
        after = int(request.query_params.get("after", "0") or 0)
        limit = int(request.query_params.get("limit", "1000") or 1000)
        out = []
        for ev in bus.read_after(topic, after, limit):
            try:
                payload = bus.decode(topic, ev.payload)
            except Exception:  # noqa: BLE001 - undecodable events are shown as such
                payload = None
            out.append({"replay_id": ev.replay_id, "event_id": ev.event_id, "payload": payload})
        return JSONResponse(out)


class _RollBack(Exception):
    pass


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") else ""


def stats_view(org: SalesforceOrg) -> dict:
    """``GET /__sandbox/stats``: logins, REST calls per endpoint, Pub/Sub counters, API usage."""
    snap = org.stats.snapshot()
    rest = {k[5:]: v for k, v in snap.items() if k.startswith("rest.")}
    return {
        "logins": snap.get("logins", 0),
        "token_requests": snap.get("token", 0),
        "rest": rest,
        "rest_total": sum(rest.values()),
        "pubsub": {k[7:]: v for k, v in snap.items() if k.startswith("pubsub.")},
        "api_usage": org.api_usage(),
        "daily_api_limit": org.daily_api_limit,
        "counts": snap,
    }


def create_app(org: SalesforceOrg) -> SalesforceApp:
    """The ASGI app served by ``orderflow_sandbox.server.Sandbox``."""
    return SalesforceApp(org)
