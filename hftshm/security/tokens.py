"""JWT issue and verification (HS256) and where the signing secret comes from.

Verification pins the algorithm (a token saying ``alg: none`` or RS256 is refused before its
signature is looked at), requires ``exp``, ``iat``, ``sub`` and ``role``, and checks issuer and
audience, so a token minted for another deployment or service does not work here.

The signing secret, in order: ``HFTSHM_JWT_SECRET``, ``[web] jwt_secret``, else a random secret
generated once into ``<run_dir>/jwt_secret`` (mode 0600) and reused by ``hftshm token``. A short
or well-known secret is refused at start: an HS256 secret someone can guess signs any token.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from hftshm.security.roles import Role, parse_role

ALGORITHM = "HS256"
ENV_SECRET = "HFTSHM_JWT_SECRET"
SECRET_FILE = "jwt_secret"
MIN_SECRET_BYTES = 32
# secrets seen in tutorials and default configs; a longer one made of them is still refused
_PLACEHOLDERS = {
    "changeme", "change-me", "change_me", "secret", "your-secret-key", "your_secret_key", "yoursecretkey",
    "secret-key", "secret_key", "secretkey", "mysecret", "my-secret", "supersecret", "super-secret",
    "password", "jwt-secret", "jwt_secret", "jwtsecret", "default", "test", "hftshm", "key", "token",
    "please-change-me", "replace-me", "xxx", "1234567890",
}
_HOW_TO_SET = (
    f"set {ENV_SECRET} to a random value of at least {MIN_SECRET_BYTES} bytes "
    "(e.g. export HFTSHM_JWT_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')), "
    "or remove web.jwt_secret from the config to have one generated into the run directory"
)


class WeakSecretError(ValueError):
    """The configured signing secret is empty, a placeholder or too short."""


class TokenError(Exception):
    """A token failed verification; ``reason`` is a short code safe to log and count."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    role: Role
    token_id: str
    expires_unix_s: int


def check_secret_strength(secret: str, source: str) -> None:
    if not secret or not secret.strip():
        raise WeakSecretError(f"the JWT signing secret from {source} is empty; {_HOW_TO_SET}")
    lowered = secret.strip().lower()
    if lowered in _PLACEHOLDERS or any(lowered == p * k for p in _PLACEHOLDERS for k in range(2, 8)):
        raise WeakSecretError(f"the JWT signing secret from {source} is a well-known placeholder; {_HOW_TO_SET}")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise WeakSecretError(
            f"the JWT signing secret from {source} is {len(secret.encode())} bytes; at least {MIN_SECRET_BYTES} "
            f"are needed; {_HOW_TO_SET}")
    if len(set(secret)) < 8:
        raise WeakSecretError(f"the JWT signing secret from {source} repeats too few characters; {_HOW_TO_SET}")


def resolve_secret(config_secret: str, run_dir: str | os.PathLike, *, create: bool = True,
                   environ: dict | None = None) -> str:
    """The signing secret, checked for strength; generates the secret file when allowed."""
    environ = os.environ if environ is None else environ
    if ENV_SECRET in environ:
        secret, source = environ[ENV_SECRET], f"the environment ({ENV_SECRET})"
    elif config_secret:
        secret, source = config_secret, "config (web.jwt_secret)"
    else:
        path = Path(run_dir) / SECRET_FILE
        secret, source = _secret_file(path, create), str(path)
    check_secret_strength(secret, source)
    return secret


def _secret_file(path: Path, create: bool) -> str:
    try:
        return _read_private(path)
    except FileNotFoundError:
        if not create:
            raise WeakSecretError(
                f"no JWT signing secret: {ENV_SECRET} is unset, web.jwt_secret is empty and {path} does not exist; "
                f"start 'hftshm web' or 'hftshm run' once to generate it, or {_HOW_TO_SET}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        # O_EXCL: two processes starting at once agree on the first one's secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_private(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _read_private(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise WeakSecretError(f"{path} is readable by others (mode {mode:o}); run 'chmod 600 {path}'")
    return path.read_text().strip()


def issue(secret: str, *, subject: str, role: Role | str, ttl_s: float, issuer: str, audience: str,
          now: float | None = None) -> str:
    """A signed token for ``subject`` with ``role``, valid ``ttl_s`` seconds."""
    role = parse_role(role) if not isinstance(role, Role) else role
    if not ttl_s > 0:
        raise ValueError(f"token ttl must be positive, found {ttl_s!r}")
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": subject,
        "role": role.value,
        "iss": issuer,
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + max(1, int(round(ttl_s))),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(token: str, secret: str, *, issuer: str, audience: str, leeway_s: float = 5.0) -> Principal:
    """The principal of a valid token; ``TokenError`` with a short reason otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("malformed", "the token is not a JWT") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("bad_algorithm", f"tokens must be signed with {ALGORITHM}")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=leeway_s,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("expired", "the token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenError("bad_signature", "the token signature does not verify") from None
    except jwt.InvalidAudienceError:
        raise TokenError("bad_audience", "the token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise TokenError("bad_issuer", "the token is from another issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("missing_claim", f"the token lacks the {exc.claim!r} claim") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("not_yet_valid", "the token is not valid yet") from None
    except jwt.PyJWTError:
        raise TokenError("invalid", "the token is invalid") from None
    try:
        role = parse_role(claims.get("role", ""))
    except ValueError:
        raise TokenError("bad_role", "the token's role is not a known role") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenError("missing_claim", "the token lacks a subject")
    return Principal(subject=claims["sub"], role=role, token_id=str(claims.get("jti", "")),
                     expires_unix_s=int(claims["exp"]))
