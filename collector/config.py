"""Command-line flags and ``BINANCE_*`` environment variables → validated settings.

Parsing and validation only: :mod:`collector.wiring` builds the running objects.
Every flag has an environment variable (for containers); a flag given on the
command line wins. Invalid values, from either source, end the program with a
one-line message and exit code 2 before anything starts. Both front ends
(``binance-report`` and ``binance-exporter``) share the upstream flags here.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import unicodedata
from decimal import Decimal
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from collector.binance import DEFAULT_BASE_URL, WEIGHT_LIMIT
from collector.costs import costs, peak_weight_per_minute
from collector.records import SOURCES, Settings
from collector.stream_client import DEFAULT_STREAM_URL

EXIT_OK = 0
EXIT_FAILURE = 1  # upstream unreachable or bad (report); cannot listen (exporter)
EXIT_USAGE = 2

MIN_TTL = 10.0
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
LOG_LEVELS = ("debug", "info", "warning", "error")


class FromEnv(str):
    """A flag's default read from a ``BINANCE_*`` variable: an error in it names the variable."""

    variable = ""


def env(name: str, default: str) -> str:
    """The value of ``BINANCE_<NAME>`` or ``default``; argparse validates either."""
    value = os.environ.get(f"BINANCE_{name}")
    if value is None:
        return default
    marked = FromEnv(value)
    marked.variable = f"BINANCE_{name}"
    return marked


def _number(kind: Callable[[str], float], text: str, minimum: float, what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if math.isnan(value) or value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum:g}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    return int(_number(int, text, 1, "a whole number"))


def non_negative_int(text: str) -> int:
    """An integer ≥ 0."""
    return int(_number(int, text, 0, "a whole number"))


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds)."""
    value = _number(float, text, -math.inf, "a number")
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


def weight_budget(text: str) -> float:
    """Request weight per minute: above 0, and no more than Binance allows an IP."""
    value = positive_float(text)
    if value > WEIGHT_LIMIT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is above Binance's limit of {WEIGHT_LIMIT} per minute and IP")
    return value


def ttl(text: str) -> float:
    """A TTL in seconds: at least 10, so Binance is called at most every 10 s."""
    value = positive_float(text)
    if value < MIN_TTL:
        raise argparse.ArgumentTypeError(f"{text!r} is below the {MIN_TTL:g} s minimum TTL")
    return value


def top(text: str) -> int:
    """Symbols per ranking: 1 to 50 (each is a depth call per books refresh)."""
    value = positive_int(text)
    if value > 50:
        raise argparse.ArgumentTypeError(f"{text!r} is above the maximum of 50")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    """A type that accepts only ``choices`` (case-insensitive).

    argparse checks ``choices=`` only on the command line, not on defaults,
    which is where environment variables arrive: a type checks both.
    """

    def check(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not one of {', '.join(choices)}")
        return value

    check.__name__ = "choice"
    return check


BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def boolean(text: str) -> bool:
    """``true``/``false`` (or ``1``/``0``, ``yes``/``no``; any case), for a variable that
    stands for a flag without a value."""
    value = BOOLEANS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not true or false")
    return value


class Switch(argparse.Action):
    """A flag without a value that turns something on; its default (``False``, or a
    ``BINANCE_*`` variable's ``true``/``false``) goes through :func:`boolean`, so a bad
    variable is an error naming it, as for any other flag."""

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = "false",
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=default, type=boolean, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, True)


def depth_levels(text: str) -> int:
    """Order book levels per side: Binance serves 1 to 5000."""
    value = positive_int(text)
    if value > 5000:
        raise argparse.ArgumentTypeError(f"{text!r} is above Binance's maximum depth of 5000")
    return value


def symbol_list(text: str) -> tuple[str, ...]:
    """``SYM[,SYM…]``: symbols as Binance spells them (any Unicode but spaces and control
    characters; case-sensitive), none empty."""
    symbols = tuple(item.strip() for item in text.split(","))
    for symbol in symbols:
        if not symbol:
            raise argparse.ArgumentTypeError(f"{text!r} has an empty symbol")
        if any(c.isspace() or unicodedata.category(c).startswith("C") for c in symbol):
            raise argparse.ArgumentTypeError(
                f"{symbol!r} is not a symbol: spaces and control characters are not allowed")
    return symbols


def band_list(text: str) -> tuple[str, ...]:
    """``PCT[,PCT…]``: percentages of the mid price above 0 and below 100, written as
    plain decimals (``0.5``, ``2``): each becomes a ``band`` label as written. Empty:
    none."""
    if not text.strip():
        return ()
    bands = tuple(item.strip() for item in text.split(","))
    for band in bands:
        if not _PLAIN_DECIMAL.fullmatch(band) or not 0 < Decimal(band) < 100:
            raise argparse.ArgumentTypeError(
                f"{band!r} is not a percentage above 0 and below 100, like 0.5 or 2")
    return tuple(dict.fromkeys(bands))


def base_url(text: str) -> str:
    """An http(s) URL with a host and no path beyond '/'."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL like {DEFAULT_BASE_URL}")
    try:
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r} must not have a path: give the host only")
    return text.strip().rstrip("/")


def stream_base(text: str) -> str:
    """A ws(s) URL with a host and no path: the client adds ``/stream?streams=...``."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ws(s) URL like {DEFAULT_STREAM_URL}")
    try:
        _ = parts.port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r} must not have a path: give the host only")
    return text.strip().rstrip("/")


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2, and no abbreviated
    flags: ``--ttl-book`` is not silently ``--ttl-books`` (a manifest's typo must fail)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def _get_value(self, action: argparse.Action, arg_string: str) -> object:
        """argparse's conversion; a bad value from the environment also names its variable.

        argparse converts a string default with the same ``type`` as a command-line
        value, after parsing, and passes the default object itself: a
        :class:`FromEnv` there can only have come from the environment.
        """
        try:
            return super()._get_value(action, arg_string)
        except argparse.ArgumentError as exc:
            if isinstance(arg_string, FromEnv):
                raise argparse.ArgumentError(
                    action, f"{exc.message} (from {arg_string.variable})") from None
            raise


def add_upstream_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by the report and the exporter: where and what to ask Binance."""
    group = parser.add_argument_group("upstream (Binance)")
    group.add_argument(
        "--base-url", action="append", type=base_url, dest="base_urls", metavar="URL",
        help="Binance Spot API base URL; repeat to give fallbacks tried in order when a "
        f"connection fails (env BINANCE_BASE_URL, comma-separated; default {DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--source", type=one_of(*SOURCES), default=env("SOURCE", "rest"),
        metavar="{rest,stream}",
        help="where spreads and books come from: rest, fetched when asked for and cached; "
        "or stream, pushed by Binance's WebSocket streams and kept live (rankings stay REST) "
        "(env BINANCE_SOURCE; default rest)",
    )
    group.add_argument(
        "--stream-url", action="append", type=stream_base, dest="stream_urls", metavar="URL",
        help="stream mode: Binance's WebSocket base URL; repeat to give fallbacks tried in "
        "turn when a connection cannot be made (env BINANCE_STREAM_URL, comma-separated; "
        f"default {DEFAULT_STREAM_URL})",
    )
    group.add_argument(
        "--timeout", type=positive_float, default=env("TIMEOUT", "3"), metavar="SECONDS",
        help="connect and read timeout of each request (env BINANCE_TIMEOUT; default 3)",
    )
    group.add_argument(
        "--retries", type=non_negative_int, default=env("RETRIES", "1"), metavar="N",
        help="retries after a timeout, connection error or 5xx (env BINANCE_RETRIES; default 1)",
    )
    group.add_argument(
        "--top", type=top, default=env("TOP", "5"), metavar="N",
        help="how many symbols each ranking keeps, 1-50 (env BINANCE_TOP; default 5)",
    )
    group.add_argument(
        "--depth-levels", type=depth_levels, default=env("DEPTH_LEVELS", "200"), metavar="N",
        help="order book levels per side summed for the notional, 1-5000 (env "
        "BINANCE_DEPTH_LEVELS; default 200)",
    )
    group.add_argument(
        "--symbols", action="append", type=symbol_list, metavar="SYM[,SYM...]",
        help="symbols followed besides the rankings: their spreads and order books, under "
        "the same metrics (repeatable; env BINANCE_SYMBOLS, comma-separated; default none)",
    )
    group.add_argument(
        "--spreads", type=one_of("top", "all"), default=env("SPREADS", "top"),
        metavar="{top,all}",
        help="spreads of the top N by trades and --symbols, or of every TRADING symbol "
        "(env BINANCE_SPREADS; default top)",
    )
    group.add_argument(
        "--depth-bands", type=band_list, default=env("DEPTH_BANDS", ""), metavar="PCT[,PCT...]",
        help="also publish each book's depth within these percentages of its mid price, e.g. "
        "0.5,1,2 (env BINANCE_DEPTH_BANDS; default none)",
    )
    group.add_argument(
        "--rank-by", type=one_of("quote", "base"), default=env("RANK_BY", "quote"),
        metavar="{quote,base}",
        help="Q1 ranks BTC-quoted symbols by quote volume (in BTC, comparable across coins) "
        "or base-asset volume (env BINANCE_RANK_BY; default quote)",
    )
    group.add_argument(
        "--weight-budget", type=weight_budget, default=env("WEIGHT_BUDGET", "3000"),
        metavar="WEIGHT",
        help="refuse to start when these settings could spend more request weight than this "
        f"in one minute; Binance allows {WEIGHT_LIMIT} per IP (env BINANCE_WEIGHT_BUDGET; "
        "default 3000)",
    )
    parser.add_argument(
        "--log-level", type=one_of(*LOG_LEVELS), default=env("LOG_LEVEL", "info"),
        metavar="{" + ",".join(LOG_LEVELS) + "}",
        help="log verbosity on stderr (env BINANCE_LOG_LEVEL; default info)",
    )


def resolve_urls(parser: argparse.ArgumentParser, given: Sequence[str] | None, name: str,
                 default: str, kind: Callable[[str], str]) -> list[str]:
    """Flags win; else BINANCE_<name> (comma-separated); else the default."""
    if given:
        return list(given)
    urls = []
    for item in env(name, default).split(","):
        try:
            urls.append(kind(item))
        except argparse.ArgumentTypeError as exc:
            parser.error(f"BINANCE_{name}: {exc}")
    return urls


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags and environment, validated, with the URLs resolved (exit 2 on bad input)."""
    args = parser.parse_args(argv)
    args.base_urls = resolve_urls(parser, args.base_urls, "BASE_URL", DEFAULT_BASE_URL,
                                  base_url)
    args.stream_urls = resolve_urls(parser, args.stream_urls, "STREAM_URL",
                                    DEFAULT_STREAM_URL, stream_base)
    given = args.symbols
    if not given and os.environ.get("BINANCE_SYMBOLS"):
        try:
            given = [symbol_list(os.environ["BINANCE_SYMBOLS"])]
        except argparse.ArgumentTypeError as exc:
            parser.error(f"BINANCE_SYMBOLS: {exc}")
    args.symbols = tuple(dict.fromkeys(symbol for symbols in given or () for symbol in symbols))
    return args


def check_weight_budget(parser: argparse.ArgumentParser, settings: Settings, budget: float,
                        remedy: str) -> None:
    """Exit 2 if the most weight one minute can cost at ``settings`` is over ``budget``.

    A typo such as ``--depth-levels 5000`` with ``--top 50`` (12,500 weight in one
    refresh) must not get the whole IP banned (418, up to 3 days): such settings
    are refused before any call is made. ``remedy`` says which settings to change.
    """
    spend = peak_weight_per_minute(settings)
    if spend > budget:
        parser.error(
            f"these settings could spend {spend} request weight in one minute ("
            + ", ".join(str(cost) for cost in costs(settings))
            + f"), over the weight budget of {budget:g} (--weight-budget, "
            f"BINANCE_WEIGHT_BUDGET; Binance allows {WEIGHT_LIMIT} per IP): {remedy}")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the shared flags (front ends replace() what is theirs)."""
    return Settings(top=args.top, depth_levels=args.depth_levels, rank_by=args.rank_by,
                    source=args.source, symbols=args.symbols, all_spreads=args.spreads == "all",
                    depth_bands=args.depth_bands)
