"""Command-line flags and ``BINANCE_*`` environment variables → validated settings.

Parsing and validation only: :mod:`collector.wiring` builds the running objects.

Each flag is written once, in :data:`FLAGS`: its name, environment variable, default,
range and help. The range is the flag's type (:class:`Number`, :class:`Choice`,
:class:`Check`), which checks a value and says in words what it accepts. Both front ends
build their parsers from the table (:func:`build_parser`), and ``make docs``
(``tools/flags_doc.py``) writes the configuration reference ``docs/configuration.md``
and the README's table of common flags from it; ``make test`` fails when they drift.

Every flag has an environment variable (for containers); a flag given on the command
line wins. Invalid values, from either source, ``nan`` and ``inf`` included, end the
program with a one-line message and exit code 2 before anything starts.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Protocol, Sequence
from urllib.parse import urlsplit

from collector.binance import DEFAULT_BASE_URL, WEIGHT_LIMIT
from collector.costs import costs, peak_weight_per_minute
from collector.records import SOURCES, Settings
from collector.stream_client import DEFAULT_STREAM_URL

EXIT_OK = 0
EXIT_FAILURE = 1  # upstream unreachable or bad (report); cannot listen (exporter)
EXIT_USAGE = 2

EXPORTER = "binance-exporter"
REPORT = "binance-report"
BOTH = (EXPORTER, REPORT)

MIN_TTL = 10.0
_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
LOG_LEVELS = ("debug", "info", "warning", "error")


class FromEnv(str):
    """A flag's default read from a ``BINANCE_*`` variable: an error in it names the variable."""

    variable = ""


def from_env(variable: str, default: str | None) -> str | None:
    """The value of ``variable`` (marked as from it) or ``default``; argparse validates either."""
    value = os.environ.get(variable)
    if value is None:
        return default
    marked = FromEnv(value)
    marked.variable = variable
    return marked


class Kind(Protocol):
    """A flag's type: converts a value (or raises ``ArgumentTypeError``); ``range`` says in
    words what it accepts."""

    @property
    def range(self) -> str:
        """What the type accepts, in words."""

    def __call__(self, text: str) -> Any:
        """The value of ``text``."""


@dataclass(frozen=True)
class Number:
    """A numeric flag's type: a finite ``int`` or ``float`` from ``low`` (or above it, with
    ``above``) to ``high``; ``range`` says so in words ("above 0 s", "1 to 50").

    ``too_low`` and ``too_high`` are the messages for values out of range (``{text}`` is
    the value as given); ``nan`` and ``inf`` are refused as not finite, naming the range.
    """

    kind: type[int] | type[float]
    low: float
    high: float | None = None
    above: bool = False
    unit: str = ""
    too_low: str = ""
    too_high: str = ""

    @property
    def range(self) -> str:
        """What the type accepts, in words."""
        unit = f" {self.unit}" if self.unit else ""
        if self.high is None:
            return f"{'above' if self.above else 'at least'} {self.low:g}{unit}"
        if self.above:
            return f"above {self.low:g}, at most {self.high:g}{unit}"
        return f"{self.low:g} to {self.high:g}{unit}"

    def __call__(self, text: str) -> Any:
        what = "a whole number" if self.kind is int else "a number"
        try:
            value = self.kind(text)
        except ValueError:
            if not _NON_FINITE.fullmatch(text.strip()):
                raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
            value = math.nan  # int() refuses nan and inf as it refuses words
        if not math.isfinite(value):
            span = "" if self.above else "from " if self.high is not None else "of "
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a finite number: give {what} {span}{self.range}")
        if value < self.low or (self.above and value == self.low):
            default = (f"{{text!r}} must be a finite number above {self.low:g}" if self.above
                       else f"{{text!r}} must be at least {self.low:g}")
            raise argparse.ArgumentTypeError((self.too_low or default).format(text=text))
        if self.high is not None and value > self.high:
            default = f"{{text!r}} is above the maximum of {self.high:g}"
            raise argparse.ArgumentTypeError((self.too_high or default).format(text=text))
        return value


class Choice:
    """A type that accepts only ``choices`` (case-insensitive).

    argparse checks ``choices=`` only on the command line, not on defaults,
    which is where environment variables arrive: a type checks both.
    """

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self.range = ", ".join(choices)

    def __call__(self, text: str) -> str:
        value = text.strip().lower()
        if value not in self.choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Check:
    """A type from a function that converts a value or raises ``ArgumentTypeError``, with the
    range it accepts in words."""

    convert: Callable[[str], Any]
    range: str

    def __call__(self, text: str) -> Any:
        return self.convert(text)


positive_int = Number(int, 1)
non_negative_int = Number(int, 0)
seconds = Number(float, 0, above=True, unit="s")
weight_budget = Number(float, 0, above=True, high=WEIGHT_LIMIT, too_high="{text!r} is above "
                       f"Binance's limit of {WEIGHT_LIMIT} per minute and IP")
ttl = Number(float, MIN_TTL, unit="s", too_low="{text!r} is below the "
             f"{MIN_TTL:g} s minimum TTL")
top = Number(int, 1, high=50)
depth_levels = Number(int, 1, high=5000,
                      too_high="{text!r} is above Binance's maximum depth of 5000")


def port(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return value


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


def _url(text: str, schemes: tuple[str, str], what: str) -> str:
    """A URL of one of ``schemes`` with a host and no path beyond '/'."""
    parts = urlsplit(text.strip())
    if parts.scheme not in schemes or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    try:
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r} must not have a path: give the host only")
    return text.strip().rstrip("/")


def base_url(text: str) -> str:
    """An http(s) URL with a host and no path beyond '/'."""
    return _url(text, ("http", "https"), f"an http(s) URL like {DEFAULT_BASE_URL}")


def stream_base(text: str) -> str:
    """A ws(s) URL with a host and no path: the client adds ``/stream?streams=...``."""
    return _url(text, ("ws", "wss"), f"a ws(s) URL like {DEFAULT_STREAM_URL}")


@dataclass(frozen=True)
class Flag:  # pylint: disable=too-many-instance-attributes  # one field a fact of a flag
    """One flag, written once: ``--help``, docs/configuration.md and the README's table of
    common flags are made from it.

    ``default`` is the value as a user would write it (``None``: none); ``many`` makes the
    flag repeatable, its variable a comma-separated list (``split``: each item one value,
    otherwise the type takes the list). ``details`` (Markdown, links relative to docs/) goes
    to the configuration reference only; ``common`` puts the flag in the README's table.
    """

    name: str
    env: str
    kind: Kind
    help: str
    default: str | None = None
    metavar: str | None = None
    commands: tuple[str, ...] = BOTH
    group: str = ""  # the --help section; "" for the general options
    many: bool = False
    split: bool = False
    dest: str | None = None
    shown: str = ""  # the default in words, where it is not a value
    blank_is_unset: bool = False  # an empty variable means the default
    common: bool = False
    details: str = ""
    switch: bool = False  # takes no value: given, it turns something on (its variable: true)

    @property
    def range(self) -> str:
        """What the flag accepts, in words."""
        return self.kind.range

    @property
    def shown_default(self) -> str:
        """The default as the help and the docs show it."""
        return self.shown or self.default or "none"

    @property
    def listed(self) -> bool:
        """Its variable holds a comma-separated list."""
        return self.many or "[," in (self.metavar or "")

    def help_text(self) -> str:
        """The flag's ``--help`` line: what it does, its range, variable and default."""
        notes = [] if isinstance(self.kind, Choice) else [self.range]
        notes += [f"env {self.env}" + (", comma-separated" if self.listed else ""),
                  f"default {self.shown_default}"]
        return f"{self.help} ({'; '.join(notes)})".replace("%", "%%")

    def default_value(self) -> str | None:
        """The default argparse starts from: the variable if set, else ``default``. A list
        flag's variable is read after parsing (:func:`parse_args`), when no flag was given."""
        if self.many:
            return None
        if self.blank_is_unset and not os.environ.get(self.env):
            return self.default
        return from_env(self.env, self.default)


WEB = "web"
UPSTREAM = "upstream (Binance)"
CACHE = f"cache (TTL per data group; {MIN_TTL:g} s minimum)"

FLAGS: tuple[Flag, ...] = (
    # binance-exporter: where to listen
    Flag("--listen-address", "BINANCE_LISTEN_ADDRESS", Check(str, "an IPv4 or IPv6 address"),
         "address to listen on: :: is every interface of both IPv4 and IPv6 (IPv4 alone on a "
         "machine without IPv6), 0.0.0.0 every IPv4 interface, 127.0.0.1 or ::1 loopback only",
         default="::", metavar="HOST", commands=(EXPORTER,), group=WEB, common=True),
    # not BINANCE_PORT: Kubernetes sets <SERVICE>_PORT=tcp://... for a Service named binance
    Flag("--port", "BINANCE_LISTEN_PORT", Check(port, "0 to 65535"),
         "port to listen on; 0: any free port, shown in the 'listening on' line logged at "
         "info level", default="8080", metavar="N", commands=(EXPORTER,), group=WEB,
         common=True, details="Not `BINANCE_PORT`: Kubernetes sets that for a Service named "
         "`binance`."),
    Flag("--web.config.file", "BINANCE_WEB_CONFIG_FILE", Check(str, "a file path"),
         "the exporter-toolkit's web configuration file: TLS, mutual TLS, basic auth and "
         "response headers for every path, read again as requests and connections come",
         default="", shown="none: plain HTTP, open to anyone who can reach the port",
         metavar="FILE", commands=(EXPORTER,), group=WEB, dest="web_config_file",
         common=True, details="See [security](security.md)."),
    Flag("--web.disable-exporter-metrics", "BINANCE_WEB_DISABLE_EXPORTER_METRICS",
         Check(boolean, "no value; its variable true or false"),
         "leave out the exporter's own process_* and python_* metrics", default="false",
         shown="served", commands=(EXPORTER,), group=WEB, dest="disable_exporter_metrics",
         switch=True),
    # both: where and what to ask Binance
    Flag("--base-url", "BINANCE_BASE_URL", Check(base_url, "an http(s) URL, host and port only"),
         "Binance Spot API base URL; repeat to give fallbacks, tried in order when no "
         "connection can be made", default=DEFAULT_BASE_URL, metavar="URL", group=UPSTREAM,
         many=True, split=True, dest="base_urls", common=True,
         details="`https://data-api.binance.vision` serves Binance's market data only. "
         "`https://api.binance.us` is Binance.US, a separate exchange with other listings, "
         "not this market."),
    Flag("--source", "BINANCE_SOURCE", Choice(*SOURCES),
         "where spreads and books come from: rest, fetched when asked for and cached; or "
         "stream, pushed by Binance's WebSocket streams and kept live (rankings stay REST)",
         default="rest", metavar="{" + ",".join(SOURCES) + "}", group=UPSTREAM, common=True,
         details="See [stream mode](stream-mode.md)."),
    Flag("--stream-url", "BINANCE_STREAM_URL",
         Check(stream_base, "a ws(s) URL, host and port only"),
         "stream mode: Binance's WebSocket base URL (the client adds /stream?streams=...); "
         "repeat to give fallbacks, tried in turn when a connection cannot be made",
         default=DEFAULT_STREAM_URL, metavar="URL", group=UPSTREAM, many=True, split=True,
         dest="stream_urls", details="For example `wss://stream.binance.com:9443`."),
    Flag("--timeout", "BINANCE_TIMEOUT", seconds,
         "connect and read timeout of each request", default="3", metavar="SECONDS",
         group=UPSTREAM),
    Flag("--retries", "BINANCE_RETRIES", non_negative_int,
         "retries after a timeout, connection error or 5xx (0.2 s, 0.4 s ... back-off)",
         default="1", metavar="N", group=UPSTREAM),
    Flag("--top", "BINANCE_TOP", top,
         "how many symbols each ranking keeps (Q1, Q2)", default="5", metavar="N",
         group=UPSTREAM, common=True),
    Flag("--depth-levels", "BINANCE_DEPTH_LEVELS", depth_levels,
         "order book levels per side summed for the notional (Q3)", default="200",
         metavar="N", group=UPSTREAM,
         details="A book weighs 5, 25, 50 or 250 by size ([request weight](request-weight.md))."),
    Flag("--symbols", "BINANCE_SYMBOLS",
         Check(symbol_list, "symbols as Binance spells them: case-sensitive, any Unicode but "
               "spaces and control characters"),
         "symbols followed besides the rankings: their spreads and order books, under the "
         "same metrics; repeatable", metavar="SYM[,SYM...]", group=UPSTREAM, many=True,
         blank_is_unset=True, common=True, details="See [your symbols](symbols.md#your-symbols). "
         "Each costs one book ([request weight](request-weight.md))."),
    Flag("--spreads", "BINANCE_SPREADS", Choice("top", "all"),
         "top: spreads of the Q2 symbols and --symbols; all: of every TRADING symbol",
         default="top", metavar="{top,all}", group=UPSTREAM, common=True,
         details="See [the whole market](symbols.md#the-whole-market). It costs no more "
         "weight: REST mode makes one bookTicker call, weight 4 either way; streams cost none."),
    Flag("--depth-bands", "BINANCE_DEPTH_BANDS",
         Check(band_list, "percentages above 0 and below 100, as plain decimals"),
         "also publish each book's depth within these percentages of its mid price, e.g. "
         "0.5,1,2", default="", shown="none", metavar="PCT[,PCT...]", group=UPSTREAM,
         common=True, details="See [depth bands](symbols.md#depth-bands). Books may then go "
         "to 5,000 levels, weight 250 ([request weight](request-weight.md))."),
    Flag("--rank-by", "BINANCE_RANK_BY", Choice("quote", "base"),
         "Q1 ranks BTC-quoted symbols by quote volume (in BTC, comparable across coins) or "
         "by base-asset volume", default="quote", metavar="{quote,base}", group=UPSTREAM),
    Flag("--weight-budget", "BINANCE_WEIGHT_BUDGET", weight_budget,
         "refuse to start (exit 2) when these settings could spend more request weight than "
         f"this in one minute; Binance allows {WEIGHT_LIMIT} per IP", default="3000",
         metavar="WEIGHT", group=UPSTREAM, common=True,
         details="See [request weight](request-weight.md)."),
    # binance-exporter: how long each data group is reused
    Flag("--ttl-spreads", "BINANCE_TTL_SPREADS", ttl, "best bid/ask (bookTicker, weight 4)",
         default="10", metavar="SECONDS", commands=(EXPORTER,), group=CACHE,
         details="Not used in stream mode, where the streams push them."),
    Flag("--ttl-books", "BINANCE_TTL_BOOKS", ttl, "order books (depth, weight 25 each)",
         default="30", metavar="SECONDS", commands=(EXPORTER,), group=CACHE,
         details="Not used in stream mode, where the streams push them."),
    Flag("--ttl-rankings", "BINANCE_TTL_RANKINGS", ttl, "24 h ticker for Q1/Q2 (weight 80)",
         default="300", metavar="SECONDS", commands=(EXPORTER,), group=CACHE),
    Flag("--ttl-exchange", "BINANCE_TTL_EXCHANGE", ttl, "exchangeInfo (weight 20)",
         default="3600", metavar="SECONDS", commands=(EXPORTER,), group=CACHE),
    Flag("--refresh-budget", "BINANCE_REFRESH_BUDGET", seconds,
         "most time one scrape spends refreshing, retries included; keep it under "
         "Prometheus' scrape timeout (10 s by default)", default="8", metavar="SECONDS",
         commands=(EXPORTER,), group=CACHE),
    # binance-report: the Q5 log
    Flag("--interval", "BINANCE_INTERVAL", seconds, "seconds between Q5 ticks",
         default="10", metavar="SECONDS", commands=(REPORT,)),
    Flag("--count", "BINANCE_COUNT", non_negative_int,
         "Q5 ticks to print, then exit; 0 prints Q1-Q4 only", shown="until Ctrl-C",
         metavar="N", commands=(REPORT,), blank_is_unset=True,
         details="An empty `BINANCE_COUNT` is the default."),
    Flag("--format", "BINANCE_FORMAT", Choice("text", "json"),
         "text tables, or JSON: Q1-Q4 as one object, then one object per tick (JSON Lines)",
         default="text", metavar="{text,json}", commands=(REPORT,)),
    # both
    Flag("--log-level", "BINANCE_LOG_LEVEL", Choice(*LOG_LEVELS), "log verbosity, on stderr",
         default="info", metavar="{" + ",".join(LOG_LEVELS) + "}", common=True),
)


def flags(command: str) -> tuple[Flag, ...]:
    """The flags of ``command`` (``binance-exporter`` or ``binance-report``), in order."""
    return tuple(flag for flag in FLAGS if command in flag.commands)


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


def build_parser(command: str, version: str, description: str) -> Parser:
    """The parser of ``command``: ``--version`` and the command's :data:`FLAGS`, each
    defaulting to its variable (read now) or its default."""
    parser = Parser(prog=command, description=description)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    groups: dict[str, Any] = {"": parser}  # argparse's groups have no public type
    for flag in flags(command):
        if flag.group not in groups:
            groups[flag.group] = parser.add_argument_group(flag.group)
        options: dict[str, Any] = {"action": "append"} if flag.many else {
            "default": flag.default_value()}
        if flag.dest:
            options["dest"] = flag.dest
        if flag.switch:
            groups[flag.group].add_argument(flag.name, action=Switch, help=flag.help_text(),
                                            **options)
            continue
        groups[flag.group].add_argument(flag.name, type=flag.kind, metavar=flag.metavar,
                                        help=flag.help_text(), **options)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags and environment, validated, with the list flags resolved (exit 2 on bad input):
    flags win; else the variable (comma-separated); else the default. ``base_urls`` and
    ``stream_urls`` are lists, ``symbols`` one tuple without repeats."""
    args = parser.parse_args(argv)
    for flag in FLAGS:
        dest = flag.dest or flag.name[2:].replace("-", "_")
        if not flag.many or not hasattr(args, dest):
            continue
        given = getattr(args, dest)
        if not given:
            text = os.environ.get(flag.env)
            if text is None or (flag.blank_is_unset and not text):
                text = flag.default
            items = [] if text is None else text.split(",") if flag.split else [text]
            try:
                given = [flag.kind(item) for item in items]
            except argparse.ArgumentTypeError as exc:
                parser.error(f"{flag.env}: {exc}")
        setattr(args, dest, given)
    if hasattr(args, "symbols"):
        args.symbols = tuple(dict.fromkeys(symbol for listed in args.symbols for symbol in listed))
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
