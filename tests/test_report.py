"""binance-report: exact JSON and text answers, Q5 ticks, flags and exit codes."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
import responses
from conftest import BASE, FakeClock, calls_to, load, register_market
from standin import running_standin

from binance_simulator.testkit import popen

from collector import report
from collector.binance import BinanceClient
from collector.records import Outcome, Settings, Spreads
from collector.rest_source import RestSource

GOLDEN = Path(__file__).parent / "golden"
BOOKS = ["ETHBTC", "DOGEBTC", "FETBTC", "SOLBTC", "WLDBTC"]


def notional(symbol: str, side: str) -> str:
    """Σ price × qty of the first 200 fixture levels, computed here independently."""
    levels = load(f"depth/{symbol}.json")[side][:200]
    total = sum((Decimal(p) * Decimal(q) for p, q in levels), Decimal(0))
    return report.plain(total) or ""


EXPECTED: dict[str, Any] = {
    "top_btc_by_volume": [
        {"symbol": "ETHBTC", "volume": "20251.6576", "quote_volume": "1159.60641773"},
        {"symbol": "DOGEBTC", "volume": "209717254", "quote_volume": "536.58103871"},
        {"symbol": "FETBTC", "volume": "9380227", "quote_volume": "409.2171362"},
        {"symbol": "SOLBTC", "volume": "171272.56", "quote_volume": "366.70482724"},
        {"symbol": "WLDBTC", "volume": "2326819.5", "quote_volume": "354.82202202"},
    ],
    "top_usdt_by_trades": [
        {"symbol": "FLOKIUSDT", "trades": 3877580}, {"symbol": "WLDUSDT", "trades": 2165220},
        {"symbol": "BTCUSDT", "trades": 1460540}, {"symbol": "SHIBUSDT", "trades": 1422923},
        {"symbol": "PEPEUSDT", "trades": 1402169},
    ],
    "order_book_notional": {
        s: {"bids": notional(s, "bids"), "asks": notional(s, "asks"),
            "bid_levels": 37 if s == "SOLBTC" else 200, "ask_levels": 200}
        for s in BOOKS
    },
    "spreads": {"FLOKIUSDT": "0.00000001", "WLDUSDT": "0.001", "BTCUSDT": "0.01",
                "SHIBUSDT": "0.00000001", "PEPEUSDT": "0.00000001"},
}


@pytest.fixture
def source(clock: FakeClock) -> Iterator[RestSource]:
    m = RestSource(BinanceClient(clock=clock, sleep=clock.sleep), Settings(ttl_spreads=1),
               clock=clock, wall=clock.wall)
    yield m
    m.close()


def run(source: RestSource, clock: FakeClock, fmt: str, count: int) -> list[str]:
    out = io.StringIO()
    report.run(source, fmt=fmt, count=count, interval=10, out=out, sleep=clock.sleep, clock=clock)
    return out.getvalue().splitlines()


def test_plain_never_prints_exponents_or_float_noise() -> None:
    assert report.plain(Decimal("1E-8")) == "0.00000001"
    assert report.plain(Decimal("0.01000000")) == "0.01"
    assert report.plain(Decimal("69010.00000000")) == "69010"
    assert report.plain(Decimal("1E+3")) == "1000"
    assert report.plain(Decimal("0E-8")) == "0"
    assert report.plain(None) is None


def test_json_answers_are_exact(market_mock: responses.RequestsMock, source: RestSource,
                                clock: FakeClock) -> None:
    lines = run(source, clock, "json", 0)
    assert len(lines) == 1
    assert json.loads(lines[0]) == EXPECTED
    del market_mock


def test_json_ticks_have_time_spreads_and_deltas(market_mock: responses.RequestsMock,
                                                 source: RestSource, clock: FakeClock) -> None:
    lines = run(source, clock, "json", 3)
    ticks = [json.loads(line) for line in lines[1:]]
    assert [t["time"] for t in ticks] == [
        "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"]
    assert ticks[0]["deltas"] == dict.fromkeys(EXPECTED["spreads"])  # first tick: no delta
    assert ticks[1]["spreads"] == EXPECTED["spreads"]
    assert ticks[1]["deltas"] == dict.fromkeys(EXPECTED["spreads"], "0")
    # the first tick reuses Q4's observation; each later tick asks Binance once
    assert calls_to(market_mock, "/bookTicker") == 3


def test_text_report_matches_the_golden_file(market_mock: responses.RequestsMock,
                                             source: RestSource, clock: FakeClock) -> None:
    """Regenerate with: BINANCE_REGENERATE=1 pytest tests/test_report.py (then review the diff)."""
    text = "\n".join(run(source, clock, "text", 2)) + "\n"
    golden = GOLDEN / "report.txt"
    if __import__("os").environ.get("BINANCE_REGENERATE"):
        golden.write_text(text)  # pragma: no cover
    assert text == golden.read_text()
    del market_mock


def test_text_marks_an_unavailable_spread(source: RestSource, clock: FakeClock) -> None:
    tops = load("book_ticker.json")
    tops[1]["askPrice"] = "0.00000000"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock, book_ticker=tops)
        lines = run(source, clock, "text", 1)
    assert re.search(r"WLDUSDT +10\.838 +- +unavailable", "\n".join(lines))
    assert any(re.search(r"WLDUSDT +spread +unavailable +delta +-", line) for line in lines)


def test_main_prints_json_and_exits_0(market_mock: responses.RequestsMock,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert report.main(["--count", "0", "--format", "json"], out=out) == 0
    assert json.loads(out.getvalue()) == EXPECTED
    del market_mock, capsys


@responses.activate
def test_rank_by_base_switches_q1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_RANK_BY", "base")
    monkeypatch.setenv("BINANCE_COUNT", "0")
    monkeypatch.setenv("BINANCE_FORMAT", "json")
    register_market(responses.mock,
                    depth=lambda req: (200, {}, json.dumps(
                        {"lastUpdateId": 1, "bids": [], "asks": []})))
    out = io.StringIO()
    assert report.main([], out=out) == 0
    answer = json.loads(out.getvalue())
    assert [e["symbol"] for e in answer["top_btc_by_volume"]] == [
        "DOGEBTC", "LINABTC", "GALABTC", "FETBTC", "WLDBTC"]


@responses.activate
def test_upstream_failure_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Q1-Q4 cannot be answered: one line naming endpoint and reason, then what to try."""
    responses.get(f"{BASE}/api/v3/exchangeInfo", json=load("exchange_info.json"))
    responses.get(f"{BASE}/api/v3/ticker/24hr", status=451, json={"code": 0, "msg": "no"})
    assert report.main(["--count", "0"], out=io.StringIO()) == 1
    error, hint = capsys.readouterr().err.splitlines()
    assert "Traceback" not in error
    assert error.startswith("binance-report: /api/v3/ticker/24hr: HTTP 451")
    assert hint.startswith("binance-report: try another --base-url")
    assert "Binance.US, a separate exchange" in hint


@responses.activate
def test_a_failed_q5_tick_is_logged_and_the_log_goes_on(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Good, bad, good: three ticks printed, the bad one as an error line; exit 1."""
    register_market(responses.mock)
    monkeypatch.setattr(report.time, "sleep", lambda s: None)
    good = load("book_ticker.json")
    responses.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=good)
    responses.add(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", body="not json")
    responses.add(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=good)
    out = io.StringIO()
    assert report.main(["--count", "3", "--interval", "1", "--format", "json"], out=out) == 1
    ticks = [json.loads(line) for line in out.getvalue().splitlines()[1:]]
    assert [set(t) for t in ticks] == [{"time", "spreads", "deltas"}, {"time", "error"},
                                      {"time", "spreads", "deltas"}]
    assert ticks[1]["error"] == "/api/v3/ticker/bookTicker: field body: not valid JSON"
    assert ticks[2]["deltas"]["BTCUSDT"] == "0"  # from the last good observation
    assert capsys.readouterr().err == ""  # nothing the user could do differently


@pytest.mark.parametrize(
    "argv",
    [["--interval", "0"], ["--interval", "-1"], ["--interval", "abc"], ["--count", "-1"],
     ["--top", "0"], ["--depth-levels", "5001"], ["--rank-by", "size"], ["--format", "xml"],
     ["--timeout", "nan"], ["--base-url", "ftp://x"], ["--base-url", "http://h:99999"],
     ["--base-url", "https://api.binance.com/api"], ["--log-level", "loud"], ["--nope"]],
)
def test_bad_usage_exits_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        report.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binance-report: error:")


@pytest.mark.parametrize(("name", "value"), [("BINANCE_LOG_LEVEL", "verbose"),
                                             ("BINANCE_FORMAT", "xml"), ("BINANCE_RANK_BY", "foo"),
                                             ("BINANCE_COUNT", "-2"), ("BINANCE_TOP", "x")])
def test_every_environment_variable_is_validated(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse checks choices only on the command line; env values arrive as defaults."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        report.main([])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(from {name})" in err  # names the variable to fix


def test_choices_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_LOG_LEVEL", "DEBUG")
    assert report.build_parser().parse_args([]).log_level == "debug"


def test_q5_ticks_ask_for_spreads_only(market_mock: responses.RequestsMock,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Q1-Q3 are answered once; 6 ticks over 50 s must not refetch books (weight 125)."""
    monkeypatch.setattr(report.time, "sleep", lambda s: None)
    assert report.main(["--count", "6", "--interval", "10", "--format", "json"],
                       out=io.StringIO()) == 0
    assert calls_to(market_mock, "/depth") == 5
    assert calls_to(market_mock, "/ticker/24hr") == 1
    assert calls_to(market_mock, "/bookTicker") == 6


def test_count_0_prints_no_q5_heading(market_mock: responses.RequestsMock) -> None:
    out = io.StringIO()
    assert report.main(["--count", "0"], out=out) == 0
    assert "Q4" in out.getvalue() and "Q5" not in out.getvalue()
    del market_mock


def test_a_closed_pipe_ends_quietly(market_mock: responses.RequestsMock,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """binance-report | head: no traceback, exit 0."""
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError

    monkeypatch.setattr(report.os, "dup2", lambda *a: None)
    assert report.main(["--count", "0"], out=ClosedPipe()) == 0
    del market_mock


def test_bad_environment_exits_2(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BINANCE_BASE_URL", "https://ok.example,not a url")
    with pytest.raises(SystemExit) as exc:
        report.main(["--count", "0"])
    assert exc.value.code == 2
    assert "BINANCE_BASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("BINANCE_BASE_URL", "https://ok.example")
    monkeypatch.setenv("BINANCE_TIMEOUT", "0")
    with pytest.raises(SystemExit):
        report.main(["--count", "0"])


def test_ctrl_c_ends_the_log_cleanly(market_mock: responses.RequestsMock,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report.time, "sleep", interrupt)
    out = io.StringIO()
    assert report.main(["--format", "json"], out=out) == 0
    assert len(out.getvalue().splitlines()) == 2  # answers, then the first tick
    del market_mock


def test_the_installed_command_against_a_stand_in_server() -> None:
    """docs/report.md's example, as a real process over real HTTP on loopback."""
    command = Path(sys.executable).with_name("binance-report")
    with running_standin() as server:
        done = subprocess.run(
            [str(command), "--base-url", server.url, "--count", "2", "--interval", "1",
             "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, done.stderr
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert lines[0] == EXPECTED
        assert [set(t) for t in lines[1:]] == [{"time", "spreads", "deltas"}] * 2
        assert lines[2]["deltas"] == dict.fromkeys(EXPECTED["spreads"], "0")
        assert server.paths.count("/api/v3/ticker/bookTicker") == 2


def test_sigterm_ends_an_open_ended_report_like_ctrl_c() -> None:
    """docker stop and systemd send SIGTERM: a report that is only waiting ends with 0."""
    command = Path(sys.executable).with_name("binance-report")
    with running_standin() as server, popen(
        [str(command), "--base-url", server.url, "--interval", "10", "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as process:
        first = process.stdout.readline()  # Q1-Q4, then it waits 10 s for the first tick
        assert json.loads(first) == EXPECTED
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_columns_line_up_with_wide_unicode_symbols() -> None:
    """A CJK character takes two terminal columns: padding counts columns, not characters."""
    lines = report.table([["symbol", "spread"], ["币安人生USDT", "0.00003"], ["BTCUSDT", "0.01"]],
                         [False, True])
    assert [report.width(line) for line in lines] == [23, 23, 23]
    assert lines[1] == "  币安人生USDT  0.00003"


def test_ticks_that_went_by_are_skipped_not_caught_up(market_mock: responses.RequestsMock,
                                                      source: RestSource,
                                                      clock: FakeClock) -> None:
    """A tick slower than the interval (or a suspended machine) must not make the next ones
    go out back to back: the log keeps to the grid, skipping the slots that went by."""
    stamps: list[float] = []
    tops = load("book_ticker.json")

    def slow_book_ticker(_: Any) -> tuple[int, dict[str, str], str]:
        stamps.append(clock())
        clock.advance(25 if len(stamps) == 2 else 0)  # the first tick takes 2.5 intervals
        return 200, {}, json.dumps(tops)

    url = f"{BASE}/api/v3/ticker/bookTicker"
    market_mock.remove(responses.GET, url)
    market_mock.add_callback(responses.GET, url, callback=slow_book_ticker)
    started = clock()
    report.run(source, fmt="json", count=4, interval=10, out=io.StringIO(), sleep=clock.sleep,
               clock=clock)
    # Q4's call, then the ticks' (the first tick is Q4's observation)
    assert [stamp - started for stamp in stamps] == [0, 10, 40, 50]  # 20 and 30 went by


def test_the_q5_text_log_keeps_its_columns_from_tick_to_tick() -> None:
    """A log is read down the page: a wider value in one tick must not shift later ticks."""
    out = io.StringIO()
    log = report.Q5Log("text", out)
    for at, spread, delta in ((0, "0.01", None), (10, "12.5", "12.49"), (20, "0.02", "0.01")):
        log.write(Outcome(Spreads(tops={}, spreads={"BTCUSDT": Decimal(spread)},
                                  deltas={"BTCUSDT": Decimal(delta) if delta else None},
                                  at=1_767_225_600 + at)), now=0)
    lines = out.getvalue().splitlines()
    assert lines == ["2026-01-01T00:00:00Z  BTCUSDT  spread  0.01  delta     -",
                     "2026-01-01T00:00:10Z  BTCUSDT  spread  12.5  delta  12.49",
                     "2026-01-01T00:00:20Z  BTCUSDT  spread  0.02  delta   0.01"]  # as wide
    assert log.all_ok


def column_starts(line: str) -> list[int]:
    """Where each column of a Q5 line ends (columns are two spaces apart, numbers
    right-aligned): the offsets of every 'spread', 'delta', 'min' and 'max' label and of the
    end of the value after it."""
    ends = [match.end() for match in re.finditer(r"(spread|delta|min|max)\s+\S+", line)]
    labels = [match.start() for match in re.finditer(r"\b(spread|delta|min|max)\b", line)]
    return labels + ends


def test_every_stream_q5_block_lines_up_with_the_first() -> None:
    """Stream mode: the first tick has no delta ('-') but min and max; sized to its '-',
    the delta column widened at the second tick and pushed min and max right, so the
    first block did not line up with the later ones. Every block now has the same
    columns (the values are those of a run against the simulator)."""
    ticks = [  # (spread, delta, min, max) of two symbols, tick by tick
        {"FLOKIUSDT": ("0.00000005", None, "0.00000001", "0.00000005"),
         "BTCUSDT": ("0.01", None, "0.01", "0.05")},
        {"FLOKIUSDT": ("0.00000001", "0.00000004", "0.00000001", "0.00000005"),
         "BTCUSDT": ("0.04", "0.03", "0.01", "0.05")},
        {"FLOKIUSDT": ("0.00000004", "0.00000003", "0.00000001", "0.00000005"),
         "BTCUSDT": ("0.04", "0", "0.01", "0.05")},
    ]
    out = io.StringIO()
    log = report.Q5Log("text", out)
    for i, tick in enumerate(ticks):
        values = {symbol: [Decimal(v) if v else None for v in row] for symbol, row in tick.items()}
        log.write(Outcome(Spreads(
            tops={}, at=1_767_225_600 + 10 * i,
            spreads={s: v[0] for s, v in values.items()},
            deltas={s: v[1] for s, v in values.items()},
            minimum={s: v[2] for s, v in values.items()},
            maximum={s: v[3] for s, v in values.items()})), now=0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert len({tuple(column_starts(line)) for line in lines}) == 1, "\n".join(lines)
    assert lines[1] == ("2026-01-01T00:00:00Z  BTCUSDT    spread        0.01  delta           -"
                        "  min        0.01  max        0.05")
