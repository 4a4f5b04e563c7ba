"""The HTTP client: parameters, retries, cool-downs, typed errors and accounting."""

from __future__ import annotations

import json
import re
import socket
import ssl
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from urllib3.exceptions import ReadTimeoutError
from conftest import BASE, FakeClock, calls_to, connection_error, load
from standin import running_standin

from collector import binance
from collector.binance import BinanceClient
from collector.errors import (
    NOT_BINANCE_HINT,
    TLS_FAILED_HINT,
    TLS_UNTRUSTED_HINT,
    ApiError,
    BadResponse,
    NotAttempted,
    RateLimited,
    RestrictedLocation,
    UpstreamUnavailable,
)
from collector.models import parse_book_tickers

TICKER = f"{BASE}/api/v3/ticker/24hr"


def client_for(clock: FakeClock, **kwargs: object) -> BinanceClient:
    return BinanceClient(clock=clock, wall=clock.wall, sleep=clock.sleep,  # type: ignore[arg-type]
                         **kwargs)


def query(call: responses.Call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url or "").query)


def test_calls_use_binance_parameters_and_record_weight(
    market_mock: responses.RequestsMock, clock: FakeClock
) -> None:
    client = client_for(clock)
    assert "ETHBTC" in client.exchange_info()
    assert len(client.tickers_24h()) == 25
    book = client.order_book("SOLBTC", 200)
    tops = client.book_tickers(["WLDUSDT", "FLOKIUSDT"])
    assert len(book.bids) == 37 and set(tops) >= {"FLOKIUSDT", "WLDUSDT"}
    info_call, ticker_call, depth_call, book_call = list(market_mock.calls)[0:4]
    # only what the product uses: TRADING symbols, no permission sets, the MINI ticker
    assert query(info_call) == {"symbolStatus": ["TRADING"], "showPermissionSets": ["false"]}
    assert query(ticker_call) == {"type": ["MINI"], "symbolStatus": ["TRADING"]}
    assert query(depth_call) == {"symbol": ["SOLBTC"], "limit": ["200"]}
    # one batched call, symbols as a compact JSON array
    assert json.loads(query(book_call)["symbols"][0]) == ["FLOKIUSDT", "WLDUSDT"]
    assert client.used_weight == 229
    assert client.request_counts() == {
        ("/api/v3/exchangeInfo", "200"): 1, ("/api/v3/ticker/24hr", "200"): 1,
        ("/api/v3/depth", "200"): 1, ("/api/v3/ticker/bookTicker", "200"): 1,
    }
    assert all(call.request.req_kwargs["timeout"] == (3.0, 3.0) for call in market_mock.calls)


@responses.activate
def test_5xx_is_retried_with_backoff_then_succeeds(clock: FakeClock) -> None:
    responses.get(TICKER, status=502)
    responses.get(TICKER, json=load("ticker_24hr.json"))
    client = client_for(clock, retries=2, backoff=0.5)
    assert len(client.tickers_24h()) == 25
    assert clock.now == 1000.5  # one backoff pause, on the injected clock
    assert client.request_counts() == {(
        "/api/v3/ticker/24hr", "502"): 1, ("/api/v3/ticker/24hr", "200"): 1}


@responses.activate
def test_retries_are_limited_and_every_attempt_counted(clock: FakeClock) -> None:
    responses.get(TICKER, status=503)
    client = client_for(clock, retries=2, backoff=0.1)
    with pytest.raises(UpstreamUnavailable, match="HTTP 503 .after 3 attempts"):
        client.tickers_24h()
    assert client.request_counts() == {("/api/v3/ticker/24hr", "503"): 3}
    assert clock.now == pytest.approx(1000.3)  # 0.1 + 0.2


@responses.activate
def test_timeouts_and_connection_errors_are_retried_and_counted_as_error(clock: FakeClock) -> None:
    responses.get(TICKER, body=requests.ReadTimeout("slow"))
    responses.get(TICKER, body=connection_error("reset"))
    client = client_for(clock, retries=1)
    with pytest.raises(UpstreamUnavailable, match="after 2 attempts"):
        client.tickers_24h()
    assert client.request_counts() == {("/api/v3/ticker/24hr", "error"): 2}


@responses.activate
def test_connection_failure_moves_to_the_next_base_url(clock: FakeClock) -> None:
    responses.get(TICKER, body=connection_error("refused"))
    responses.get("https://data-api.binance.vision/api/v3/ticker/24hr", json=[])
    client = client_for(clock, base_urls=(BASE, "https://data-api.binance.vision/"))
    assert not client.tickers_24h()
    assert not client.tickers_24h()  # sticks with the one that worked
    assert calls_to(responses.mock, "api.binance.com") == 1
    assert calls_to(responses.mock, "binance.vision") == 2


@pytest.mark.parametrize("status", [429, 418])
@responses.activate
def test_rate_limit_starts_a_cool_down_for_every_endpoint(status: int, clock: FakeClock) -> None:
    """Binance limits per IP: after 429/418 nothing may be sent anywhere until Retry-After."""
    responses.get(TICKER, status=status, headers={"Retry-After": "30"},
                  json={"code": -1003, "msg": "Too much request weight used"})
    responses.get(f"{BASE}/api/v3/exchangeInfo", json=load("exchange_info.json"))
    client = client_for(clock, retries=3)
    with pytest.raises(RateLimited) as err:
        client.tickers_24h()
    assert err.value.retry_after == 30
    assert len(responses.calls) == 1  # never retried
    clock.advance(29)
    with pytest.raises(RateLimited, match="no request sent"):
        client.exchange_info()
    assert len(responses.calls) == 1
    assert client.cool_down_remaining() == 1
    clock.advance(1)
    assert "ETHBTC" in client.exchange_info()
    assert client.request_counts()[("/api/v3/ticker/24hr", str(status))] == 1


@responses.activate
def test_a_waf_403_cools_down_like_a_rate_limit_doubling_up_to_10_minutes(
        clock: FakeClock) -> None:
    """403 "can indicate a rate limit violation" (rest-api.md): back off, never retry."""
    responses.get(TICKER, status=403, body="<html>403 Forbidden</html>",
                  content_type="text/html")
    client = client_for(clock, retries=3)
    waits = []
    for _ in range(6):
        with pytest.raises(RateLimited, match="HTTP 403, blocked by Binance's WAF") as err:
            client.tickers_24h()
        assert err.value.kind == "rate_limited"
        waits.append(client.cool_down_remaining())
        with pytest.raises(RateLimited, match="no request sent"):
            client.exchange_info()  # every endpoint waits
        clock.advance(waits[-1])
    assert waits == [60, 120, 240, 480, 600, 600]
    assert len(responses.calls) == 6  # one per cool-down, none retried
    responses.replace(responses.GET, TICKER, json=[])
    assert not client.tickers_24h()  # an answer again: the next 403 starts at 60 s
    responses.replace(responses.GET, TICKER, status=403, headers={"Retry-After": "45"})
    with pytest.raises(RateLimited):
        client.tickers_24h()
    assert client.cool_down_remaining() == 45  # Retry-After, when sent, is obeyed
    responses.replace(responses.GET, TICKER, status=403)
    clock.advance(45)
    with pytest.raises(RateLimited):
        client.tickers_24h()
    assert client.cool_down_remaining() == 60


def test_unicode_symbols_go_out_as_percent_encoded_utf8(clock: FakeClock) -> None:
    """Symbols may be non-ASCII since 2025-12: json.dumps' \\u escapes would be -1100."""
    symbol = "币安人生USDT"
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/api/v3/ticker/bookTicker", json=[
            {"symbol": symbol, "bidPrice": "0.17569", "bidQty": "1", "askPrice": "0.1757",
             "askQty": "2"}])
        mock.get(f"{BASE}/api/v3/depth", json={"lastUpdateId": 1, "bids": [], "asks": []})
        tops = client_for(clock).book_tickers([symbol])
        client_for(clock).order_book(symbol, 5)
        book_url, depth_url = (call.request.url or "" for call in mock.calls)
    assert tops[symbol].ask_price == Decimal("0.1757")
    assert "symbols=%5B%22%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT%22%5D" in book_url
    assert "symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT" in depth_url


@responses.activate
def test_the_weight_limit_comes_from_exchange_info(clock: FakeClock) -> None:
    """REQUEST_WEIGHT per minute, as exchangeInfo announces it; 6000 until then."""
    info = load("exchange_info.json")
    responses.get(f"{BASE}/api/v3/exchangeInfo", json=info)
    client = client_for(clock)
    assert client.weight_limit == 6000
    info["rateLimits"] = [
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "DAY", "intervalNum": 1, "limit": 10}]
    responses.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=info)
    client.exchange_info()
    assert client.weight_limit == 1200
    del info["rateLimits"]  # announces none: the last one stands
    responses.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=info)
    client.exchange_info()
    assert client.weight_limit == 1200
    info["rateLimits"] = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                           "intervalNum": 1, "limit": "6000"}, "junk"]
    responses.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=info)
    assert "ETHBTC" in client.exchange_info()  # an informative figure never fails the symbols
    assert client.weight_limit == 1200


@responses.activate
def test_unreachable_binance_comes_with_a_hint(clock: FakeClock) -> None:
    """No connection to any base URL: say what to try, not only what failed."""
    responses.get(TICKER, body=connection_error("dns"))
    with pytest.raises(UpstreamUnavailable) as err:
        client_for(clock, retries=0).tickers_24h()
    assert err.value.unreachable and err.value.hint is not None
    assert "--base-url" in err.value.hint and "make demo" in err.value.hint
    # the demo listens on make run's port: the hint says how not to clash with it, and
    # no longer asks for the simulator's URL as --base-url (the demo runs its own exporter)
    assert "stop a running `make run` first" in err.value.hint
    assert "`make demo PORT=9100`" in err.value.hint
    assert "to give as --base-url" not in err.value.hint
    responses.replace(responses.GET, TICKER, status=502)
    with pytest.raises(UpstreamUnavailable) as err:
        client_for(clock, retries=0).tickers_24h()
    assert not err.value.unreachable and err.value.hint is None  # Binance answered


@pytest.mark.parametrize(("header", "cool_down"), [
    ("soon", 60), ("0", 60), ("-5", 60), ("nan", 60), ("inf", 3 * 86400), ("1e12", 3 * 86400)])
@responses.activate
def test_unusable_retry_after_values_are_bounded(header: str, cool_down: float,
                                                 clock: FakeClock) -> None:
    """A missing or odd header cools down a minute; none may silence us for ever."""
    responses.get(TICKER, status=429, headers={"Retry-After": header})
    client = client_for(clock)
    with pytest.raises(RateLimited):
        client.tickers_24h()
    assert client.cool_down_remaining() == cool_down


@responses.activate
def test_451_suggests_another_base_url(clock: FakeClock) -> None:
    responses.get(TICKER, status=451, json={"code": 0, "msg": "restricted location"})
    with pytest.raises(RestrictedLocation, match="refuses this location") as err:
        client_for(clock).tickers_24h()
    assert err.value.hint is not None and "another --base-url" in err.value.hint
    assert "Binance.US, a separate exchange with other listings" in err.value.hint


@responses.activate
def test_other_4xx_become_api_errors_with_binance_code(clock: FakeClock) -> None:
    responses.get(f"{BASE}/api/v3/depth", status=400,
                  json={"code": -1121, "msg": "Invalid symbol."})
    with pytest.raises(ApiError) as err:
        client_for(clock).order_book("NOPE", 200)
    assert (err.value.status, err.value.code, err.value.msg) == (400, -1121, "Invalid symbol.")
    assert "-1121" in str(err.value) and "/api/v3/depth" in str(err.value)
    assert len(responses.calls) == 1


@responses.activate
def test_4xx_without_a_binance_body_says_it_is_not_binance(clock: FakeClock) -> None:
    """A web server that is not Binance's API (or a --base-url with a path) answers 404 with
    a page of its own: the line says so, instead of 'Binance error None: Not Found'."""
    responses.get(TICKER, status=404, body="<html>not found</html>")
    with pytest.raises(ApiError) as err:
        client_for(clock).tickers_24h()
    assert str(err.value) == ("/api/v3/ticker/24hr: HTTP 404 Not Found "
                              "(not a Binance API answer: no error code)")
    assert err.value.hint == NOT_BINANCE_HINT
    responses.replace(responses.GET, TICKER, status=400, json=["odd"])
    with pytest.raises(ApiError) as err:
        client_for(clock).tickers_24h()
    assert str(err.value) == ("/api/v3/ticker/24hr: HTTP 400 Bad Request "
                              "(not a Binance API answer: no error code)")
    responses.replace(responses.GET, TICKER, status=400,
                      json={"code": -1100, "msg": "Illegal characters."})
    with pytest.raises(ApiError) as err:  # Binance's own: its code, and no hint
        client_for(clock).tickers_24h()
    assert str(err.value) == ("/api/v3/ticker/24hr: HTTP 400, Binance error -1100: "
                              "Illegal characters.")
    assert err.value.hint is None


TLS_FIXTURES = Path(__file__).parent / "fixtures" / "tls"


def loopback_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS_FIXTURES / "loopback.pem", TLS_FIXTURES / "loopback.key")
    return context


def test_an_untrusted_certificate_names_its_cause_in_one_line() -> None:
    """urllib3's message is 'HTTPSConnectionPool(host=..., port=...): Max retries exceeded
    with url: ... (Caused by SSLError(...' and was cut off before the cause. The line names
    the cause, and the hint says what to do (a real handshake with a self-signed
    certificate on loopback)."""
    with running_standin(tls=loopback_tls()) as server:
        with pytest.raises(UpstreamUnavailable) as err:
            BinanceClient(base_urls=[server.url], retries=0).tickers_24h()
    assert re.fullmatch(
        rf"/api/v3/ticker/24hr: connection to {server.url} failed: TLS: certificate verify "
        r"failed: self[- ]signed certificate \(after 1 attempts\)", str(err.value))
    assert err.value.hint == TLS_UNTRUSTED_HINT and not err.value.unreachable


def test_the_hints_remedy_for_an_untrusted_certificate_works(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE, which the hint names, is what requests trusts."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS_FIXTURES / "loopback.pem"))
    with running_standin(tls=loopback_tls()) as server:
        assert len(BinanceClient(base_urls=[server.url]).tickers_24h()) == 25


def test_https_to_a_plain_http_server_names_tls_in_one_line() -> None:
    with running_standin() as server:
        url = server.url.replace("http://", "https://")
        with pytest.raises(UpstreamUnavailable) as err:
            BinanceClient(base_urls=[url], retries=0).tickers_24h()
    text = str(err.value)
    assert text.startswith(f"/api/v3/ticker/24hr: connection to {url} failed: TLS: "), text
    assert text.endswith(" (after 1 attempts)") and len(text) < 160, text
    assert "Pool" not in text and "_ssl.c" not in text and "[SSL" not in text, text
    assert err.value.hint == TLS_FAILED_HINT


def test_tls_gist_without_openssl_decorations() -> None:
    assert binance._tls_gist(  # pylint: disable=protected-access
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")) \
        == "TLS: wrong version number"
    assert binance._tls_gist(ssl.SSLError("odd")) == "TLS: odd"  # pylint: disable=protected-access


@responses.activate
def test_malformed_json_is_a_bad_response_naming_the_endpoint(clock: FakeClock) -> None:
    responses.get(TICKER, body="[{\"symbol\": ")
    with pytest.raises(BadResponse, match="/api/v3/ticker/24hr: field body: not valid JSON"):
        client_for(clock).tickers_24h()


@responses.activate
def test_deadline_stops_retries_and_caps_the_timeout(clock: FakeClock) -> None:
    """A refresh must finish inside Prometheus' scrape timeout, retries included."""
    responses.get(TICKER, status=500)
    client = client_for(clock, retries=5, backoff=1.0, timeout=3.0)
    with pytest.raises(UpstreamUnavailable, match="after 1 attempts"):
        client.tickers_24h(deadline=clock.now + 0.5)
    assert responses.calls[0].request.req_kwargs["timeout"] == (0.5, 0.5)
    with pytest.raises(NotAttempted, match="no time left"):
        client.tickers_24h(deadline=clock.now)
    assert len(responses.calls) == 1


@responses.activate
def test_used_weight_is_the_highest_of_the_current_minute(clock: FakeClock) -> None:
    """Parallel answers arrive out of order; a new minute starts a new count."""
    for weight in ("40", "25", "44"):
        responses.get(TICKER, json=[], headers={"X-MBX-USED-WEIGHT-1M": weight})
    client = client_for(clock)
    client.tickers_24h()
    client.tickers_24h()
    assert client.used_weight == 40
    assert client.used_weight_this_minute() == 40
    clock.advance(60)
    assert client.used_weight_this_minute() is None  # nothing sent this minute: unknown
    client.tickers_24h()
    assert client.used_weight == 44


def test_a_client_needs_a_base_url() -> None:
    with pytest.raises(ValueError):
        BinanceClient(())


@pytest.mark.parametrize(
    ("raised", "gist", "unreachable"),
    [(connection_error("dns"), "cannot resolve the host name", True),
     (connection_error("refused"), "connection refused", True),
     (connection_error("reset"), "connection reset", False),
     (connection_error("closed"), "connection closed without an answer", False),
     (connection_error("cut"), "connection closed in the middle of the answer", False),
     (requests.ConnectionError("x" * 300), "x" * 157 + "...", False)],
)
@responses.activate
def test_connection_errors_are_summed_up_in_a_few_words(
    raised: requests.RequestException, gist: str, unreachable: bool, clock: FakeClock
) -> None:
    """urllib3's messages run to hundreds of characters; a log line needs the gist. Told by
    the types of the exceptions requests wraps, not by matching their text."""
    responses.get(TICKER, body=raised)
    with pytest.raises(UpstreamUnavailable) as err:
        client_for(clock, retries=0).tickers_24h()
    assert str(err.value) == (
        f"/api/v3/ticker/24hr: connection to {BASE} failed: {gist} (after 1 attempts)")
    assert err.value.unreachable == unreachable  # no connection made: try the next base URL


@responses.activate
def test_every_base_url_is_tried_within_one_attempt(clock: FakeClock) -> None:
    """Moving on to a fallback is not a retry: nothing reached Binance. Even with --retries 0."""
    refused = connection_error("refused")
    responses.get(TICKER, body=refused)
    responses.get("https://b.example/api/v3/ticker/24hr", body=refused)
    responses.get("https://c.example/api/v3/ticker/24hr", json=[])
    client = client_for(clock, retries=0,
                        base_urls=(BASE, "https://b.example", "https://c.example"))
    assert not client.tickers_24h()
    assert [call.request.url.split("/api/")[0] for call in responses.calls] == [  # type: ignore
        BASE, "https://b.example", "https://c.example"]


@responses.activate
def test_a_trickling_answer_is_cut_off_at_the_deadline() -> None:
    """requests' read timeout bounds each read, not the body: the budget is checked per chunk."""
    ticks = iter(range(100))

    def slow_clock() -> float:  # every look at the clock is 1 s later
        return float(next(ticks))

    responses.get(TICKER, body=b"[" + b" " * 1_000_000 + b"]")
    client = BinanceClient(clock=slow_clock, sleep=lambda s: None, retries=3)
    with pytest.raises(UpstreamUnavailable, match="did not arrive within the refresh budget"):
        client.tickers_24h(deadline=3.0)
    assert len(responses.calls) == 1


@responses.activate
def test_a_book_ticker_answer_missing_a_symbol_is_a_bad_response(clock: FakeClock) -> None:
    responses.get(f"{BASE}/api/v3/ticker/bookTicker", json=load("book_ticker.json")[:1])
    with pytest.raises(BadResponse, match="symbol WLDUSDT: missing from the answer"):
        client_for(clock).book_tickers(["FLOKIUSDT", "WLDUSDT"])


@responses.activate
def test_book_ticker_bodies_go_to_models_undecoded(clock: FakeClock) -> None:
    """models decodes them typed; what is not JSON is named as from any other endpoint."""
    responses.get(f"{BASE}/api/v3/ticker/bookTicker", body='[{"symbol": ')
    with pytest.raises(BadResponse, match="/api/v3/ticker/bookTicker: field body: not valid JSON"):
        client_for(clock).book_tickers(None)
    responses.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker",
                      body=json.dumps(load("book_ticker.json")))
    tops = client_for(clock).book_tickers(None)
    assert dict(tops) == dict(parse_book_tickers(load("book_ticker.json")))


@responses.activate
def test_451_moves_on_to_the_next_base_url(clock: FakeClock) -> None:
    """A restricted location is a property of the host: the fallback the user gave may work."""
    responses.get(TICKER, status=451, json={"code": 0, "msg": "restricted"})
    responses.get("https://data-api.binance.vision/api/v3/ticker/24hr", json=[])
    client = client_for(clock, retries=0,
                        base_urls=(BASE, "https://data-api.binance.vision"))
    assert not client.tickers_24h()
    assert not client.tickers_24h()  # and keeps to it
    assert calls_to(responses.mock, "api.binance.com") == 1


@responses.activate
def test_a_weight_header_that_is_not_ascii_digits_is_ignored(clock: FakeClock) -> None:
    """'²'.isdigit() is True and int('²') raises: that must not reach the scrape."""
    responses.get(TICKER, json=[], headers={"X-MBX-USED-WEIGHT-1M": "²"})
    client = client_for(clock)
    assert not client.tickers_24h()
    assert client.used_weight is None


def test_a_4xx_whose_body_breaks_off_still_gives_a_reason() -> None:
    """Reading an error body can fail too (a proxy's 429 cut short): not an escape route."""
    class BrokenBody(requests.Response):
        def json(self, **_: object) -> object:
            raise requests.exceptions.ChunkedEncodingError("connection broken")

    response = BrokenBody()
    response.status_code, response.reason = 400, "Bad Request"
    assert binance._binance_error(response) == (None, "Bad Request")  # pylint: disable=W0212


def test_a_real_refused_connection_is_told_by_type() -> None:
    """A loopback port bound but not listening refuses: no hand-built exception involved."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # held, not listening: nobody else can take it
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        with pytest.raises(UpstreamUnavailable) as err:
            BinanceClient([url], retries=0).tickers_24h()
    assert err.value.reason == f"connection to {url} failed: connection refused (after 1 attempts)"
    assert err.value.unreachable


def test_a_fallback_with_no_time_left_reports_what_was_sent(clock: FakeClock) -> None:
    """The first base URL used the whole budget on a connect timeout: that failure is the
    answer (unreachable, with its hint), not "nothing sent"."""
    def slow_connect(_: Any) -> Any:
        clock.advance(3)
        raise requests.ConnectTimeout("connect timed out")

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.GET, TICKER, callback=slow_connect)
        client = client_for(clock, retries=0, base_urls=(BASE, "https://b.example"))
        with pytest.raises(UpstreamUnavailable) as err:
            client.get("/api/v3/ticker/24hr", {}, deadline=clock() + 3)
    assert err.value.unreachable and "connect timed out" in err.value.reason


@responses.activate
def test_parallel_403s_double_the_cool_down_once(clock: FakeClock) -> None:
    """Five depth calls answered 403 together are one WAF block, not five: 60 s, not 600."""
    responses.get(TICKER, status=403)
    client = client_for(clock)
    answer = requests.get(TICKER, timeout=1)
    for _ in range(5):
        with pytest.raises(RateLimited):
            client._raise_for_status("/api/v3/depth", answer, BASE)  # pylint: disable=protected-access
    assert client.cool_down_remaining() == 60


@responses.activate
def test_a_read_timeout_in_the_middle_of_the_body_is_a_timeout(clock: FakeClock) -> None:
    responses.get(TICKER, body=requests.ConnectionError(
        ReadTimeoutError(None, "/", "Read timed out.")))  # type: ignore[arg-type]
    with pytest.raises(UpstreamUnavailable, match=r"timed out after 3\.0 s \(after 1 attempts\)"):
        client_for(clock, retries=0).tickers_24h()
