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

from collector import __version__, config, wiring
from collector.config import (
    EXIT_OK,
    EXIT_FAILURE,
    EXIT_USAGE,
    Parser,
    check_weight_budget,
    parse_args,
    settings_from,
)
from collector.costs import peak_weight_per_minute
from collector.records import STREAM, Settings
from collector.server import MetricsServer
from collector.web_config import WebConfigError, WebConfigFile

log = logging.getLogger("collector.exporter_cli")


def build_parser() -> Parser:
    """The exporter's flags (:data:`collector.config.FLAGS`)."""
    return config.build_parser(
        config.EXPORTER, __version__,
        "Serve Binance Spot spreads, deltas and order book notionals as Prometheus metrics, "
        "fetched when scraped and cached per data group.")


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
