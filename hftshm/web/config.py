"""``[web]``: the HTTP server, who may see what without a token, and the API's token settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from hftshm.config import ConfigError, Section, parse_duration_s
from hftshm.security.client_secrets import check_hash_format
from hftshm.security.roles import Role, parse_role


@dataclass(frozen=True)
class WebClient:
    """A client allowed to get tokens with ``POST /api/token`` (client credentials)."""

    client_id: str
    secret_hash: str
    role: Role


@dataclass(frozen=True)
class WebConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9090
    require_token_for_dashboard: bool = False  # the page and the read-only JSON it polls
    metrics_open: bool = True  # GET /metrics without a token (Prometheus scrapes)
    healthz_open: bool = True
    issuer: str = "hftshm"
    audience: str = "hftshm-api"
    token_ttl_s: float = 900.0  # tokens issued by POST /api/token
    max_token_ttl_s: float = 86400.0  # longest a token may live (hftshm token --ttl)
    jwt_secret: str = ""  # prefer HFTSHM_JWT_SECRET; empty: generated into <run_dir>/jwt_secret
    refresh_s: float = 1.0  # dashboard poll interval
    clients: dict[str, WebClient] = field(default_factory=dict)
    rate_limit_per_s: int = 100  # /api requests per second per token subject (per address without a token)
    login_failures: int = 5  # failed client-credential logins per client id / address before back-off
    login_window_s: int = 60  # ... within this many seconds; then POST /api/token answers 429

    @classmethod
    def from_section(cls, section: Section) -> "WebConfig":
        host = section.string("host", "127.0.0.1")
        if not host:
            raise ConfigError("web.host must not be empty "
                              "(127.0.0.1 serves this machine only, 0.0.0.0 every interface)")
        ttl = _duration(section, "token_ttl", "15m")
        max_ttl = _duration(section, "max_token_ttl", "24h")
        if ttl > max_ttl:
            raise ConfigError(f"web.token_ttl ({ttl:g}s) must not exceed web.max_token_ttl ({max_ttl:g}s)")
        clients = {}
        for client_id, body in section.table("clients", {}).items():
            sub = section.sub("clients").sub(client_id)
            secret_hash = sub.string("secret_hash")
            try:
                check_hash_format(secret_hash)
            except ValueError as exc:
                raise ConfigError(f"web.clients.{client_id}.secret_hash: {exc}") from None
            try:
                role = parse_role(sub.string("role"))
            except ValueError as exc:
                raise ConfigError(f"web.clients.{client_id}.role: {exc}") from None
            sub.done()
            clients[client_id] = WebClient(client_id, secret_hash, role)
        config = cls(
            enabled=section.boolean("enabled", True),
            host=host,
            port=section.integer("port", 9090, min=0, max=65535),
            require_token_for_dashboard=section.boolean("require_token_for_dashboard", False),
            metrics_open=section.boolean("metrics_open", True),
            healthz_open=section.boolean("healthz_open", True),
            issuer=section.string("issuer", "hftshm"),
            audience=section.string("audience", "hftshm-api"),
            token_ttl_s=ttl,
            max_token_ttl_s=max_ttl,
            jwt_secret=section.string("jwt_secret", ""),
            refresh_s=float(section.number("refresh_s", 1.0, min=0.1, max=60)),
            clients=clients,
            rate_limit_per_s=int(section.integer("rate_limit_per_s", 100, min=1, max=1_000_000)),
            login_failures=int(section.integer("login_failures", 5, min=1, max=1000)),
            login_window_s=int(section.integer("login_window_s", 60, min=1, max=86400)),
        )
        section.done()
        if not config.issuer or not config.audience:
            raise ConfigError("web.issuer and web.audience must not be empty")
        return config


def _duration(section: Section, key: str, default: str) -> float:
    raw = section._get(key, default)
    try:
        return parse_duration_s(raw, f"web.{key}")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
