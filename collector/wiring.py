"""Validated flags → the running objects, for both front ends: the one place they are built.

The report and the exporter get their :class:`~collector.source.Source` here (REST or
streams, per ``--source``), the exporter its collector and exposition, and both their
logging.
"""

from __future__ import annotations

import argparse
import logging
import time

from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.exporter_metrics import WithExporterMetrics
from collector.exposition import Exposition
from collector.q5 import SAMPLE_SECONDS, Listener, log_sample
from collector.records import STREAM, Settings
from collector.rest_source import RestSource
from collector.source import Source
from collector.stream_source import StreamSource


def client(args: argparse.Namespace) -> BinanceClient:
    """The Binance client the flags describe."""
    # a pooled connection for each parallel depth call, plus the other groups'
    return BinanceClient(args.base_urls, timeout=args.timeout, retries=args.retries,
                         pool_size=args.top + len(args.symbols) + 8)


def source(args: argparse.Namespace, settings: Settings, *,
           sample_every: float = SAMPLE_SECONDS,
           on_sample: Listener | None = log_sample) -> Source:
    """The source ``settings`` name; in stream mode with its streams started and Q5
    sampled every ``sample_every`` seconds. ``on_sample``: told each Q5 sample."""
    upstream = client(args)
    if settings.source == STREAM:
        return StreamSource(upstream, settings, args.stream_urls, sample_every=sample_every,
                            on_sample=on_sample).start()
    return RestSource(upstream, settings, on_sample=on_sample)


def exporter(args: argparse.Namespace, settings: Settings) -> tuple[Source, Exposition]:
    """The exporter's source, and the exposition of its collector (no global registry):
    with the exporter's own process and Python metrics unless
    ``--web.disable-exporter-metrics``."""
    running = source(args, settings)
    collector = BinanceCollector(running) if args.disable_exporter_metrics \
        else WithExporterMetrics(running)
    return running, Exposition(collector)


def setup_logging(level: str) -> None:
    """One line per event on stderr, with UTC timestamps."""
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])
