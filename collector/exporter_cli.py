"""``binance-exporter``: flags → a started metrics server, until SIGTERM/SIGINT.

Exit codes: 0 clean shutdown; 1 cannot listen (e.g. the port is in use);
2 bad flags or environment variables, flags over ``--weight-budget``, or a web
configuration file that cannot be served (checked before listening).
Start-up makes no call to Binance: the first scrape does the first fetch.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Callable, Sequence

from collector import __version__, wiring
from collector.config import (
    EXIT_OK,
    EXIT_FAILURE,
    EXIT_USAGE,
    Parser,
    Switch,
    add_upstream_flags,
    check_weight_budget,
    env,
    parse_args,
    positive_float,
    settings_from,
    ttl,
)
from collector.costs import peak_weight_per_minute
from collector.records import STREAM, Settings
from collector.server import MetricsServer
from collector.web_config import WebConfigError, WebConfigFile

log = logging.getLogger("collector.exporter_cli")


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return value


def build_parser() -> Parser:
    """The exporter's flags."""
    parser = Parser(
        prog="binance-exporter",
        description="Serve Binance Spot spreads, deltas and order book notionals as "
        "Prometheus metrics, fetched when scraped and cached per data group.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    web = parser.add_argument_group("web")
    # not BINANCE_PORT: Kubernetes sets <SERVICE>_PORT=tcp://... for a Service named binance
    web.add_argument("--listen-address", default=env("LISTEN_ADDRESS", "::"),
                     metavar="HOST", help="address to listen on, IPv4 or IPv6; :: is every "
                     "interface, IPv4 and IPv6 (IPv4 alone on a machine without IPv6), "
                     "0.0.0.0 every IPv4 one (env BINANCE_LISTEN_ADDRESS; default ::)")
    web.add_argument("--port", type=port, default=env("LISTEN_PORT", "8080"),
                     help="port to listen on (env BINANCE_LISTEN_PORT; default 8080)")
    web.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                     default=env("WEB_CONFIG_FILE", ""),
                     help="the exporter-toolkit's web configuration file: TLS, mutual TLS, "
                     "basic auth and response headers for every path, read again as "
                     "requests and connections come (env BINANCE_WEB_CONFIG_FILE; default "
                     "none: plain HTTP, open to anyone who can reach the port)")
    web.add_argument("--web.disable-exporter-metrics", dest="disable_exporter_metrics",
                     action=Switch, default=env("WEB_DISABLE_EXPORTER_METRICS", "false"),
                     help="leave out the exporter's own process_* and python_* metrics (env "
                     "BINANCE_WEB_DISABLE_EXPORTER_METRICS=true; default: served)")
    add_upstream_flags(parser)
    cache = parser.add_argument_group("cache (TTL per data group; 10 s minimum)")
    for name, default, what in (
        ("spreads", "10", "best bid/ask (bookTicker, weight 4)"),
        ("books", "30", "order books (depth, weight 25 each)"),
        ("rankings", "300", "24 h ticker for Q1/Q2 (weight 80)"),
        ("exchange", "3600", "exchangeInfo (weight 20)"),
    ):
        cache.add_argument(f"--ttl-{name}", type=ttl, default=env(f"TTL_{name.upper()}", default),
                           metavar="SECONDS",
                           help=f"{what} (env BINANCE_TTL_{name.upper()}; default {default})")
    cache.add_argument(
        "--refresh-budget", type=positive_float, default=env("REFRESH_BUDGET", "8"),
        metavar="SECONDS",
        help="most time a scrape may spend refreshing, retries included; keep it under "
        "Prometheus' scrape timeout (env BINANCE_REFRESH_BUDGET; default 8)")
    return parser


def exporter_settings(args: argparse.Namespace) -> Settings:
    """The market settings the exporter's flags describe."""
    return dataclasses.replace(
        settings_from(args), ttl_spreads=args.ttl_spreads, ttl_books=args.ttl_books,
        ttl_rankings=args.ttl_rankings, ttl_exchange=args.ttl_exchange,
        refresh_budget=args.refresh_budget,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``binance-exporter``: serve until SIGTERM or SIGINT."""
    parser = build_parser()
    args = parse_args(parser, argv)
    check_weight_budget(parser, exporter_settings(args), args.weight_budget,
                        "raise the TTLs (--ttl-*), or lower --top, --depth-levels or the "
                        "number of --symbols, or leave out --depth-bands")
    wiring.setup_logging(args.log_level)
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return serve(args, stop)


def serve(
    args: argparse.Namespace,
    stop: threading.Event,
    on_ready: Callable[[MetricsServer], None] | None = None,
) -> int:
    """Listen, serve until ``stop`` is set, then release the port. Returns the exit code."""
    settings = exporter_settings(args)
    web_config = None
    if args.web_config_file:
        try:
            web_config = WebConfigFile.at_start(args.web_config_file)
        except WebConfigError as exc:
            print(f"binance-exporter: error: --web.config.file {args.web_config_file}: {exc}",
                  file=sys.stderr)
            return EXIT_USAGE
    source, exposition = wiring.exporter(args, settings)
    host = f"[{args.listen_address}]" if ":" in args.listen_address else args.listen_address
    try:
        server = MetricsServer(args.listen_address, args.port, exposition,
                               web_config=web_config)
    except OSError as exc:
        source.close()
        print(f"binance-exporter: cannot listen on {host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    server.start()
    streams = f", streams {', '.join(args.stream_urls)}" if settings.source == STREAM else ""
    guarded = f", web config {args.web_config_file}" if web_config is not None else ""
    log.info("listening on %s://%s:%d/metrics (upstream %s%s, at most %d request weight "
             "in any minute%s)", server.scheme, host, server.port, ", ".join(args.base_urls),
             streams, peak_weight_per_minute(settings), guarded)
    if on_ready is not None:
        on_ready(server)
    stop.wait()
    server.stop()
    source.close()
    return EXIT_OK
