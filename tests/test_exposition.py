"""The /metrics body: the same bytes as the client library renders, each family rendered once
per refresh, and never a number older than the data behind it."""

# pylint: disable=protected-access

from __future__ import annotations

import gzip
import threading
import zlib
from typing import Any, Callable, Iterator

import pytest
import responses
from conftest import FakeClock, calls_to, load, register_market
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from collector import exporter, exposition, models
from collector.binance import BinanceClient
from collector.exporter import BinanceCollector
from collector.exposition import Exposition, Request
from collector.rest_source import RestSource
from collector.records import Settings

BOOK_TICKER = "https://api.binance.com/api/v3/ticker/bookTicker"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
PER_SCRAPE = ("binance_api_used_weight", "binance_api_cool_down_seconds",
              "binance_scrape_duration_seconds")


class Rig:
    """A collector on a fake clock (scrape durations read 0), its exposition and a registry."""

    def __init__(self, clock: FakeClock) -> None:
        client = BinanceClient(clock=clock, wall=clock.wall, sleep=clock.sleep, retries=0)
        self.source = RestSource(client, Settings(), clock=clock, wall=clock.wall)
        self.collector = BinanceCollector(self.source, clock=clock)
        self.exposition = Exposition(self.collector)
        self.registry = CollectorRegistry()
        self.registry.register(self.collector)

    def text(self, accept: str = "") -> str:
        return self.exposition.fresh(Request(accept)).data.decode()


@pytest.fixture
def rig(clock: FakeClock) -> Iterator[Rig]:
    r = Rig(clock)
    yield r
    r.source.close()


@pytest.mark.parametrize("accept, library", [("", generate_latest),
                                             (OPENMETRICS, generate_openmetrics)])
def test_the_body_is_byte_for_byte_what_the_client_library_renders(
    market_mock: responses.RequestsMock, rig: Rig, accept: str, library: object
) -> None:
    """Rendering family by family and joining must not change a byte, in either format."""
    rig.text(accept)  # first: the refresh
    ours = rig.text(accept)  # second: from the kept bytes
    assert ours == library(rig.registry).decode()  # type: ignore[operator]
    assert ours.endswith("# EOF\n") == (accept == OPENMETRICS)
    assert ours.count("# EOF") <= 1
    del market_mock


def test_nothing_is_fetched_or_waited_for_when_a_refresh_is_due(rig: Rig) -> None:
    """cached() is what the event loop calls: with no data yet it must answer None at once."""
    with responses.RequestsMock() as mock:  # any upstream call would fail here
        assert rig.exposition.cached(Request()) is None
        assert len(mock.calls) == 0


def test_unchanged_data_is_not_rebuilt_and_a_refresh_is_never_hidden(
    rig: Rig, clock: FakeClock
) -> None:
    tops = load("book_ticker.json")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, book_ticker=tops)
        first = rig.collector.collect_groups()  # the refresh...
        again = rig.collector.collect_cached()  # ...and from then on nothing is rebuilt
        assert again is not None
        by_name = {f.name: f for group in again for f in group}
        for family in (f for group in first for f in group):  # the very same objects...
            if family.name not in PER_SCRAPE:
                assert by_name[family.name] is family
            else:  # ...the per-scrape ones are new each time
                assert by_name[family.name] is not family
        assert 'binance_price_spread{quote_asset="USDT",symbol="BTCUSDT"} 0.01' in rig.text()

        tops[2]["askPrice"] = "69010.03000000"  # BTCUSDT spread 0.01 -> 0.03
        mock.replace(responses.GET, BOOK_TICKER, json=tops)
        clock.advance(10)  # the spreads' TTL
        assert rig.exposition.cached(Request()) is None  # due: the loop must hand it off
        text = rig.text()
        assert 'binance_price_spread{quote_asset="USDT",symbol="BTCUSDT"} 0.03' in text
        assert 'binance_price_spread_delta{quote_asset="USDT",symbol="BTCUSDT"} 0.02' in text
        assert ('binance_api_requests_total{code="200",endpoint="/api/v3/ticker/bookTicker"} 2.0'
                in text)
        cached = rig.exposition.cached(Request())
        assert cached is not None and cached.data.decode() == text
        assert calls_to(mock, "/bookTicker") == 2


def test_a_failed_refresh_replaces_the_kept_families(
    market_mock: responses.RequestsMock, rig: Rig, clock: FakeClock
) -> None:
    assert "binance_up 1.0" in rig.text()
    market_mock.replace(responses.GET, BOOK_TICKER, status=503)
    clock.advance(10)
    text = rig.text()
    assert "binance_up 0.0" in text and "binance_price_spread{" not in text
    cached = rig.exposition.cached(Request())
    assert cached is not None and "binance_up 0.0" in cached.data.decode()


def test_each_family_is_rendered_once_per_refresh(
    market_mock: responses.RequestsMock, rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.text()
    rendered: list[str] = []
    real = exposition._Format.__init__

    def counting(self: exposition._Format, encoder: exposition.Encoder) -> None:
        real(self, lambda families: (rendered.extend(f.name for f in families.collect()),
                                     encoder(families))[1])

    monkeypatch.setattr(exposition._Format, "__init__", counting)
    rig2 = Exposition(rig.collector)
    rig2.cached(Request())
    first = list(rendered)
    rendered.clear()
    for _ in range(3):
        rig2.cached(Request())
    assert len(first) > 10  # every family, once
    assert sorted(rendered) == sorted(PER_SCRAPE * 3)
    del market_mock


def test_gzip_and_name_filters_follow_the_client_library(
    market_mock: responses.RequestsMock, rig: Rig
) -> None:
    full = rig.text()
    zipped = rig.exposition.fresh(Request(accept_encoding="gzip, deflate"))
    assert zipped.gzipped and gzip.decompress(zipped.data).decode() == full
    assert not rig.exposition.fresh(Request(accept_encoding="deflate, br")).gzipped
    only = rig.exposition.fresh(Request(names=("binance_up", "binance_api_requests_total")))
    lines = only.data.decode().splitlines()
    names = {line.split()[2] for line in lines if line.startswith("# TYPE")}
    assert names == {"binance_up", "binance_api_requests_total"}
    assert rig.text() == full  # a filtered scrape leaves the full one intact
    del market_mock


def test_a_repeated_name_filter_renders_nothing_until_its_families_change(
    rig: Rig, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client polling ``name[]`` at a high rate is answered from the body kept for those
    names while its families are the same objects; a change is shown by the next poll."""
    tops = load("book_ticker.json")
    spread = Request(names=("binance_price_spread",))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, book_ticker=tops)
        rig.text()
        first = rig.exposition.cached(spread)
        rendered: list[str] = []
        real = exposition._Format.render

        def counting(self: exposition._Format, groups: Any, *args: Any, **kw: Any) -> bytes:
            rendered.extend(f.name for group in groups for f in group)
            return real(self, groups, *args, **kw)

        monkeypatch.setattr(exposition._Format, "render", counting)
        for _ in range(3):
            again = rig.exposition.cached(spread)
            assert again is first  # the kept body itself: nothing rendered
        assert not rendered
        assert first is not None and first.data == generate_latest(
            rig.registry.restricted_registry(spread.names))
        tops[2]["askPrice"] = "69010.03000000"  # BTCUSDT spread 0.01 -> 0.03
        mock.replace(responses.GET, BOOK_TICKER, json=tops)
        clock.advance(10)
        changed = rig.exposition.fresh(spread).data.decode()
        assert 'binance_price_spread{quote_asset="USDT",symbol="BTCUSDT"} 0.03' in changed
        assert rendered == ["binance_price_spread"]
        zipped = rig.exposition.cached(Request(accept_encoding="gzip", names=spread.names))
        assert zipped is not None and gzip.decompress(zipped.data).decode() == changed
        open_metrics = rig.exposition.cached(Request(OPENMETRICS, names=spread.names))
        assert open_metrics is not None and open_metrics.data.decode() == changed + "# EOF\n"
        text = rig.exposition.cached(spread)  # the same names in the other format: its own
        assert text is not None and text.data.decode() == changed


def unpacked(body: bytes) -> bytes:
    """A gzip body's content; it must be exactly one gzip member, properly ended."""
    unzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = unzip.decompress(body)
    assert unzip.eof and not unzip.unused_data
    return data


DATA_GROUPS = 4  # REST mode's: spreads, books, rankings, health
# compressions of a first gzip scrape in REST mode: the books, rankings and health groups
# once each, and the 5 spread families (collector.parted) their one segment, header and part
FIRST_COMPRESSIONS = 3 + 5
SPREAD_FAMILIES = 5  # a spreads refresh compresses each one's changed part again


@pytest.fixture
def compressions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts zlib compressors made from now on; gzip.compress and zlib.compress fail."""
    made: list[int] = []
    real = zlib.compressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return real(*args, **kwargs)

    def refused(*_: Any, **__: Any) -> bytes:
        raise AssertionError("compressed a whole body")

    monkeypatch.setattr(zlib, "compressobj", counting)
    monkeypatch.setattr(zlib, "compress", refused)
    monkeypatch.setattr(gzip, "compress", refused)
    return made


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
def test_a_gzip_scrape_served_from_cache_compresses_nothing(
    market_mock: responses.RequestsMock, rig: Rig, clock: FakeClock, accept: str,
    compressions: list[int]
) -> None:
    """Compression happens once per group of families a refresh changes; a scrape from cache
    only joins kept bytes."""
    zipped = Request(accept, accept_encoding="gzip")
    body = rig.exposition.fresh(zipped)  # the refresh: the data groups are compressed
    assert body.gzipped and len(compressions) == FIRST_COMPRESSIONS
    for _ in range(3):  # the first rebuilds the families (same bytes), then the same objects
        cached, plain = rig.exposition.cached(zipped), rig.exposition.cached(Request(accept))
        assert cached is not None and plain is not None and cached.gzipped
        assert unpacked(cached.data) == plain.data
    assert len(compressions) == FIRST_COMPRESSIONS
    assert len(cached.data) < len(unpacked(cached.data)) / 3  # really compressed

    market_mock.replace(responses.GET, BOOK_TICKER, status=503)  # the next refresh changes data
    clock.advance(10)
    assert unpacked(rig.exposition.fresh(zipped).data) == rig.text(accept).encode()
    # the spreads (gone: five empty families, one run) and the health figures (failed, one
    # more request); not the books or the rankings, whose bytes are unchanged
    assert len(compressions) == FIRST_COMPRESSIONS + 2
    rig.exposition.cached(zipped)
    assert len(compressions) == FIRST_COMPRESSIONS + 2


def test_a_change_renders_and_compresses_only_the_families_it_changes(
    market_mock: responses.RequestsMock, rig: Rig, clock: FakeClock, compressions: list[int]
) -> None:
    """A spreads refresh (in stream mode: a best bid/ask pushed, many times a second) must
    not re-render the books or the rankings: their families stay the very objects rendered
    before, and only the changed groups are compressed again."""
    zipped = Request(accept_encoding="gzip")
    rig.exposition.fresh(zipped)
    before = rig.collector.collect_groups()
    clock.advance(10)  # the spreads' TTL: they (and the request counts) change, nothing else
    after = rig.collector.collect_groups()
    names = [group[0].name for group in before]
    assert names[:4] == ["binance_price_spread", "binance_order_book_notional",
                         "binance_symbol_rank", "binance_up"]
    same = [a is b for a, b in zip(before, after)]
    assert same[:4] == [False, True, True, False]
    assert unpacked(rig.exposition.fresh(zipped).data) == rig.text().encode()
    assert len(compressions) == FIRST_COMPRESSIONS + SPREAD_FAMILIES + 1  # + the health's
    del market_mock


def test_filtered_gzip_scrapes_are_compressed_each_time_and_leave_the_kept_bytes(
    market_mock: responses.RequestsMock, rig: Rig, compressions: list[int]
) -> None:
    full = rig.exposition.fresh(Request(accept_encoding="gzip")).data
    for names in (("binance_up", "binance_scrape_duration_seconds"), ("binance_up",)):
        only = Request(accept_encoding="gzip", names=names)
        assert unpacked(rig.exposition.fresh(only).data) == rig.exposition.fresh(
            Request(names=names)).data
    assert len(compressions) == FIRST_COMPRESSIONS + 2
    assert rig.exposition.fresh(Request(accept_encoding="gzip")).data == full
    assert len(compressions) == FIRST_COMPRESSIONS + 2
    del market_mock


def test_stored_blocks_carry_any_length() -> None:
    for size in (0, 1, 65535, 65536, 200_000):
        text = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        blocks = exposition._stored(text)  # pylint: disable=protected-access
        assert zlib.decompress(blocks + b"\x03\x00", -zlib.MAX_WBITS) == text


def test_the_per_scrape_families_are_the_collectors() -> None:
    """A family missing from PER_SCRAPE would be compressed on every scrape, not once; with
    the data families too, when it splits them from the stored ones (stream mode's age)."""
    per_scrape: Callable[[], Any] = exporter._PerScrape  # pylint: disable=protected-access
    age: Callable[[], Any] = exporter._message_age  # pylint: disable=protected-access
    assert {f.name for f in per_scrape().all()} | {age().name} == exposition.PER_SCRAPE


def test_a_family_built_on_every_scrape_costs_no_compression_of_the_others(
        compressions: list[int]) -> None:
    """Stream mode's collector hands back the same data families and, after the three of
    _PerScrape, a fresh message-age family each scrape: nothing is compressed after the first."""
    data = [GaugeMetricFamily(f"binance_data_{n}", "Data.", value=n) for n in range(20)]

    class StreamLike:
        def collect_cached(self) -> list[Any]:
            return [tuple(data), tuple(exporter._PerScrape().all()),  # pylint: disable=W0212
                    (exporter._message_age(),)]  # pylint: disable=protected-access

    scrapes = Exposition(StreamLike())  # type: ignore[arg-type]
    first = scrapes.cached(Request(accept_encoding="gzip"))
    for _ in range(3):
        assert scrapes.cached(Request(accept_encoding="gzip")) is not None
    assert first is not None and len(compressions) == 1


@pytest.mark.parametrize("names", [
    ("binance_up",), ("binance_up", "binance_api_requests_total"),
    ("binance_api_requests",),  # a counter's family name: no sample has it
    ("binance_exporter_build",), ("binance_exporter_build_info",),
    ("binance_price_spread", "binance_price_spread_delta"), ("no_such_metric",),
])
def test_name_filters_give_exactly_what_the_client_library_gives(
    market_mock: responses.RequestsMock, rig: Rig, clock: FakeClock, names: tuple[str, ...]
) -> None:
    for _ in range(2):  # healthy, then with the spreads failing (their families empty)
        ours = rig.exposition.fresh(Request(names=names)).data
        assert ours == generate_latest(rig.registry.restricted_registry(names))
        market_mock.replace(responses.GET, BOOK_TICKER, status=503)
        clock.advance(10)


def test_made_up_accept_versions_cannot_grow_memory(
    market_mock: responses.RequestsMock, rig: Rig
) -> None:
    rig.text()
    for minor in range(20):
        body = rig.exposition.fresh(Request(f"application/openmetrics-text; version=1.{minor}.0"))
        assert f"version=1.{minor}.0" in body.content_type
    assert len(rig.exposition._formats) == exposition.FORMATS_KEPT
    del market_mock


class _PausingClient(BinanceClient):
    """Answers from the fixtures without a network; the ticker request is counted, then waits
    on ``stored`` before its answer is parsed and stored; the scraper thread named A stops at
    its look at one of the health figures (``pause_in``). Lets a test put one scrape exactly
    inside another's refresh."""

    def __init__(self, clock: FakeClock, pause_in: str) -> None:
        super().__init__(clock=clock, wall=clock.wall, sleep=clock.sleep, retries=0)
        self.pause_in = pause_in
        self.slow = False
        self.counted, self.stored = threading.Event(), threading.Event()
        self.a_paused, self.a_go = threading.Event(), threading.Event()

    def exchange_info(self, deadline: float | None = None) -> Any:
        self._count(models.EXCHANGE_INFO, "200")  # pylint: disable=protected-access
        return models.parse_exchange_info(load("exchange_info.json"))

    def order_book(self, symbol: str, limit: int, deadline: float | None = None) -> Any:
        self._count(models.DEPTH, "200")  # pylint: disable=protected-access
        return models.parse_order_book(load(f"depth/{symbol}.json"), symbol)

    def book_tickers(self, symbols: Any, deadline: float | None = None) -> Any:
        self._count(models.BOOK_TICKER, "200")  # pylint: disable=protected-access
        return models.parse_book_tickers(load("book_ticker.json"))

    def tickers_24h(self, deadline: float | None = None) -> Any:
        self._count(models.TICKER_24H, "200")  # pylint: disable=protected-access
        if self.slow:
            self.counted.set()
            self.stored.wait(5)
        return models.parse_tickers(load("ticker_24hr.json"))

    def _look(self, figure: str) -> None:
        if threading.current_thread().name == "A" and figure == self.pause_in:
            self.a_paused.set()
            self.a_go.wait(5)

    def request_counts(self) -> dict[tuple[str, str], int]:
        self._look("requests")
        return super().request_counts()

    def used_weight_this_minute(self) -> int | None:
        self._look("used weight")
        return super().used_weight_this_minute()

    def cool_down_remaining(self) -> float:
        self._look("cool-down")
        return super().cool_down_remaining()


@pytest.mark.parametrize("pause_in", ["requests", "used weight", "cool-down"])
def test_a_scrape_inside_another_scrapes_refresh_never_pins_old_figures(
    clock: FakeClock, pause_in: str
) -> None:
    """Scrape A stops after its answers, at one of its health figures, while scrape T
    refreshes the ticker: T has sent its request but not yet stored the answer. Whatever A
    keeps, the scrapes after T must show T's refresh."""
    client = _PausingClient(clock, pause_in)
    source = RestSource(client, Settings(ttl_rankings=5.0), clock=clock, wall=clock.wall)
    shown = Exposition(BinanceCollector(source, clock=clock))
    try:
        shown.fresh(Request())
        clock.advance(4)
        a = threading.Thread(target=lambda: shown.cached(Request()), name="A")
        a.start()
        assert client.a_paused.wait(5)
        clock.advance(2)  # the ticker's TTL (5 s) runs out
        client.slow = True
        t = threading.Thread(target=lambda: shown.fresh(Request()), name="T")
        t.start()
        assert client.counted.wait(5)
        client.a_go.set()
        a.join(5)
        client.stored.set()
        t.join(5)
        assert source.snapshot().health.last_refresh["rankings"] == clock.wall()  # T's refresh
        for _ in range(2):
            body = shown.cached(Request())
            assert body is not None
            stamps = {s.labels["group"]: s.value
                      for f in text_string_to_metric_families(body.data.decode())
                      if f.name == "binance_last_refresh_timestamp_seconds" for s in f.samples}
            assert stamps["rankings"] == clock.wall()
    finally:
        client.a_go.set()
        client.stored.set()
        source.close()
