"""Request authentication for the web app: Bearer JWTs checked against the permission table.

A failure is answered 401 (no token, or a token that does not verify) or 403 (a valid token whose
role lacks the permission), counted in ``hftshm_auth_failures_total{reason}``, and logged with the
reason, path and client address: never the token, which would let anyone with the log replay it.
"""

from __future__ import annotations

import logging
import time

from flask import Request, g, request
from prometheus_client import CollectorRegistry, Counter

from hftshm.security import tokens
from hftshm.security.client_secrets import verify_secret
from hftshm.security.roles import Permission, allows
from hftshm.web.config import WebConfig
from hftshm.web.errors import ApiError

log = logging.getLogger("hftshm.web.auth")

# a scrypt check against this when the client id is unknown keeps both paths equally slow
_DUMMY_HASH = None


class Authenticator:
    def __init__(self, config: WebConfig, secret: str, registry: CollectorRegistry):
        self.config = config
        self._secret = secret
        self.failures = Counter("hftshm_auth_failures", "requests refused by authentication or authorisation",
                                ["reason"], registry=registry)
        self.tokens_issued = Counter("hftshm_auth_tokens_issued", "tokens issued by POST /api/token", ["role"],
                                     registry=registry)

    # -- checks ----------------------------------------------------------------------------------

    def require(self, permission: Permission) -> tokens.Principal:
        """The request's principal if it may ``permission``; raises a 401/403 ``ApiError``."""
        token = self._bearer(request)
        if token is None:
            self._fail("missing_token", 401, "a Bearer token is required (Authorization: Bearer <token>); "
                       "get one with 'hftshm token --role ROLE' or POST /api/token")
        try:
            principal = tokens.verify(token, self._secret, issuer=self.config.issuer, audience=self.config.audience)
        except tokens.TokenError as exc:
            self._fail(exc.reason, 401, str(exc))
        if not allows(principal.role, permission):
            g.refused_principal = principal  # the app audits refused control attempts with who tried
            self._fail("forbidden", 403, f"role {principal.role.value!r} may not {permission.value.replace('_', ' ')}",
                       principal.subject)
        g.principal = principal
        return principal

    def _bearer(self, req: Request) -> str | None:
        header = req.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            self._fail("malformed_header", 401, "the Authorization header must be 'Bearer <token>'")
        return value.strip()

    def _fail(self, reason: str, status: int, message: str, subject: str | None = None):
        self.failures.labels(reason=reason).inc()
        log.warning("auth refused: reason=%s status=%d method=%s path=%s client=%s%s", reason, status,
                    request.method, request.path, request.remote_addr,
                    f" subject={subject}" if subject else "")
        error = "insufficient_scope" if status == 403 else "invalid_token"
        raise ApiError(status, message, reason=reason, headers={"WWW-Authenticate": f'Bearer error="{error}"'})

    # -- client credentials ----------------------------------------------------------------------

    def issue_for_client(self, client_id: str, client_secret: str) -> dict:
        """A token for a configured client whose secret matches; 401 otherwise (same message either way)."""
        client = self.config.clients.get(client_id)
        started = time.perf_counter()
        ok = verify_secret(client_secret, client.secret_hash if client else _dummy_hash())
        if client is None or not ok:
            log.debug("client check took %.1f ms", (time.perf_counter() - started) * 1e3)
            self._fail("bad_client_credentials", 401, "unknown client or wrong secret", client_id[:64] or None)
        ttl = self.config.token_ttl_s
        token = tokens.issue(self._secret, subject=client_id, role=client.role, ttl_s=ttl,
                             issuer=self.config.issuer, audience=self.config.audience)
        self.tokens_issued.labels(role=client.role.value).inc()
        log.info("token issued: client=%s role=%s ttl_s=%d", client_id, client.role.value, ttl)
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl), "role": client.role.value}


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        from hftshm.security.client_secrets import hash_secret

        _DUMMY_HASH = hash_secret("not-a-client-secret")
    return _DUMMY_HASH
