"""OAuth 2.0 JWT bearer token endpoint of the sandbox org.

The assertion must be RS256-signed with the connected app's key (checked against its certificate),
``iss`` = consumer key, ``sub`` = the integration username, ``aud`` = a login host of the org and
``exp`` within the next few minutes. Answers use Salesforce's success and ``invalid_grant`` bodies.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import jwt
from cryptography import x509

if TYPE_CHECKING:
    from orderflow_sandbox.salesforce.org import SalesforceOrg

log = logging.getLogger(__name__)

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_EXP_AHEAD_SECONDS = 300  # Salesforce wants exp within 3 minutes; allow clock skew
ALLOWED_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


class TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.body = {"error": error, "error_description": description}
        self.status = status


def _public_key(org: SalesforceOrg):
    cert = x509.load_pem_x509_certificate(org.certificate_path.read_bytes())
    return cert.public_key()


def exchange_jwt(org: SalesforceOrg, form: dict[str, str]) -> dict:
    """Validate a JWT bearer assertion and return the token response body; raises TokenError."""
    if form.get("grant_type") != JWT_GRANT:
        raise TokenError("unsupported_grant_type", "grant type not supported")
    assertion = form.get("assertion") or ""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise TokenError("invalid_grant", "invalid assertion") from None
    if header.get("alg") != "RS256":
        raise TokenError("invalid_grant", "invalid assertion")
    try:
        claims = jwt.decode(
            assertion,
            _public_key(org),
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_aud": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise TokenError("invalid_grant", "invalid assertion") from None
    if claims.get("iss") != org.consumer_key:
        raise TokenError("invalid_client_id", "client identifier invalid")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    allowed = {*ALLOWED_AUDIENCES, org.instance_url.rstrip("/")}
    if not any(isinstance(a, str) and a.rstrip("/") in allowed for a in audiences):
        raise TokenError("invalid_grant", "audience is invalid")
    try:
        exp = float(str(claims.get("exp")))
    except ValueError:
        raise TokenError("invalid_grant", "invalid assertion") from None
    now = time.time()
    if exp < now:
        raise TokenError("invalid_grant", "expired authorization code")
    if exp > now + MAX_EXP_AHEAD_SECONDS:
        raise TokenError("invalid_grant", "invalid assertion")
    subject = claims.get("prn") or claims.get("sub")
    if subject != org.username:
        raise TokenError("invalid_grant", "user hasn't approved this consumer")
    token = org.issue_access_token()
    org.stats.hit("logins")
    issued = int(now * 1000)
    return {
        "access_token": token,
        "scope": "web api",
        "instance_url": org.instance_url,
        "id": f"{org.instance_url}/id/{org.org_id}/{org.user_id}",
        "token_type": "Bearer",
        "issued_at": str(issued),
    }
