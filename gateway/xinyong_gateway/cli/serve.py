"""``xinyong-gateway serve``: run the gateway (HTTP), in one process or as ``--workers N`` sharing one port.

Nothing starts before the port is bound and the database, its master key and the policy are checked
(``web.startup``): a port in use or a missing database is one sentence, with no projector started on it."""

from __future__ import annotations

import argparse
from typing import Any

from xinyong_gateway.cli._common import CliError, Output, add_command, policy_option
from xinyong_gateway.settings import GatewaySettings

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    serve = add_command(commands, "serve", "run the gateway (HTTP)", "xinyong-gateway serve --host 0.0.0.0 --port 8080")
    serve.add_argument("--host", help="interface to listen on (default: $XINYONG_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: $XINYONG_PORT or 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="gateway processes sharing the port (SO_REUSEPORT), each with its own projector unless"
        " --no-projector; a supervisor restarts any that dies (default 1; more than 1 needs PostgreSQL)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="P",
        help="serve Prometheus /metrics on this port, a listener of its own (default: $XINYONG_METRICS_PORT, else off)",
    )
    serve.add_argument(
        "--metrics-host", metavar="H", help="interface of /metrics (default: $XINYONG_METRICS_HOST or 127.0.0.1)"
    )
    serve.add_argument("--log-format", choices=["auto", "json", "console"], help="log renderer (default: auto)")
    serve.add_argument(
        "--no-projector", action="store_true", help="do not project inside this process (run `project` apart)"
    )
    serve.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="do not deliver notifications inside this process (run `dispatch` apart)",
    )
    policy_option(serve)
    serve.set_defaults(handler=_serve, settings_overrides=_overrides)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings that serve's own options override."""
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.metrics_host:
        overrides["metrics_host"] = args.metrics_host
    if args.log_format:
        overrides["log_format"] = args.log_format
    if args.no_projector:
        overrides["projector"] = False
    if args.no_dispatcher:
        overrides["dispatcher"] = False
    return overrides


def _serve(settings: GatewaySettings, args: argparse.Namespace, out: Output) -> int:
    if args.workers < 1:
        raise CliError("--workers must be at least 1.")
    if args.workers > 1 and settings.database_url.startswith("sqlite:"):
        raise CliError(
            "SQLite serves one process only: --workers above 1 needs a PostgreSQL database (--db postgresql://…)."
        )
    if settings.metrics_port is not None and settings.metrics_port == settings.port and settings.port != 0:
        raise CliError("--metrics-port must differ from --port: /metrics is never served on the public port.")
    if args.workers > 1:
        from xinyong_gateway.web.workers import serve_workers

        if settings.port == 0:
            raise CliError("--port 0 (any free port) cannot be shared by several workers; choose a port.")
        return serve_workers(settings, args.workers)

    import asyncio

    import structlog
    from aiohttp import web

    from xinyong_gateway.logs import configure_logging
    from xinyong_gateway.web import create_app, settle_heap
    from xinyong_gateway.web.startup import METRICS_OPTIONS, listen, preflight

    # Checks first, each one sentence, before anything starts: the port (held from here on, so the port checked is
    # the port served), then the database, its key and the policy. Only then the app, its projector and logging.
    sockets = listen(settings.host, settings.port)
    metrics_sockets = None
    try:
        if settings.metrics_port is not None:
            metrics_sockets = listen(settings.metrics_host, settings.metrics_port, METRICS_OPTIONS)
        database = asyncio.run(preflight(settings))  # never a password in the log
        port = sockets[0].getsockname()[1]  # --port 0: the one the system chose
        configure_logging(settings.log_format, settings.log_level)
        log = structlog.get_logger("xinyong_gateway.serve")

        def announce(_: str) -> None:
            log.info("serving", url=f"http://{settings.host}:{port}", database=database)

        web.run_app(
            settle_heap(create_app(settings, metrics_sockets=metrics_sockets)),
            sock=sockets,
            access_log=None,
            print=announce,
            shutdown_timeout=10,
        )
        log.info("stopped")  # Ctrl-C or SIGTERM: requests in flight were answered, the store closed
    finally:
        for sock in [*sockets, *(metrics_sockets or [])]:
            sock.close()
    return 0
