"""The ``ems`` command (DESIGN.md, "Command line").

The whole argument tree is declared here, so ``--help`` works everywhere, but a
side's modules are imported only when its subcommand runs: a Pi with the
``edge`` extra never needs FastAPI or asyncpg. Each handler is named as
``"module:function"``; the function takes the parsed arguments and returns the
exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Final

from telemetry import redaction

# Which extra brings a side's third-party libraries, for the "not installed" error.
_EXTRA_OF_MODULE: Final = {"hub": "hub", "edge": "edge", "simulation": "sim", "drivers": "edge"}


class CommandError(Exception):
    """A one-line error for the user; the command exits non-zero."""


def _units(text: str) -> range:
    try:
        first, _, last = text.partition("-")
        start, stop = int(first), int(last or first)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a range like 1-247, not {text!r}") from err
    if not 1 <= start <= stop <= 247:
        raise argparse.ArgumentTypeError("unit ids are 1 to 247 (Modbus over serial line, 2.3)")
    return range(start, stop + 1)


def _hub_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = sub.add_parser("hub", help="the real-time switchboard (FastAPI)")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")

    serve = hub_sub.add_parser("serve", help="run the hub")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--database",
        default=os.environ.get("EMS_DATABASE_URL"),
        help="postgresql://... (default: $EMS_DATABASE_URL, else SQLite under $EMS_DATA_DIR)",
    )
    viewer = serve.add_mutually_exclusive_group()
    viewer.add_argument(
        "--viewer-token-file",
        metavar="PATH",
        help="require the viewer token in this file on the dashboard door and the API "
        "(default: $EMS_VIEWER_TOKEN; unset: open to anyone who can reach the hub)",
    )
    viewer.add_argument(
        "--viewer-token",
        metavar="TOKEN",
        help="deprecated: visible to every local user in ps; use $EMS_VIEWER_TOKEN or "
        "--viewer-token-file",
    )
    serve.add_argument(
        "--allow-origin",
        metavar="URL",
        action="append",
        default=[],
        help="a browser origin (https://host[:port]) besides the hub's own that may use the "
        "dashboard door and the API; repeatable (also $EMS_ALLOW_ORIGINS, space-separated)",
    )
    _serve_limit_arguments(serve)
    serve.set_defaults(handler="hub.cli:serve")

    token = hub_sub.add_parser("token", help="manage device tokens")
    token.add_argument(
        "--database",
        default=os.environ.get("EMS_DATABASE_URL"),
        help="as for 'ems hub serve'",
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    add = token_sub.add_parser("add", help="create a token; printed once, on the last line")
    add.add_argument("device_id")
    add.set_defaults(handler="hub.cli:token_add")
    listing = token_sub.add_parser("list", help="device ids with their tokens' creation times")
    listing.set_defaults(handler="hub.cli:token_list")
    revoke = token_sub.add_parser("revoke", help="revoke a device's token (closes its socket)")
    revoke.add_argument("device_id")
    revoke.set_defaults(handler="hub.cli:token_revoke")


def _edge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.add_parser("edge", help="the edge agent (Raspberry Pi)")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str, handler: str) -> argparse.ArgumentParser:
        parser = edge_sub.add_parser(name, help=help_text)
        parser.add_argument("--config", required=True, help="the agent's TOML config file")
        parser.set_defaults(handler=handler)
        return parser

    run = with_config("run", "poll, buffer and stream to the hub", "edge.cli:run")
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="plain text, or one JSON object per line (default: $EMS_LOG_FORMAT, else text)",
    )
    probe = with_config("probe", "read one device once and print its values", "edge.cli:probe")
    probe.add_argument("device_name", metavar="DEVICE_NAME")
    scan = with_config("scan", "list the unit ids that answer on a bus", "edge.cli:scan")
    scan.add_argument("bus_name", metavar="BUS_NAME")
    scan.add_argument("--units", type=_units, default=range(1, 248), help="e.g. 1-247")
    with_config("status", "buffer depth, last ack, device health", "edge.cli:status")


def _sim_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("sim", help="serve the simulated site as Modbus devices")
    sim.add_argument("--tcp", default="127.0.0.1:5020", metavar="HOST:PORT")
    sim.add_argument("--rtu-pty", action="store_true", help="also serve RTU on a pseudo-terminal")
    sim.add_argument("--scenario", default="sunny")
    sim.add_argument("--speed", type=float, default=1.0, help="time acceleration factor")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--sites", type=int, default=1, help="several sites on consecutive ports")
    sim.set_defaults(handler="simulation.cli:main")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from err
    if not 0 <= value <= 86_400:
        raise argparse.ArgumentTypeError("expected 0 (off) to 86400 seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from err
    if value < 0:
        raise argparse.ArgumentTypeError("expected 0 (no cap) or more")
    return value


def _serve_limit_arguments(serve: argparse.ArgumentParser) -> None:
    """TLS and connection limits of ``ems hub serve`` (docs/security.md, "Deploying safely")."""
    tls = serve.add_argument_group("TLS (both, or neither: then plain HTTP)")
    tls.add_argument(
        "--tls-cert",
        default=os.environ.get("EMS_TLS_CERT"),
        metavar="FILE",
        help="PEM certificate chain to serve https:// and wss:// (default: $EMS_TLS_CERT)",
    )
    tls.add_argument(
        "--tls-key",
        default=os.environ.get("EMS_TLS_KEY"),
        metavar="FILE",
        help="PEM private key of --tls-cert (default: $EMS_TLS_KEY)",
    )
    limits = serve.add_argument_group("connection limits (0 turns one off)")
    for flag, env, default, kind, text in [
        ("--handshake-timeout", "EMS_HANDSHAKE_TIMEOUT", "5", _seconds,
         "seconds a connection may stay without a complete HTTP request"),
        ("--device-idle-timeout", "EMS_DEVICE_IDLE_TIMEOUT", "300", _seconds,
         "seconds a device socket may stay silent"),
        ("--max-pending", "EMS_MAX_PENDING", "1024", _count,
         "connections not (yet) a WebSocket, in all"),
        ("--max-pending-per-address", "EMS_MAX_PENDING_PER_ADDRESS", "64", _count,
         "connections not (yet) a WebSocket, per client address"),
        ("--max-dashboards", "EMS_MAX_DASHBOARDS", "10000", _count,
         "dashboard sockets, in all"),
        ("--max-dashboards-per-address", "EMS_MAX_DASHBOARDS_PER_ADDRESS", "256", _count,
         "dashboard sockets per client address"),
    ]:  # fmt: skip
        limits.add_argument(
            flag,
            type=kind,
            default=os.environ.get(env, default),
            metavar="N",
            help=f"{text} (default: ${env}, else {default})",
        )
    limits.add_argument(
        "--limit-exempt",
        default=os.environ.get("EMS_LIMIT_EXEMPT", "127.0.0.1,::1"),
        metavar="ADDRS",
        help="comma-separated client addresses not held to the per-address caps, such as "
        "a reverse proxy's (default: $EMS_LIMIT_EXEMPT, else 127.0.0.1,::1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ems",
        description="EMS Switchboard: energy telemetry from Modbus devices to dashboards",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _hub_parser(sub)
    _edge_parser(sub)
    _sim_parser(sub)
    demo = sub.add_parser("demo", help="hub + simulated site + edge agent in one command")
    demo.add_argument("--port", type=int, default=8000, help="the hub's port (default 8000)")
    demo.set_defaults(handler="edge.demo:main")
    return parser


def _load_handler(spec: str) -> object:
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        side = module_name.partition(".")[0]
        if err.name is not None and err.name.partition(".")[0] == side:
            raise CommandError(f"'{module_name}' is not part of this version yet") from err
        extra = _EXTRA_OF_MODULE.get(side, "dev")
        raise CommandError(
            f"this command needs the '{extra}' extra (pip install 'ems-switchboard[{extra}]'): "
            f"{err}"
        ) from err
    return getattr(module, function_name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before the first line: no token, cookie or password in any log line (telemetry/redaction.py).
    redaction.install_redaction()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        handler = _load_handler(args.handler)
        result = handler(args)  # type: ignore[operator]
    except CommandError as err:
        print(f"ems: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
