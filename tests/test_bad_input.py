"""Every flag and environment variable, given a bad value: one line, exit 2, nothing started."""

from __future__ import annotations

import pytest

from collector import exporter_cli, report, wiring

# (flag, environment variable, bad values): shared by both commands unless noted
COMMON = [
    ("--base-url", "BINANCE_BASE_URL", ["ftp://x", "http://", "api.binance.com",
                                        "http://h:99999", "https://h/api/v3"]),
    ("--timeout", "BINANCE_TIMEOUT", ["0", "-1", "x", "nan", "inf"]),
    ("--retries", "BINANCE_RETRIES", ["-1", "1.5", "many"]),
    ("--top", "BINANCE_TOP", ["0", "-5", "51", "five"]),
    ("--depth-levels", "BINANCE_DEPTH_LEVELS", ["0", "5001", "x"]),
    ("--rank-by", "BINANCE_RANK_BY", ["volume", ""]),
    ("--log-level", "BINANCE_LOG_LEVEL", ["loud", "trace"]),
    ("--weight-budget", "BINANCE_WEIGHT_BUDGET", ["0", "-1", "x", "inf", "6001"]),
    ("--symbols", "BINANCE_SYMBOLS", ["A,,B", ",", "BTC USDT", "ETH\x01BTC", "ETHBTC,"]),
    ("--spreads", "BINANCE_SPREADS", ["every", "top5"]),
]
EXPORTER = COMMON + [
    ("--port", "BINANCE_LISTEN_PORT", ["-1", "65536", "http", "tcp://10.0.0.7:8080"]),
    ("--ttl-spreads", "BINANCE_TTL_SPREADS", ["9.99", "0", "-10", "x"]),
    ("--ttl-books", "BINANCE_TTL_BOOKS", ["5", "x"]),
    ("--ttl-rankings", "BINANCE_TTL_RANKINGS", ["1", "nan"]),
    ("--ttl-exchange", "BINANCE_TTL_EXCHANGE", ["0", "-3600"]),
    ("--refresh-budget", "BINANCE_REFRESH_BUDGET", ["0", "-1", "x"]),
]
REPORT = COMMON + [
    ("--interval", "BINANCE_INTERVAL", ["0", "-1", "x"]),
    ("--count", "BINANCE_COUNT", ["-1", "1.5", "x"]),
    ("--format", "BINANCE_FORMAT", ["xml", "csv"]),
]


COMMANDS = {"binance-exporter": (exporter_cli.main, EXPORTER),
            "binance-report": (report.main, REPORT)}
CASES = [(prog, flag, var, value) for prog, (_, table) in COMMANDS.items()
         for flag, var, values in table for value in values]


@pytest.fixture
def nothing_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command gets as far as building its source or listening."""
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("started despite bad input")

    monkeypatch.setattr(exporter_cli, "serve", refuse)
    monkeypatch.setattr(wiring, "source", refuse)


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("prog", "flag", "var", "value"), CASES)
def test_bad_values_exit_2_with_one_line(prog: str, flag: str, var: str, value: str,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """As a flag, then as its environment variable: each must be refused before starting."""
    main = COMMANDS[prog][0]
    for argv in ([f"{flag}={value}"], []):
        if not argv:
            monkeypatch.setenv(var, value)
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, (argv, var)
        err = capsys.readouterr().err
        assert err.startswith(f"{prog}: error:") and err.count("\n") == 1, err


# flags each valid on its own that together would spend more than --weight-budget (3000/min)
OVER_BUDGET = [
    ("binance-report", ["--interval", "0.01"]),  # bookTicker 100 times a second: 24,000/min
    ("binance-report", ["--top", "50", "--depth-levels", "5000"]),  # 12,500 in the first go
    ("binance-exporter", ["--top", "50", "--depth-levels", "1000", "--ttl-books", "10"]),
    ("binance-exporter", ["--top", "50", "--ttl-books", "20"]),  # 50 × 25 × 3 = 3,750/min
    # one refresh an hour, but all of its 12,500 weight inside one minute
    ("binance-exporter", ["--top", "50", "--depth-levels", "5000", "--ttl-books", "3600"]),
    # 65 books × 25 × 2 = 3,250/min (+ 124)
    ("binance-exporter", ["--symbols", ",".join(f"S{i}" for i in range(60))]),
    # stream mode: 45 books × 25 × 6 resyncs a minute = 6,750, over Binance's own limit
    ("binance-report", ["--source", "stream", "--symbols", ",".join(f"S{i}" for i in range(40))]),
]


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("prog", "argv"), OVER_BUDGET)
def test_settings_that_would_spend_the_rate_limit_are_refused(
    prog: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo must not get the IP banned: refused before any call, naming the way out."""
    with pytest.raises(SystemExit) as exc:
        COMMANDS[prog][0](argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight in one minute (" in err
    assert "), over the weight budget of 3000" in err
    assert ("--interval" in err) == (prog == "binance-report")  # only what that command has


def test_the_refusal_names_what_costs_what(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        exporter_cli.main(["--symbols", ",".join(f"S{i}" for i in range(60))])
    assert "could spend 3374 request weight in one minute (books 2 × 1625 (65 books × 25), " \
        "24 h ticker 80, spreads 6 × 4, exchangeInfo 20), over the weight budget of 3000 " \
        "(--weight-budget, BINANCE_WEIGHT_BUDGET; Binance allows 6000 per IP): raise the " \
        "TTLs (--ttl-*), or lower --top, --depth-levels or the number of --symbols, or " \
        "leave out --depth-bands\n" \
        in capsys.readouterr().err


# over the default budget, within Binance's own limit: a higher --weight-budget allows them
WITHIN_LIMIT = [
    ("binance-report", ["--interval", "0.05"]),  # 225 + 1,200 ticks × 4 = 5,025
    ("binance-report", ["--count", "0", "--interval", "0.01"]),  # no ticks: Q1-Q4 once, 229
    ("binance-exporter", ["--top", "50", "--ttl-books", "20"]),  # 3,874
    ("binance-exporter", ["--symbols", ",".join(f"S{i}" for i in range(60))]),  # 3,374
]


@pytest.mark.parametrize(("prog", "argv"), WITHIN_LIMIT)
def test_a_higher_budget_lets_them_through(prog: str, argv: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(exporter_cli, "serve", lambda *args, **_: started.append(args) or 0)
    monkeypatch.setattr(report, "run", lambda *args, **_: started.append(args) or True)
    assert COMMANDS[prog][0]([*argv, "--weight-budget", "6000"]) == 0
    assert len(started) == 1


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("prog", "argv"), [c for c in OVER_BUDGET if c not in WITHIN_LIMIT])
def test_nothing_lets_through_more_than_binance_allows(prog: str, argv: list[str]) -> None:
    """The budget cannot be raised above Binance's 6,000, so these stay refused."""
    with pytest.raises(SystemExit) as exc:
        COMMANDS[prog][0]([*argv, "--weight-budget", "6000"])
    assert exc.value.code == 2


@pytest.mark.usefixtures("nothing_started")
@pytest.mark.parametrize(("prog", "argv"), [("binance-exporter", ["--ttl-book", "60"]),
                                            ("binance-report", ["--symbol", "ETHBTC"])])
def test_abbreviated_flags_are_refused(prog: str, argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A shortened flag in a manifest must fail, not pass for the one it abbreviates."""
    with pytest.raises(SystemExit) as exc:
        COMMANDS[prog][0](argv)
    assert exc.value.code == 2
    assert f"unrecognized arguments: {argv[0]}" in capsys.readouterr().err
