"""The ``ems`` command (README, "Commands").

The whole argument tree is declared here, so ``--help`` works everywhere, but a
side's modules are imported only when its subcommand runs: a Pi with the
``edge`` extra never needs FastAPI or asyncpg. Each subcommand's handler is a
typed function below that imports its side inside :func:`_extra` (so a missing
extra is one line naming it) and returns the exit code.

Building the parser reads no environment: defaults that come from the
environment (``EMS_DATABASE_URL``, ``EMS_DATA_DIR``, ...) are resolved once, by
the side's own settings (hub/runtime.py ``HubSettings.resolve``), after parsing.

Every error is one line on stderr and an exit code (:class:`ExitCode`);
``-v`` adds the traceback of an unexpected one.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from telemetry import redaction
from telemetry.version import DISTRIBUTION, installed_version

PACKAGE: Final = DISTRIBUTION

Handler = Callable[[argparse.Namespace], int]


class ExitCode(enum.IntEnum):
    """The exit codes of every ``ems`` command."""

    OK = 0
    FAILURE = 1  # a runtime failure: a database or device that does not answer
    USAGE = 2  # bad arguments or config, a missing extra: retrying will not help
    INTERNAL = 70  # a bug (sysexits.h EX_SOFTWARE): the one line asks for -v
    INTERRUPTED = 130


class CommandError(Exception):
    """A one-line error for the user; the command exits with ``code``."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


@contextlib.contextmanager
def _extra(extra: str) -> Iterator[None]:
    """Turn a missing third-party library of a side into a one-line hint at its extra."""
    try:
        yield
    except ModuleNotFoundError as err:
        name = (err.name or "").partition(".")[0]
        if name in {"ems", "hub", "edge", "drivers", "simulation", "telemetry"}:
            raise  # our own module missing: a broken install, not a missing extra
        raise CommandError(
            f"this command needs the '{extra}' extra (pip install '{PACKAGE}[{extra}]'): {err}"
        ) from err


class _Version(argparse.Action):
    """``--version``, looked up only when asked: reading package metadata costs every command."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        print(f"ems {installed_version()}")
        parser.exit()


# The handlers: typed, each importing its side only when it runs.


def _hub_serve(args: argparse.Namespace) -> int:
    with _extra("hub"):
        from hub import cli

        return cli.serve(args)


def _hub_token_add(args: argparse.Namespace) -> int:
    with _extra("hub"):
        from hub import cli

        return cli.token_add(args)


def _hub_token_list(args: argparse.Namespace) -> int:
    with _extra("hub"):
        from hub import cli

        return cli.token_list(args)


def _hub_token_revoke(args: argparse.Namespace) -> int:
    with _extra("hub"):
        from hub import cli

        return cli.token_revoke(args)


def _edge_run(args: argparse.Namespace) -> int:
    with _extra("edge"):
        from edge import cli

        return cli.run(args)


def _edge_probe(args: argparse.Namespace) -> int:
    with _extra("edge"):
        from edge import cli

        return cli.probe(args)


def _edge_scan(args: argparse.Namespace) -> int:
    with _extra("edge"):
        from edge import cli

        return cli.scan(args)


def _edge_status(args: argparse.Namespace) -> int:
    with _extra("edge"):
        from edge import cli

        return cli.status(args)


def _sim(args: argparse.Namespace) -> int:
    with _extra("sim"):
        from simulation import cli

        return cli.main(args)


def _devices(args: argparse.Namespace) -> int:
    from drivers.errors import ProfileError
    from drivers.profiles import describe

    if args.markdown:
        print(describe.devices_markdown(), end="")
    elif args.profile is not None:
        try:
            print(describe.profile_details(args.profile))
        except ProfileError as err:
            raise CommandError(str(err)) from err
    else:
        print(describe.catalogue_table())
    return ExitCode.OK


def _demo(args: argparse.Namespace) -> int:
    with _extra("edge,sim,hub"):
        from edge import demo

        return demo.main(args)


# The argument tree.


def _units(text: str) -> tuple[int, ...]:
    """``--units``: ids, ranges and lists of them (``5``, ``1-247``, ``1,2,5``, ``1-4,10``)."""
    units: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            start, stop = int(first), int(last if dash else first)
        except ValueError as err:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} is not a unit id or a range (e.g. 1-247, 1,2,5 or 1-4,10)"
            ) from err
        if start > stop:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r}: a range goes from low to high (did you mean {stop}-{start}?)"
            )
        if not 0 <= start <= stop <= 255:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r}: unit ids are 0 to 255 (1 to 247 on a serial line)"
            )
        units.extend(unit for unit in range(start, stop + 1) if unit not in units)
    return tuple(units)


def _storage_options(parser: argparse.ArgumentParser) -> None:
    """``--database`` on ``hub``, ``hub token`` and each of their subcommands.

    ``default=SUPPRESS``: a level where it is not given sets nothing, so the
    value given at any level reaches the handler, whichever comes first in
    ``ems hub --database URL token add X`` or ``ems hub token add X --database URL``.
    """
    parser.add_argument(
        "--database",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="postgresql://user@host:port/dbname (default: $EMS_DATABASE_URL; "
        "unset: SQLite file hub.db in $EMS_DATA_DIR, default ./ems-data)",
    )


def _hub_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = sub.add_parser("hub", help="the real-time switchboard (FastAPI)")
    _storage_options(hub)
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")

    serve = hub_sub.add_parser("serve", help="run the hub")
    _storage_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--retain-readings",
        metavar="DURATION",
        help="keep raw readings this long: 90d, 12w, 2y, or off (default: "
        "$EMS_RETAIN_READINGS, else 400d)",
    )
    serve.add_argument(
        "--retain-rollups",
        metavar="DURATION",
        help="keep the minute and energy rollups this long, at least --retain-readings "
        "(default: $EMS_RETAIN_ROLLUPS, else 10y; off with --retain-readings off)",
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
    serve.add_argument(
        "--cluster",
        metavar="URL",
        help="share devices and dashboards with other hubs through this Redis "
        "(redis://HOST[:PORT][/DB]; default: $EMS_CLUSTER_URL; unset: a hub alone); "
        "needs PostgreSQL storage",
    )
    serve.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish every site's live readings to this MQTT broker for Home Assistant, "
        "with discovery (mqtt[s]://[user@]HOST[:PORT]; default: $EMS_MQTT_URL; password in "
        "$EMS_MQTT_PASSWORD or --mqtt-password-file)",
    )
    serve.add_argument(
        "--mqtt-password-file", metavar="PATH", help="the MQTT broker's password, on one line"
    )
    serve.add_argument(
        "--mqtt-ca-file",
        metavar="PATH",
        help="mqtts:// only: trust this CA for the broker (default: $EMS_MQTT_CA_FILE, "
        "else the system's)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N hub processes sharing the port (SO_REUSEPORT) as one cluster; "
        "needs --cluster (default 1)",
    )
    # A worker of --workers: bind with SO_REUSEPORT (hub/cluster/workers.py).
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    _serve_limit_arguments(serve)
    serve.set_defaults(handler=_hub_serve)

    token = hub_sub.add_parser("token", help="manage device tokens")
    _storage_options(token)
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    add = token_sub.add_parser("add", help="create a token; printed once, on the last line")
    add.add_argument("device_id", metavar="DEVICE_ID")
    add.set_defaults(handler=_hub_token_add)
    listing = token_sub.add_parser("list", help="device ids with their tokens' creation times")
    listing.set_defaults(handler=_hub_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a device's token (closes its socket)")
    revoke.add_argument("device_id", metavar="DEVICE_ID")
    revoke.set_defaults(handler=_hub_token_revoke)
    for leaf in (add, listing, revoke):
        _storage_options(leaf)


def _edge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    edge = sub.add_parser("edge", help="the edge agent (Raspberry Pi)")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        parser = edge_sub.add_parser(name, help=help_text)
        parser.add_argument("--config", required=True, help="the agent's TOML config file")
        parser.set_defaults(handler=handler)
        return parser

    run = with_config("run", "poll, buffer and stream to the hub", _edge_run)
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        help="plain text, or one JSON object per line (default: $EMS_LOG_FORMAT, else text)",
    )
    probe = with_config("probe", "read one device once and print its values", _edge_probe)
    probe.add_argument("device_name", metavar="DEVICE_NAME")
    scan = with_config("scan", "list the unit ids that answer on a bus", _edge_scan)
    scan.add_argument("bus_name", metavar="BUS_NAME")
    scan.add_argument(
        "--units",
        type=_units,
        default=None,
        help="unit ids to try, e.g. 1-247, 1,2,5 or 1-4,10 (default: 1-247 on an rtu bus; "
        "on tcp 1-10 and the ids the catalogue's devices use, see 'ems devices')",
    )
    with_config("status", "buffer depth, last ack, device health", _edge_status)


def _sim_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser("sim", help="serve the simulated site as Modbus devices")
    sim.add_argument("--tcp", default="127.0.0.1:5020", metavar="HOST:PORT")
    sim.add_argument("--rtu-pty", action="store_true", help="also serve RTU on a pseudo-terminal")
    sim.add_argument(
        "--site",
        default="default",
        help="which devices to serve (default: the four-device kit; 'list' lists them)",
    )
    sim.add_argument("--scenario", default="sunny")
    sim.add_argument("--speed", type=float, default=1.0, help="time acceleration factor")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--sites", type=int, default=1, help="several sites on consecutive ports")
    sim.set_defaults(handler=_sim)


def _serve_limit_arguments(serve: argparse.ArgumentParser) -> None:
    """TLS and connection limits of ``ems hub serve`` (docs/security.md, "Deploying safely").

    Kept as given (strings; None when absent): hub/cli.py checks each, and falls
    back to its environment variable, in one place.
    """
    tls = serve.add_argument_group("TLS (both, or neither: then plain HTTP)")
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate chain to serve https:// and wss:// (default: $EMS_TLS_CERT)",
    )
    tls.add_argument(
        "--tls-key",
        metavar="FILE",
        help="PEM private key of --tls-cert (default: $EMS_TLS_KEY)",
    )
    limits = serve.add_argument_group("connection limits (0 turns one off)")
    for flag, env, default, text in [
        ("--handshake-timeout", "EMS_HANDSHAKE_TIMEOUT", "5",
         "seconds a connection may stay without a complete HTTP request"),
        ("--device-idle-timeout", "EMS_DEVICE_IDLE_TIMEOUT", "300",
         "seconds a device socket may stay silent"),
        ("--max-pending", "EMS_MAX_PENDING", "1024",
         "connections not (yet) a WebSocket, in all"),
        ("--max-pending-per-address", "EMS_MAX_PENDING_PER_ADDRESS", "64",
         "connections not (yet) a WebSocket, per client address"),
        ("--max-dashboards", "EMS_MAX_DASHBOARDS", "10000",
         "dashboard sockets, in all"),
        ("--max-dashboards-per-address", "EMS_MAX_DASHBOARDS_PER_ADDRESS", "256",
         "dashboard sockets per client address"),
        ("--viewer-guesses", "EMS_VIEWER_GUESSES", "10",
         "wrong viewer tokens per client address and minute before it must wait"),
    ]:  # fmt: skip
        limits.add_argument(flag, metavar="N", help=f"{text} (default: ${env}, else {default})")
    limits.add_argument(
        "--limit-exempt",
        metavar="ADDRS",
        help="comma-separated client addresses not held to the per-address caps, such as "
        "a reverse proxy's (default: $EMS_LIMIT_EXEMPT, else 127.0.0.1,::1)",
    )
    limits.add_argument(
        "--trusted-proxy",
        metavar="ADDRS",
        help="comma-separated addresses of reverse proxies whose X-Forwarded-For names the "
        "client the per-address limits count, or 'none' (default: $EMS_TRUSTED_PROXIES, "
        "else 127.0.0.1,::1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ems",
        description="EMS Switchboard: energy telemetry from Modbus devices to dashboards",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _hub_parser(sub)
    _edge_parser(sub)
    _sim_parser(sub)
    devices = sub.add_parser(
        "devices", help="the supported devices: profile, buses, the values each fills"
    )
    devices.add_argument("profile", nargs="?", metavar="PROFILE", help="every value of one")
    devices.add_argument("--markdown", action="store_true", help="the catalogue as docs/devices.md")
    devices.set_defaults(handler=_devices)
    demo = sub.add_parser("demo", help="hub + simulated site + edge agent in one command")
    demo.add_argument("--port", type=int, default=8000, help="the hub's port (default 8000)")
    demo.add_argument(
        "--data-dir",
        default=None,
        help="where the database, configs, buffers and logs are kept "
        "(default: $EMS_DATA_DIR, else ./ems-data)",
    )
    demo.add_argument(
        "--temp", action="store_true", help="a throw-away run: a temporary folder, removed at exit"
    )
    demo.add_argument("--scenario", default="sunny", help="as for 'ems sim' (default sunny)")
    demo.add_argument("--speed", type=float, default=1.0, help="as for 'ems sim' (default 1)")
    demo.add_argument(
        "--sites", type=int, default=1, help="as for 'ems sim': N sites, one agent each"
    )
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Before the first line: no token, cookie or password in any log line (telemetry/redaction.py).
    redaction.install_redaction()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        return int(handler(args))
    except CommandError as err:
        print(f"ems: {redaction.redact(str(err))}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as err:  # the last line of defence of a command line
        if args.verbose:
            raise
        print(
            f"ems: unexpected {type(err).__name__}: {redaction.redact(str(err))} "
            "(run with -v for the traceback)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
