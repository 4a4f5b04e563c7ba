"""Shared fixtures: recorded Binance answers served through `responses`, and a fake clock
(the test kit's, shared with the benchmarks and tools); how `make test` shares the tests
out between its pytest-xdist workers; the fault matrix printed after the run."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import responses
from urllib3.exceptions import (
    IncompleteRead,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
)
from xdist.scheduler import LoadScopeScheduling

from binance_simulator.testkit import FakeClock

FIXTURES = Path(__file__).parent / "fixtures"
# Modules whose tests share processes a module-scoped fixture starts, and must run in order on
# one worker: test_e2e.py's two chains (each started once; the stream chain after the REST
# chain's load). Every other test may run on any worker, alone.
ONE_WORKER = ("tests/test_e2e.py",)


# it leaves unimplemented what LoadScopeScheduling does (moving pending tests between workers)
class OneWorkerModules(LoadScopeScheduling):  # pylint: disable=abstract-method
    """pytest-xdist's load scheduling with the tests of a ONE_WORKER module as one unit.

    Units go out biggest first, so the end-to-end chains, which take the longest (most of
    it waiting in real time), start at once. (pytest-xdist's own ``xdist_group`` marks do
    the same, but not under pytest 9.2: pytest-dev/pytest-xdist#1386.)
    """

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in ONE_WORKER else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers() -> int | None:
    """``-n auto`` (make test): a worker a core, and one more, as the worker that runs the
    end-to-end chains spends most of their minute and a half waiting in real time.
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when it is set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use (Linux)
        return len(os.sched_getaffinity(0)) + 1
    return (os.cpu_count() or 1) + 1


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """OneWorkerModules for the default distribution (``-n`` without ``--dist``)."""
    if config.getvalue("dist") != "load":
        return None
    return OneWorkerModules(config, log)


# tests/test_faults.py records each passed case's row of the fault matrix as this user
# property, (position of the fault, fault, group, outcome): a user property travels with the
# test's report from the pytest-xdist worker that ran it to the process that prints the matrix
FAULT_MATRIX_ROW = "fault_matrix_row"
FAULT_MATRIX: list[tuple[int, str, str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the fault matrix rows of passed cases, whichever process ran them."""
    if report.when == "call" and report.passed:
        FAULT_MATRIX.extend(value for name, value in report.user_properties
                            if name == FAULT_MATRIX_ROW)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the fault matrix so a reader sees every fault's outcome at a glance."""
    if not FAULT_MATRIX:
        return
    rows = sorted(FAULT_MATRIX)  # in the order of the faults, whatever order they ran in
    groups = ["exchange", "rankings", "books", "spreads", "all"]
    faults = list(dict.fromkeys(fault for _, fault, _, _ in rows))
    cells = {(f, g): o for _, f, g, o in rows}
    width = max(len(f) for f in faults)
    terminalreporter.section("fault matrix (passed cases)")
    terminalreporter.write_line(f"{'fault':<{width}}  " + "  ".join(f"{g:<26}" for g in groups))
    for fault in faults:
        row = "  ".join(f"{cells.get((fault, g), '-'):<26}" for g in groups)
        terminalreporter.write_line(f"{fault:<{width}}  {row}".rstrip())
BASE = "https://api.binance.com"


def load(name: str) -> Any:
    """A fixture file, parsed. Each call returns a new object (tests may mutate theirs)."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()


def depth_callback(request: Any) -> tuple[int, dict[str, str], str]:
    """Serve tests/fixtures/depth/<symbol>.json, truncated to ?limit like Binance."""
    params = request.params
    book = load(f"depth/{params['symbol']}.json")
    limit = int(params.get("limit", 100))
    book["bids"], book["asks"] = book["bids"][:limit], book["asks"][:limit]
    return 200, {"X-MBX-USED-WEIGHT-1M": "25"}, json.dumps(book)


def register_market(
    mock: responses.RequestsMock, base: str = BASE, book_ticker: Any = None,
    depth: Any = depth_callback,
) -> None:
    """Register the four endpoints with the recorded fixtures on ``mock``."""
    mock.get(f"{base}/api/v3/exchangeInfo", json=load("exchange_info.json"),
             headers={"X-MBX-USED-WEIGHT-1M": "20"})
    mock.get(f"{base}/api/v3/ticker/24hr", json=load("ticker_24hr.json"),
             headers={"X-MBX-USED-WEIGHT-1M": "100"})
    mock.add_callback("GET", re.compile(re.escape(f"{base}/api/v3/depth") + r"\?.*"),
                      callback=depth)
    mock.get(f"{base}/api/v3/ticker/bookTicker",
             json=book_ticker if book_ticker is not None else load("book_ticker.json"),
             headers={"X-MBX-USED-WEIGHT-1M": "229"})


@pytest.fixture
def market_mock() -> Iterator[responses.RequestsMock]:
    """All four endpoints answering with the fixtures; fails on any other URL."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_market(mock)
        yield mock


def calls_to(mock: responses.RequestsMock, path: str) -> int:
    """How many requests reached ``path``."""
    return sum(1 for call in mock.calls if call.request.url and path in call.request.url)


def connection_error(kind: str) -> requests.RequestException:
    """The exception requests raises for a failed connection, built the way requests and
    urllib3 build it (the client classifies failures by these types, not by their text)."""
    if kind == "dns":
        cause: Exception = NameResolutionError(
            "api.binance.com", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
        return requests.ConnectionError(MaxRetryError(None, "/", cause))  # type: ignore[arg-type]
    if kind == "refused":
        cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] "  # type: ignore[arg-type]
                                   "Connection refused")
        cause.__cause__ = ConnectionRefusedError(111, "Connection refused")
        return requests.ConnectionError(MaxRetryError(None, "/", cause))  # type: ignore[arg-type]
    if kind == "reset":
        return requests.ConnectionError(ProtocolError(
            "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))
    if kind == "closed":
        return requests.ConnectionError(ProtocolError(
            "Connection aborted.",
            http.client.RemoteDisconnected("Remote end closed connection without response")))
    if kind == "cut":
        return requests.exceptions.ChunkedEncodingError(ProtocolError(
            "Connection broken: IncompleteRead(10 bytes read, 90 more expected)",
            IncompleteRead(10, 90)))
    raise ValueError(kind)
