"""The WHMCS emulator's ASGI app: ``POST /includes/api.php`` plus admin routes under ``/__sandbox``.

``api.php`` is served by a raw ASGI handler rather than a framework route, because two faults need
control below HTTP: ``drop`` closes the TCP/TLS connection without any response, and
``commit_then_drop`` commits the action first and then does the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape as xml_escape

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderflow_sandbox.faults import CallStats, FaultRegistry
from orderflow_sandbox.whmcs.actions import ACTIONS, MODULE_ACTIONS, READ_ONLY, ActionError, Context
from orderflow_sandbox.whmcs.state import ALL_ACTIONS, WhmcsState

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_PATH = "/includes/api.php"
ADMIN_PREFIX = "/__sandbox"
TRANSPORT_FAULTS = frozenset({"latency", "http_500", "http_502", "http_503", "html_200", "drop"})
# commit_then_latency: the action commits, then the answer waits latency_ms (a task killed in that window).
FAULT_KINDS = TRANSPORT_FAULTS | {"commit_then_drop", "commit_then_latency", "module_error"}
CANONICAL = {name.lower(): name for name in ALL_ACTIONS}
MAX_BODY = 8 * 1024 * 1024

_ERROR_PAGES = {
    500: ("500 Internal Server Error", "<h1>Oops! Something went wrong.</h1><p>A fatal error occurred.</p>"),
    502: ("502 Bad Gateway", "<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"),
    503: ("503 Service Unavailable", "<h1>Service Unavailable</h1><p>The server is temporarily busy.</p>"),
    200: ("Down for Maintenance", "<h1>Down for Maintenance</h1><p>An upgrade is in progress. Check back soon.</p>"),
}


# ---------------------------------------------------------------------- request decoding

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])+)$")
_PART_RE = re.compile(r"\[([^\[\]]*)\]")


def parse_php_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Decode ``a=1&pid[0]=5&pid[]=6&x[y][z]=1`` the way PHP fills ``$_POST``: nested dicts in order."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY_RE.match(key)
        if match is None:
            out[key] = value
            continue
        node, name = out, match.group(1)
        for part in _PART_RE.findall(match.group(2)):
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child
            if part == "":
                part = str(max((int(k) + 1 for k in node if k.lstrip("-").isdigit()), default=0))
            name = part
        node[name] = value
    return out


# ---------------------------------------------------------------------- response encoding

_NON_ASCII_RE = re.compile(r"[^\x00-\x7e]")  # and DEL, escaped as json.dumps(ensure_ascii=True) does
_YEN = "\u00a5".encode()


def _u_escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code > 0xFFFF:  # a surrogate pair, as PHP and json.dumps write it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def php_json(data: object) -> bytes:
    """JSON the way WHMCS's PHP writes it: compact, ``\\u0022`` for quotes in strings, ``\\/`` for slashes,
    non-ASCII as ``\\uXXXX``; ASCII bytes.

    msgspec (an Airflow dependency) encodes a page ~5x faster than ``json``, and the list views'
    structs directly; ``json`` is the fallback (lone surrogates). Then plain replacements on bytes (a
    page of 1,000 orders is ~1 MB): escaped backslashes are parked on NUL first (the encoder escapes a
    real NUL, so none is in its output), ``\\"`` and ``/`` are rewritten and the backslashes put back;
    non-ASCII is escaped last (its escapes hold neither quotes nor slashes).
    """
    try:
        raw = msgspec.json.encode(data)
    except (TypeError, UnicodeError, msgspec.EncodeError):
        raw = json.dumps(msgspec.to_builtins(data), ensure_ascii=True, separators=(",", ":")).encode()
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"\0").replace(b'\\"', b"\\u0022").replace(b"/", b"\\/")
        raw = raw.replace(b"\0", b"\\\\")
    else:
        raw = raw.replace(b"/", b"\\/")
    if raw.isascii() and b"\x7f" not in raw:
        return raw
    raw = raw.replace(_YEN, b"\\u00a5")  # every GetOrders line item has one: the cheap way first
    if raw.isascii() and b"\x7f" not in raw:
        return raw
    return _NON_ASCII_RE.sub(_u_escape, raw.decode()).encode()


def _flatten(prefix: str, value: object) -> list[tuple[str, str]]:
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _flatten(f"{prefix}[{k}]" if prefix else str(k), v)]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in _flatten(f"{prefix}[{i}]", v)]
    if isinstance(value, bool):
        value = int(value)
    return [(prefix, "" if value is None else str(value))]


def nvp(data: dict) -> bytes:
    """The legacy ``result=success;key=value;`` text answer (``responsetype`` omitted)."""
    return "".join(f"{k}={v};" for k, v in _flatten("", data)).encode()


def _xml_node(name: str, value: object) -> str:
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    if isinstance(value, dict):
        return f"<{name}>{''.join(_xml_node(k, v) for k, v in value.items())}</{name}>"
    if isinstance(value, list):
        return "".join(_xml_node(name, v) for v in value)
    if isinstance(value, bool):
        value = int(value)
    return f"<{name}>{xml_escape('' if value is None else str(value))}</{name}>"


def xml(data: dict) -> bytes:
    inner = "".join(_xml_node(k, v) for k, v in data.items())
    return f'<?xml version="1.0" encoding="utf-8"?>\n<whmcsapi version="8.13.1">{inner}</whmcsapi>'.encode()


def encode(responsetype: str, data: dict) -> tuple[bytes, str]:
    kind = responsetype.lower()
    if kind == "json":
        return php_json(data), "application/json; charset=utf-8"
    if kind == "xml":
        return xml(data), "text/xml; charset=utf-8"
    return nvp(data), "text/plain; charset=utf-8"


def html_page(status: int) -> bytes:
    title, body = _ERROR_PAGES.get(status, _ERROR_PAGES[500])
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{body}</body></html>".encode()


# ---------------------------------------------------------------------- the app


class WhmcsApp:
    """ASGI app over one :class:`WhmcsState`; ``faults`` and ``stats`` are live and scriptable."""

    def __init__(self, state: WhmcsState) -> None:
        self.state = state
        self.faults = FaultRegistry()
        self.stats = CallStats()
        self.admin = Starlette(
            routes=[
                Route(f"{ADMIN_PREFIX}/faults", self._faults, methods=["GET", "POST", "DELETE"]),
                Route(f"{ADMIN_PREFIX}/stats", self._stats, methods=["GET", "DELETE"]),
                Route(f"{ADMIN_PREFIX}/state", self._state, methods=["GET"]),
                Route(f"{ADMIN_PREFIX}/config", self._config, methods=["GET", "PUT", "POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == API_PATH:
            await self._api(scope, receive, send)
        else:
            await self.admin(scope, receive, send)

    # ------------------------------------------------------------------ api.php

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("POST", "GET"):
            await _respond(send, 405, b"Method Not Allowed", "text/plain")
            return
        body = await _read_body(receive)
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1").lower()
        if not content_type or "x-www-form-urlencoded" in content_type:
            pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        params = parse_php_form(pairs)
        raw_action = params.get("action") if isinstance(params.get("action"), str) else ""
        action = CANONICAL.get(raw_action.lower(), raw_action)
        responsetype = params.get("responsetype") if isinstance(params.get("responsetype"), str) else ""
        self.stats.hit(action or "(no action)")

        fired = self.faults.take(action, set(TRANSPORT_FAULTS))
        delay = sum(rule.latency_ms for rule in fired if rule.kind == "latency")
        if delay:
            await asyncio.sleep(delay / 1000)
        kinds = {rule.kind for rule in fired}
        if "drop" in kinds:
            log.info("fault: dropping the connection for %s", action)
            await _drop(receive, send)
            return
        for kind, status in (("http_500", 500), ("http_502", 502), ("http_503", 503), ("html_200", 200)):
            if kind in kinds:
                await _respond(send, status, html_page(status), "text/html; charset=UTF-8")
                return
        commit_then_drop = bool(self.faults.take(action, {"commit_then_drop"}))

        client_ip = (scope.get("client") or ("", 0))[0]
        # The action and its encoding run in a worker thread: the event loop keeps serving TLS for
        # other requests (a reconciliation fetches several pages at once) while SQLite works.
        status, payload, media_type = await asyncio.to_thread(self._handle_encoded, action, params, client_ip,
                                                              responsetype)
        hold = sum(rule.latency_ms for rule in self.faults.take(action, {"commit_then_latency"}))
        if hold:
            log.info("fault: %s applied, holding the response %d ms", action, hold)
            await asyncio.sleep(hold / 1000)
        if commit_then_drop:
            log.info("fault: %s applied, dropping the response", action)
            await _drop(receive, send)
            return
        await _respond(send, status, payload, media_type)

    def _handle_encoded(self, action: str, params: dict[str, Any], client_ip: str,
                        responsetype: str) -> tuple[int, bytes, str]:
        status, data = self._handle(action, params, client_ip)
        payload, media_type = encode(responsetype, data)
        return status, payload, media_type

    def _handle(self, action: str, params: dict[str, Any], client_ip: str) -> tuple[int, dict]:
        """Auth in WHMCS's order, then the action; returns (HTTP status, body)."""
        state = self.state
        accesskey = params.get("accesskey")
        if client_ip not in state.allowed_ips() and not (
            isinstance(accesskey, str) and accesskey and accesskey == state.access_key()
        ):
            return 403, {"result": "error", "message": f"Invalid IP {client_ip}"}
        identifier = params.get("identifier") or params.get("username") or ""
        secret = params.get("secret") or params.get("password") or ""
        permissions = state.authenticate(
            identifier if isinstance(identifier, str) else "", secret if isinstance(secret, str) else ""
        )
        if permissions is None:
            return 403, {"result": "error", "message": "Authentication Failed"}
        key = action.lower()
        if "*" not in permissions and key not in permissions:
            return 403, {"result": "error", "message": f'Invalid Permissions: API action "{key}" is not allowed'}
        handler = ACTIONS.get(key)
        if handler is None:
            return 200, {"result": "error", "message": "Command Not Found"}

        module_fault = key in MODULE_ACTIONS and bool(self.faults.take(action, {"module_error"}))
        empty_as_string = state.empty_lists_as_string()
        try:
            if key in READ_ONLY:
                with state.read() as db:
                    body = handler(Context(state, db, client_ip, empty_as_string, module_fault), params)
            else:
                with state.transaction() as db:
                    try:
                        body = handler(Context(state, db, client_ip, empty_as_string, module_fault), params)
                    except ActionError as exc:
                        if not exc.keep_changes:
                            raise
                        error = exc
                    else:
                        error = None
                if error is not None:
                    raise error
        except ActionError as exc:
            return exc.status, {"result": "error", "message": exc.message}
        return 200, {"result": "success", **body}

    # ------------------------------------------------------------------ admin

    async def _faults(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(self.faults.list())
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse([])
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("a fault is a JSON object")
            if spec.get("kind") not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {spec.get('kind')!r}; known: {', '.join(sorted(FAULT_KINDS))}")
            rule = self.faults.add_from_dict(spec)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(rule.public(), status_code=201)

    async def _stats(self, request: Request) -> JSONResponse:
        if request.method == "DELETE":
            self.stats.reset()
        return JSONResponse(self.stats.snapshot())

    async def _state(self, request: Request) -> JSONResponse:
        return JSONResponse(self.state.dump())

    async def _config(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse(self.state.settings())
        try:
            values = await request.json()
            if not isinstance(values, dict):
                raise ValueError("settings are a JSON object")
            return JSONResponse(self.state.update_settings(values))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)


def create_app(state: WhmcsState) -> WhmcsApp:
    """The ASGI app ``Sandbox`` serves for WHMCS."""
    return WhmcsApp(state)


# ---------------------------------------------------------------------- ASGI helpers


async def _read_body(receive: Receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            break
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, media_type: str) -> None:
    headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(receive: Receive, send: Send) -> None:
    """Close the connection without a response, like a crashed PHP worker or a reset proxy.

    uvicorn passes ``receive`` as a bound method of its request cycle, which holds the
    transport; closing it gives the client a clean "connection closed without response".
    Elsewhere, fall back to starting a response and never finishing it (the server then
    closes the connection mid-response).
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None and hasattr(cycle, "disconnected"):
        transport.close()
        for _ in range(200):  # let connection_lost() mark the cycle disconnected (no 500 is sent)
            if cycle.disconnected:
                return
            await asyncio.sleep(0.005)
        cycle.disconnected = True
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
