"""The one place where external failures are classified.

Every failure that crosses the boundary to Salesforce or WHMCS is turned into an
:class:`OrderflowError` here, carrying an :class:`ErrorCode` (docs/architecture.md, "Error codes"), whether it is
transient (retry) or permanent (fail now), and a one-line message that is safe to
write to a log, an XCom or a Salesforce error field (no secrets, no HTML, ≤ 255 chars).

Tasks never inspect HTTP statuses or error strings themselves: they catch
``TransientError`` / ``PermanentError`` and decide retry or fail from that.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TypeVar

MAX_MESSAGE_LENGTH = 255  # Order.Activation_Error_Message__c is Text(255)
T = TypeVar("T")


class ErrorCode(StrEnum):
    """The error codes written to ``Order.Activation_Error_Code__c``; ``transient`` says whether a retry may help.

    docs/architecture.md ("Error codes") and the README runbook list them; a unit test keeps
    both tables in step with this enum.
    """

    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    CLIENT_MAPPING_MISSING = "CLIENT_MAPPING_MISSING"
    PRODUCT_MAPPING_MISSING = "PRODUCT_MAPPING_MISSING"
    PAYMENT_METHOD_MISSING = "PAYMENT_METHOD_MISSING"
    WHMCS_CLIENT_NOT_FOUND = "WHMCS_CLIENT_NOT_FOUND"
    WHMCS_ORDER_REJECTED = "WHMCS_ORDER_REJECTED"
    WHMCS_PROVISIONING_FAILED = "WHMCS_PROVISIONING_FAILED"
    DUPLICATE_WHMCS_ORDERS = "DUPLICATE_WHMCS_ORDERS"
    WHMCS_UNAVAILABLE = "WHMCS_UNAVAILABLE"
    SALESFORCE_UNAVAILABLE = "SALESFORCE_UNAVAILABLE"
    # Configuration faults of the integration itself (bad credentials, IP not allow-listed,
    # API role lacks an action, bad SOQL, an incomplete connection). Retrying cannot fix them;
    # ops must fix the connection.
    WHMCS_CONFIGURATION_ERROR = "WHMCS_CONFIGURATION_ERROR"
    SALESFORCE_CONFIGURATION_ERROR = "SALESFORCE_CONFIGURATION_ERROR"
    SALESFORCE_WRITE_FAILED = "SALESFORCE_WRITE_FAILED"
    # WHMCS refused a call other than AddOrder with a message no code above covers.
    WHMCS_REQUEST_REJECTED = "WHMCS_REQUEST_REJECTED"
    # Anything that escaped classification: a bug; the task log has the traceback.
    PROVISIONING_ERROR = "PROVISIONING_ERROR"

    @property
    def transient(self) -> bool:
        return self in _TRANSIENT_CODES


_TRANSIENT_CODES = frozenset(
    {
        ErrorCode.WHMCS_PROVISIONING_FAILED,  # module errors are retried, then become permanent
        ErrorCode.WHMCS_UNAVAILABLE,
        ErrorCode.SALESFORCE_UNAVAILABLE,
    }
)


# --------------------------------------------------------------------------- messages

_TAG_RE = re.compile(r"<[^>]*>")
_WS_RE = re.compile(r"\s+")
_SECRET_PATTERNS = (
    # OAuth access tokens look like 00D...!AQ... ; JWTs are three base64url parts.
    re.compile(r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._\-]+"),
    re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
    re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.S),
    re.compile(r"(?i)\b(secret|password|accesskey|access_token|assertion|token)=([^&\s;]+)"),
    re.compile(r"(?i)\b(Bearer)\s+[A-Za-z0-9._\-!]+"),
)
_registered_secrets: set[str] = set()
_masked_secrets: set[str] = set()  # the ones already handed to Airflow's masker


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`safe_message` scrubs it wherever it turns up.

    Clients call this with their credentials when they are built. When Airflow is loaded, every
    secret registered so far (also those registered before Airflow was imported) goes to
    Airflow's log masker too; see :func:`mask_registered_secrets`.
    """
    if not value or len(value) < 4:
        return
    _registered_secrets.add(value)
    mask_registered_secrets()


def mask_registered_secrets() -> int:
    """Hand the registered secrets not yet masked to Airflow's masker; how many were handed over.

    Importing Airflow only for this would cost seconds in the CLI and the sandbox, so it runs only
    once ``airflow.sdk`` is loaded; the Airflow hooks call it when they build a client, so a secret
    registered before Airflow was imported is masked all the same.
    """
    pending = _registered_secrets - _masked_secrets
    if not pending or "airflow.sdk" not in sys.modules:
        return 0
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - airflow.sdk without its log module
        return 0
    for value in pending:
        mask_secret(value)
    _masked_secrets.update(pending)
    return len(pending)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secrets and secret-shaped substrings with ``***``."""
    for secret in sorted({*_registered_secrets, *(s for s in secrets if s)}, key=len, reverse=True):
        text = text.replace(secret, "***")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: f"{m.group(1)}=***" if "=" in m.group(0) else f"{m.group(1)} ***", text)
        else:
            text = pattern.sub("***", text)
    return text


def safe_message(text: object, limit: int = MAX_MESSAGE_LENGTH, secrets: Iterable[str] = ()) -> str:
    """One line, no HTML, no secrets, at most ``limit`` characters."""
    value = str(text)
    if "<" in value and ">" in value:
        value = _TAG_RE.sub(" ", value)
    value = html.unescape(value)
    value = redact(value, secrets)
    value = _WS_RE.sub(" ", value).strip()
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


# --------------------------------------------------------------------------- exceptions


class OrderflowError(Exception):
    """A classified failure: a code, transient or not, and a safe one-line message."""

    from_transport = False  # True when the request may not have reached the server (timeout, reset)

    def __init__(self, code: ErrorCode, message: str, *, transient: bool | None = None) -> None:
        self.code = ErrorCode(code)
        self.message = safe_message(message)
        self.transient = self.code.transient if transient is None else transient
        super().__init__(f"{self.code.value}: {self.message}")

    def __reduce__(self):  # keep pickling (multiprocessing, XCom) faithful
        return (_rebuild_error, (type(self), self.code.value, self.message, self.transient, self.from_transport))


def _rebuild_error(
    cls: type[OrderflowError], code: str, message: str, transient: bool, from_transport: bool = False
) -> OrderflowError:
    err = cls.__new__(cls)
    OrderflowError.__init__(err, ErrorCode(code), message, transient=transient)
    err.from_transport = from_transport
    return err


class TransientError(OrderflowError):
    """Retry may help: timeouts, 5xx, HTML instead of JSON, lock contention, limits.

    ``from_transport`` marks a failure below HTTP (no answer at all): only those make a read safe
    to resend at once.
    """

    def __init__(self, code: ErrorCode, message: str, *, from_transport: bool = False) -> None:
        super().__init__(code, message, transient=True)
        self.from_transport = from_transport


class PermanentError(OrderflowError):
    """Retry will not help: fail now and tell Salesforce why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(code, message, transient=False)


class SessionExpired(TransientError):
    """Salesforce answered INVALID_SESSION_ID: log in again once, then retry the call."""

    def __init__(self, message: str = "Session expired or invalid") -> None:
        super().__init__(ErrorCode.SALESFORCE_UNAVAILABLE, message)


# --------------------------------------------------------------------------- transport

def classify_transport_error(system: str, exc: BaseException) -> OrderflowError:
    """Timeouts, refused or dropped connections, TLS trouble.

    Certificate verification failures are configuration errors (a retry won't fix a wrong
    CA bundle); everything else at the transport level is transient.
    """
    text = f"{type(exc).__name__}: {exc}"
    is_tls = "CERTIFICATE_VERIFY_FAILED" in text or "SSLCertVerificationError" in text
    if system == "whmcs":
        if is_tls:
            return PermanentError(ErrorCode.WHMCS_CONFIGURATION_ERROR, f"TLS verification failed: {text}")
        return TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"WHMCS unreachable: {text}", from_transport=True)
    if is_tls:
        return PermanentError(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, f"TLS verification failed: {text}")
    return TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, f"Salesforce unreachable: {text}", from_transport=True)


# --------------------------------------------------------------------------- WHMCS

_WHMCS_CLIENT_NOT_FOUND = re.compile(r"client id not found|invalid client id|client not found", re.I)
_WHMCS_CONFIG = re.compile(
    r"^invalid ip|authentication failed|invalid permissions|command not found|invalid access key", re.I
)
_WHMCS_ORDER_NOT_PENDING = re.compile(r"order id not found or status not pending", re.I)
# ModuleCreate answers that describe a bad request, not a module failure: retrying can't help.
_WHMCS_MODULE_BAD_REQUEST = re.compile(
    r"service id is required|service id not found|not assigned to a module", re.I
)


def classify_whmcs_response(action: str, status: int, body: str, content_type: str = "") -> dict | OrderflowError:
    """Parse a WHMCS ``api.php`` answer body-first and classify it.

    Returns the decoded JSON dict on ``result=success``; otherwise an error to raise.
    The body is read before the status: a 403 ``Invalid IP`` is a configuration error, not
    a transient one, and a 200 carrying an HTML maintenance page is transient.
    """
    import json

    text = body.strip()
    data: dict | None = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    if data is None:
        if status >= 500 or status == 200 or "html" in content_type.lower() or text.startswith("<"):
            return TransientError(
                ErrorCode.WHMCS_UNAVAILABLE,
                f"WHMCS {action}: HTTP {status}, expected JSON but got {content_type or 'non-JSON'}: "
                f"{safe_message(text, limit=120)}",
            )
        return TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"WHMCS {action}: HTTP {status}: {safe_message(text, limit=160)}")

    result = str(data.get("result", data.get("status", ""))).lower()
    if result == "success" and status < 400:
        return data
    message = str(data.get("message") or data.get("error") or f"HTTP {status}")
    if _WHMCS_CONFIG.search(message):
        return PermanentError(ErrorCode.WHMCS_CONFIGURATION_ERROR, f"WHMCS {action}: {message}")
    if result != "error" and status < 400:
        # WHMCS answers "success" or "error"; anything else (a proxy's JSON, an API change) says nothing about
        # whether the call took effect, so it is not a refusal: retry (a retried AddOrder finds its order first).
        return TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"WHMCS {action}: unexpected result {result[:40]!r} "
                                                           f"(HTTP {status}): {safe_message(message, limit=120)}")
    if status >= 500:
        return TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"WHMCS {action}: HTTP {status}: {message}")
    if _WHMCS_CLIENT_NOT_FOUND.search(message):
        return PermanentError(ErrorCode.WHMCS_CLIENT_NOT_FOUND, f"WHMCS {action}: {message}")
    if action.lower() == "addorder":
        return PermanentError(ErrorCode.WHMCS_ORDER_REJECTED, f"WHMCS AddOrder rejected: {message}")
    if action.lower() in {"acceptorder", "modulecreate"}:
        if _WHMCS_ORDER_NOT_PENDING.search(message):
            return WhmcsOrderNotPending(f"WHMCS {action}: {message}")
        if _WHMCS_MODULE_BAD_REQUEST.search(message):
            return WhmcsActionError(f"WHMCS {action}: {message}")
        return TransientError(ErrorCode.WHMCS_PROVISIONING_FAILED, f"WHMCS {action}: {message}")
    return WhmcsActionError(f"WHMCS {action}: {message}")


def classify_whmcs_page(action: str, data: dict, to_page: Callable[[dict], T]) -> T | OrderflowError:
    """A paged read's ``result=success`` answer as a page of typed rows, or a transient error.

    Rows that are not rows of scalars say nothing reliable about the data, and an extraction must
    not go on without them: retry later, as for any other answer WHMCS should not give.
    """
    try:
        return to_page(data)
    except ValueError as exc:  # msgspec.ValidationError
        return TransientError(ErrorCode.WHMCS_UNAVAILABLE, f"WHMCS {action}: unexpected rows in a success answer: "
                                                           f"{safe_message(exc, limit=120)}")


class WhmcsActionError(PermanentError):
    """WHMCS rejected a call other than AddOrder with a message no specific code covers."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.WHMCS_REQUEST_REJECTED, message)


class WhmcsOrderNotPending(PermanentError):
    """``AcceptOrder`` on an order that is not Pending: on a retry it means already accepted.

    The caller verifies the order's status and continues; if the order really is missing
    or cancelled this stays a permanent provisioning failure.
    """

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.WHMCS_PROVISIONING_FAILED, message)


# --------------------------------------------------------------------------- Salesforce

_SF_TRANSIENT_CODES = frozenset(
    {"REQUEST_LIMIT_EXCEEDED", "UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "API_CURRENTLY_DISABLED"}
)
_SF_CONFIG_CODES = frozenset(
    {
        "MALFORMED_QUERY",
        "INVALID_FIELD",
        "INVALID_TYPE",
        "INVALID_AUTH_HEADER",
        "API_DISABLED_FOR_ORG",
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INVALID_CROSS_REFERENCE_KEY",
        "JSON_PARSER_ERROR",
        "invalid_grant",
        "invalid_client_id",
        "invalid_client",
    }
)


def salesforce_error_code(body: object) -> tuple[str, str]:
    """Extract ``(errorCode, message)`` from any Salesforce error body shape."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return str(first.get("errorCode") or first.get("statusCode") or ""), str(first.get("message", ""))
    if isinstance(body, dict):
        if "error" in body:  # OAuth: {"error": "invalid_grant", "error_description": "..."}
            return str(body.get("error")), str(body.get("error_description", ""))
        return str(body.get("errorCode") or body.get("statusCode") or ""), str(body.get("message", ""))
    return "", str(body)[:200]


def classify_salesforce_response(status: int, body: object, what: str = "request") -> OrderflowError:
    """Classify a failed Salesforce REST/OAuth answer (status ≥ 300)."""
    code, message = salesforce_error_code(body)
    text = f"Salesforce {what}: {code or 'HTTP ' + str(status)}: {message}".rstrip(": ")
    if code == "INVALID_SESSION_ID" or status == 401:
        return SessionExpired(text)
    if code in _SF_TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, text)
    if code == "NOT_FOUND" or status == 404:
        return PermanentError(ErrorCode.ORDER_NOT_FOUND, text)
    if code in _SF_CONFIG_CODES:
        return PermanentError(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, text)
    return PermanentError(ErrorCode.SALESFORCE_WRITE_FAILED, text)


def classify_salesforce_bulk_job(message: str, what: str = "Bulk 2.0 query") -> OrderflowError:
    """A Bulk 2.0 job that ended ``Failed`` or ``Aborted``, or still ran when the wait for it ran out.

    A query Salesforce cannot run is refused when the job is created (a REST answer, classified by
    :func:`classify_salesforce_response`). A job that fails later is judged by the error codes its
    ``errorMessage`` names, as a REST answer with that code would be: a configuration code (bad SOQL, a
    field or object the integration user cannot see) is permanent; anything else (an aborted job, a
    server-side failure or timeout, the wait limit) is transient, since the same query may well run
    next time.
    """
    text = f"Salesforce {what}: {message}"
    if set(_CODE_WORD_RE.findall(message)) & _SF_CONFIG_CODES:
        return PermanentError(ErrorCode.SALESFORCE_CONFIGURATION_ERROR, text)
    return TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, text)


_CODE_WORD_RE = re.compile(r"[A-Za-z_]+")


def classify_salesforce_record_error(error: dict) -> OrderflowError:
    """Classify one per-record error of a collection call (``statusCode`` shape)."""
    code = str(error.get("statusCode") or error.get("errorCode") or "")
    text = f"Salesforce record error: {code}: {error.get('message', '')}"
    if code in _SF_TRANSIENT_CODES or code == "ALL_OR_NONE_OPERATION_ROLLED_BACK":
        return TransientError(ErrorCode.SALESFORCE_UNAVAILABLE, text)
    if code in {"ENTITY_IS_DELETED", "INVALID_ID_FIELD", "NOT_FOUND"}:
        return PermanentError(ErrorCode.ORDER_NOT_FOUND, text)
    return PermanentError(ErrorCode.SALESFORCE_WRITE_FAILED, text)
