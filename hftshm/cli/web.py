"""CLI: ``hftshm web`` (the page, API and /metrics on their own) and ``hftshm token``."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path

import typer

from hftshm.config import DEFAULT_CONFIG, ConfigError

ConfigOption = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="platform config file")

token_app = typer.Typer(help="JWT tokens for the /api routes, and client secret hashes for web.clients.",
                        invoke_without_command=True, no_args_is_help=False)


def register(app: typer.Typer) -> None:
    app.command("web")(web_command)
    app.add_typer(token_app, name="token")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg="red", err=True)
    raise typer.Exit(code)


def _load(config_path: Path):
    from hftshm.platform import PlatformConfig

    try:
        return PlatformConfig.load(config_path)
    except (ConfigError, ValueError, KeyError) as exc:
        _fail(f"config error: {exc}")


@dataclasses.dataclass
class _WebOnly:
    web: object
    run_dir: Path


def _load_web_only(config_path: Path) -> _WebOnly:
    """Just [platform] run_dir and [web]: a token does not depend on the rest of the config."""
    from hftshm.config import Section, read_toml
    from hftshm.web.config import WebConfig

    try:
        raw = read_toml(config_path)
        web = WebConfig.from_section(Section("web", raw.get("web", {})))
        run_dir = Path((raw.get("platform") or {}).get("run_dir", "run"))
    except (ConfigError, ValueError) as exc:
        _fail(f"config error: {exc}")
    if not run_dir.is_absolute():  # relative to the project directory, as PlatformConfig resolves it
        run_dir = Path(config_path).resolve().parent.parent / run_dir
    return _WebOnly(web, run_dir)


def web_command(
    port: int = typer.Option(None, "--port", "-p", help="port (default: web.port, 9090)"),
    host: str = typer.Option(None, "--host", help="interface (default: web.host, 127.0.0.1)"),
    config: Path = ConfigOption,
    demo: bool = typer.Option(False, "--demo", help="show synthetic live data (real shared memory, no workers) "
                              "to try the dashboard without running the platform"),
) -> None:
    """Serve the dashboard, the REST API and /metrics on their own.

    Follows the platform running under platform.run_dir: attaches when it starts, detaches when
    it stops. With no platform, /metrics exports the last run's values (or zeros for everything
    the config declares), so Prometheus can scrape before the platform starts.
    """
    import logging
    import threading

    from werkzeug.serving import make_server

    from hftshm.security.tokens import WeakSecretError

    cfg = _load_web_only(config) if demo else _load(config)
    web_config = dataclasses.replace(cfg.web, **{k: v for k, v in (("port", port), ("host", host)) if v is not None})
    if demo:
        cfg.web = web_config
    else:
        cfg.sections["web"] = web_config
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access line per poll drowns the rest
    rig = None
    stop = threading.Event()
    try:
        if demo:
            view, app, rig = _demo_app(cfg)
        else:
            from hftshm.metrics.discovery import ManifestView
            from hftshm.units import units_by_id
            from hftshm.web.wiring import create_platform_app

            view = ManifestView(cfg.platform.run_dir, symbol_names={s.symbol_id: s.name for s in cfg.symbols},
                                symbol_units=units_by_id(cfg.symbols))
            app = create_platform_app(cfg, view)
    except WeakSecretError as exc:
        _fail(str(exc))
    try:
        server = make_server(web_config.host, web_config.port, app, threaded=True)
    except OSError as exc:
        _fail(f"cannot listen on {web_config.host}:{web_config.port}: {exc.strerror}; choose another with --port")
    url = f"http://{web_config.host}:{server.server_port}"
    typer.echo(f"dashboard: {url}/dashboard   metrics: {url}/metrics   api: {url}/api   (Ctrl-C to stop)")
    if rig is not None:
        def drive():
            while not stop.wait(0.25):
                rig.step(events=int(2000 + 1500 * abs(((time.time() / 20) % 2) - 1)))

        threading.Thread(target=drive, name="demo-data", daemon=True).start()
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # leave serve_forever through the same clean-up as Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        if rig is not None:
            time.sleep(0.3)
            rig.close()
        elif hasattr(view, "close"):
            view.close()


def _demo_app(cfg):
    from hftshm.metrics.rig import MonitoringRig, STRATEGIES
    from hftshm.security.tokens import resolve_secret
    from hftshm.web.app import create_app
    from hftshm.web.provider import MemoryTradingProvider

    rig = MonitoringRig()
    trading = MemoryTradingProvider(control=rig.control, strategies=[name for name, _ in STRATEGIES])
    rig.attach_trading(trading)
    view = rig.view()
    app = create_app(cfg.web, view, trading=trading, jwt_secret=resolve_secret(cfg.web.jwt_secret, cfg.run_dir))
    return view, app, rig


@token_app.callback()
def token_command(
    ctx: typer.Context,
    role: str = typer.Option(None, "--role", "-r", help="ops, risk, dev or system (any case)"),
    ttl: str = typer.Option("15m", "--ttl", help="lifetime: 90s, 15m, 1h, or plain seconds"),
    subject: str = typer.Option(None, "--subject", help="who the token is for (default: your user name)"),
    config: Path = ConfigOption,
) -> None:
    """Print a signed token: ``hftshm token --role ops --ttl 1h``.

    Use it as ``Authorization: Bearer <token>``. The signing secret is HFTSHM_JWT_SECRET, or
    web.jwt_secret, or the one generated in the run directory at the first start.
    """
    if ctx.invoked_subcommand is not None:
        return
    if role is None:
        _fail("--role is required: hftshm token --role ops|risk|dev|system [--ttl 15m]")
    import getpass

    from hftshm.config import parse_duration_s
    from hftshm.security import tokens
    from hftshm.security.roles import parse_role

    cfg = _load_web_only(config)
    try:
        parsed_role = parse_role(role)
        ttl_s = parse_duration_s(ttl, "--ttl")
    except ValueError as exc:
        _fail(str(exc))
    if ttl_s > cfg.web.max_token_ttl_s:
        _fail(f"--ttl {ttl} is longer than web.max_token_ttl ({cfg.web.max_token_ttl_s:g} s)")
    try:
        secret = tokens.resolve_secret(cfg.web.jwt_secret, cfg.run_dir)
    except tokens.WeakSecretError as exc:
        _fail(str(exc))
    token = tokens.issue(secret, subject=subject or getpass.getuser(), role=parsed_role, ttl_s=ttl_s,
                         issuer=cfg.web.issuer, audience=cfg.web.audience)
    typer.echo(token)


@token_app.command("hash-secret")
def hash_secret_command(
    stdin: bool = typer.Option(False, "--stdin", help="read the secret from standard input instead of a prompt"),
) -> None:
    """Hash a client secret for the config's web.clients.ID.secret_hash (scrypt; the secret is not stored)."""
    from hftshm.security.client_secrets import hash_secret

    if stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = typer.prompt("client secret", hide_input=True, confirmation_prompt=True)
    if len(secret) < 16:
        _fail("use a client secret of at least 16 characters (e.g. python -c 'import secrets; "
              "print(secrets.token_urlsafe(24))')")
    typer.echo(hash_secret(secret))
