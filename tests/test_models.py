"""Parsing: every field used is validated; a bad one names the endpoint and the field."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from conftest import load

from collector.errors import BadResponse
from collector.models import (
    parse_book_ticker_event,
    parse_book_tickers,
    parse_depth_update,
    parse_exchange_info,
    parse_order_book,
    parse_tickers,
)
from collector.records import BookTop, DepthUpdate
from collector.stream_client import decode_message


def test_exchange_info_keeps_status_and_assets() -> None:
    infos = parse_exchange_info(load("exchange_info.json"))
    eth = infos["ETHBTC"]
    assert (eth.base_asset, eth.quote_asset, eth.status) == ("ETH", "BTC", "TRADING")
    assert eth.trading
    assert not infos["XEMBTC"].trading


def test_exchange_info_ignores_fields_it_does_not_use() -> None:
    """Binance added permissionSets in 2024; the 2023 recording has none. Neither may matter."""
    payload = load("exchange_info.json")
    payload["symbols"][0]["permissionSets"] = [["SPOT"]]
    payload["symbols"][1].pop("status")
    with pytest.raises(BadResponse) as err:
        parse_exchange_info(payload)
    assert err.value.field == "symbols[1].status"
    del payload["symbols"][1]
    assert "ETHBTC" in parse_exchange_info(payload)


def test_parsed_records_are_read_only() -> None:
    """One parsed answer is shared by every consumer of a scrape: nobody may change it."""
    infos = parse_exchange_info(load("exchange_info.json"))
    with pytest.raises(TypeError):
        infos["NEW"] = infos["ETHBTC"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        infos["ETHBTC"].status = "BREAK"  # type: ignore[misc]


def test_tickers_are_exact_decimals_in_answer_order() -> None:
    tickers = parse_tickers(load("ticker_24hr.json"))
    assert tickers[0].symbol == "ETHBTC"
    assert tickers[0].volume == Decimal("20251.65760000")
    assert tickers[0].quote_volume == Decimal("1159.60641773")
    assert tickers[0].trades == 55439


def test_mini_tickers_parse_too() -> None:
    """The client asks for type=MINI (same weight, fewer bytes): no bid/ask fields in it."""
    mini = [{"symbol": "ETHBTC", "volume": "1.5", "quoteVolume": "0.1", "count": 3,
             "openPrice": "0.05", "lastPrice": "0.05"}]
    assert parse_tickers(mini)[0].trades == 3


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda t: t[3].pop("quoteVolume"), "[3].quoteVolume"),
        (lambda t: t[3].update(volume="abc"), "[3].volume"),
        (lambda t: t[3].update(volume=12.5), "[3].volume"),
        (lambda t: t[3].update(volume="-1"), "[3].volume"),
        (lambda t: t[3].update(volume="NaN"), "[3].volume"),
        (lambda t: t[3].update(volume="Infinity"), "[3].volume"),
        (lambda t: t[3].update(count="12"), "[3].count"),
        (lambda t: t[3].update(count=True), "[3].count"),
        (lambda t: t[3].update(count=-1), "[3].count"),
        (lambda t: t[3].update(symbol=""), "[3].symbol"),
        (lambda t: t[3].update(symbol=None), "[3].symbol"),
        (lambda t: t.__setitem__(3, ["ETHBTC"]), "[3]"),
    ],
)
def test_bad_ticker_fields_are_named(mutate: Any, field: str) -> None:
    tickers = load("ticker_24hr.json")
    mutate(tickers)
    with pytest.raises(BadResponse) as err:
        parse_tickers(tickers)
    assert err.value.endpoint == "/api/v3/ticker/24hr"
    assert err.value.field == field
    assert field in str(err.value)


@pytest.mark.parametrize("payload", [{}, None, "x", {"symbols": {}}, 5])
def test_wrong_top_level_shapes_are_bad_responses(payload: Any) -> None:
    with pytest.raises(BadResponse):
        parse_tickers(payload)
    with pytest.raises(BadResponse):
        parse_exchange_info(payload)
    with pytest.raises(BadResponse):
        parse_book_tickers(payload)
    with pytest.raises(BadResponse):
        parse_order_book(payload, "ETHBTC")


def test_order_book_levels_are_validated() -> None:
    book = parse_order_book(load("depth/ETHBTC.json"), "ETHBTC")
    assert book.bids[0] == (Decimal("0.05691000"), Decimal("8.23612500"))
    assert len(book.bids) == len(book.asks) == 200
    for bad, field in (
        (["0.1"], "bids[0]"),
        (["0", "1"], "bids[0][0]"),
        (["-0.1", "1"], "bids[0][0]"),
        (["0.1", "0"], "bids[0][1]"),
        (["x", "1"], "bids[0][0]"),
        ({"p": "1"}, "bids[0]"),
    ):
        with pytest.raises(BadResponse) as err:
            parse_order_book({"lastUpdateId": 1, "bids": [bad], "asks": []}, "ETHBTC")
        assert err.value.field == field
        assert err.value.endpoint == "/api/v3/depth?symbol=ETHBTC"
    with pytest.raises(BadResponse) as err:
        parse_order_book({"lastUpdateId": 1, "bids": []}, "ETHBTC")
    assert err.value.field == "asks"


def test_order_book_keeps_its_last_update_id() -> None:
    """A local book kept from the diff stream starts at the snapshot's lastUpdateId."""
    assert parse_order_book(load("depth/ETHBTC.json"), "ETHBTC").last_update_id == 1000
    for bad in (None, "1000", -1, 1.5, True):
        with pytest.raises(BadResponse) as err:
            parse_order_book({"lastUpdateId": bad, "bids": [], "asks": []}, "ETHBTC")
        assert (err.value.field, err.value.endpoint) == (
            "lastUpdateId", "/api/v3/depth?symbol=ETHBTC")
    with pytest.raises(BadResponse) as err:
        parse_order_book({"bids": [], "asks": []}, "ETHBTC")
    assert (err.value.field, err.value.problem) == ("lastUpdateId", "missing")


def test_book_tickers_allow_zero_for_an_empty_side() -> None:
    tops = parse_book_tickers(
        [{"symbol": "X", "bidPrice": "0.00000000", "bidQty": "0.00000000",
          "askPrice": "1.00000000", "askQty": "3.00000000"}]
    )
    assert tops["X"].bid_price == 0 and tops["X"].ask_price == Decimal(1)
    with pytest.raises(BadResponse) as err:
        parse_book_tickers([{"symbol": "X", "bidPrice": "1", "bidQty": "1", "askQty": "1"}])
    assert err.value.field == "[0].askPrice"


@pytest.mark.parametrize(
    "text", ["1E+1000000", "1e3", "1_000", " 1", "1 ", "+1", ".5", "5.", "\u0661\u0662", "NaN"]
)
def test_decimal_fields_take_binance_numerals_only(text: str) -> None:
    """Decimal() takes all of these; Binance sends none. "1E+1000000" used to parse and then
    overflow (decimal.Overflow, not a BinanceError) in the ranking that sorted it."""
    ticker = {"symbol": "ETHBTC", "volume": text, "quoteVolume": "1", "count": 1}
    with pytest.raises(BadResponse) as err:
        parse_tickers([ticker])
    assert err.value.field == "[0].volume"
    with pytest.raises(BadResponse) as err:
        parse_order_book({"lastUpdateId": 1, "bids": [], "asks": [["1", text]]}, "ETHBTC")
    assert err.value.field == "asks[0][1]"
    ticker["volume"] = "0.05691000"
    assert str(parse_tickers([ticker])[0].volume) == "0.05691000"


# -- stream events ------------------------------------------------------------------------

STREAM = "ethbtc@depth@100ms"


def depth_event() -> dict[str, Any]:
    return {"e": "depthUpdate", "E": 1767225601000, "s": "ETHBTC", "U": 157, "u": 160,
            "b": [["0.05691000", "8.23612500"], ["0.05690000", "0.00000000"]],
            "a": [["0.05692000", "1.5"]]}


def test_depth_update_keeps_ids_and_exact_levels_with_zero_for_removal() -> None:
    update = parse_depth_update(depth_event(), STREAM)
    assert update == DepthUpdate(
        symbol="ETHBTC", first_update_id=157, last_update_id=160,
        bids=((Decimal("0.05691000"), Decimal("8.23612500")), (Decimal("0.0569"), Decimal(0))),
        asks=((Decimal("0.05692000"), Decimal("1.5")),))
    assert str(update.bids[0][0]) == "0.05691000"  # the digits Binance sent
    event = depth_event()
    event.update(U=160, b=[], a=[])
    update = parse_depth_update(event, STREAM)  # U == u: one update, no level listed
    assert (update.first_update_id, update.last_update_id, update.bids, update.asks) == (
        160, 160, (), ())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("e"), "e"),
        (lambda e: e.update(e="depthUpdat"), "e"),
        (lambda e: e.update(e=None), "e"),
        (lambda e: e.pop("s"), "s"),
        (lambda e: e.update(s=""), "s"),
        (lambda e: e.pop("U"), "U"),
        (lambda e: e.update(U=-1), "U"),
        (lambda e: e.update(U="157"), "U"),
        (lambda e: e.update(U=161), "U"),  # after u
        (lambda e: e.pop("u"), "u"),
        (lambda e: e.update(u=True), "u"),
        (lambda e: e.update(u=160.0), "u"),
        (lambda e: e.pop("b"), "b"),
        (lambda e: e.update(a={}), "a"),
        (lambda e: e["b"].append("x"), "b[2]"),
        (lambda e: e["b"].append(["1"]), "b[2]"),
        (lambda e: e["b"].append(["0", "1"]), "b[2][0]"),
        (lambda e: e["b"].append(["-1", "1"]), "b[2][0]"),
        (lambda e: e["a"].append(["1", "-1"]), "a[1][1]"),
        (lambda e: e["a"].append(["1", 1]), "a[1][1]"),
        (lambda e: e["a"].append(["1", "1e3"]), "a[1][1]"),
        (lambda e: e["a"].insert(0, [None, "1"]), "a[0][0]"),
        (lambda e: e["b"][1].__setitem__(1, "NaN"), "b[1][1]"),
    ],
)
def test_bad_depth_update_fields_are_named(mutate: Any, field: str) -> None:
    event = depth_event()
    mutate(event)
    with pytest.raises(BadResponse) as err:
        parse_depth_update(event, STREAM)
    assert (err.value.endpoint, err.value.field) == (f"stream {STREAM}", field)
    assert str(err.value).startswith(f"stream {STREAM}: field {field}: ")


def test_depth_update_is_an_object() -> None:
    for payload in (None, [], "x", 3):
        with pytest.raises(BadResponse) as err:
            parse_depth_update(payload, STREAM)
        assert (err.value.endpoint, err.value.field) == (f"stream {STREAM}", "body")


def book_ticker_event() -> dict[str, Any]:
    return {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
            "a": "25.36520000", "A": "40.66000000"}


def test_book_ticker_event_gives_its_update_id_and_the_top() -> None:
    assert parse_book_ticker_event(book_ticker_event(), "bnbusdt@bookTicker") == (
        400900217, BookTop("BNBUSDT", Decimal("25.35190000"), Decimal("31.21000000"),
                           Decimal("25.36520000"), Decimal("40.66000000")))
    empty = {**book_ticker_event(), "b": "0.00000000", "B": "0.00000000"}
    assert parse_book_ticker_event(empty, "bnbusdt@bookTicker")[1].bid_price == 0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.pop("u"), "u"),
        (lambda e: e.update(u=-5), "u"),
        (lambda e: e.update(u="1"), "u"),
        (lambda e: e.update(s=7), "s"),
        (lambda e: e.pop("b"), "b"),
        (lambda e: e.update(B="-1"), "B"),
        (lambda e: e.update(a=25.3), "a"),
        (lambda e: e.update(A="1E+1000000"), "A"),
    ],
)
def test_bad_book_ticker_event_fields_are_named(mutate: Any, field: str) -> None:
    event = book_ticker_event()
    mutate(event)
    with pytest.raises(BadResponse) as err:
        parse_book_ticker_event(event, "bnbusdt@bookTicker")
    assert (err.value.endpoint, err.value.field) == ("stream bnbusdt@bookTicker", field)
    with pytest.raises(BadResponse) as err:
        parse_book_ticker_event([event], "bnbusdt@bookTicker")
    assert err.value.field == "body"


# -- raw JSON ------------------------------------------------------------------------------


def test_raw_book_ticker_events_parse_as_decoded_ones() -> None:
    """As the stream client hands them on (a msgspec.Raw), or as bytes."""
    event = book_ticker_event()
    text = json.dumps(event, ensure_ascii=False)
    raw = decode_message(f'{{"stream":"bnbusdt@bookTicker","data":{text}}}').data
    expected = parse_book_ticker_event(event, "bnbusdt@bookTicker")
    assert parse_book_ticker_event(raw, "bnbusdt@bookTicker") == expected
    assert parse_book_ticker_event(text.encode(), "bnbusdt@bookTicker") == expected
    top = parse_book_ticker_event(raw, "bnbusdt@bookTicker")[1]
    assert str(top.bid_price) == "25.35190000"  # the digits Binance sent


@pytest.mark.parametrize(("change", "field", "problem"), [
    ({"b": "1,2"}, "b", "not a decimal: '1,2'"),  # a comma must not pass as two numerals
    ({"B": " 1"}, "B", "not a decimal: ' 1'"),
    ({"a": "+1"}, "a", "not a decimal: '+1'"),
    ({"A": "-1"}, "A", "out of range: '-1'"),
    ({"b": 25.3}, "b", "expected a decimal string, got float"),
    ({"u": True}, "u", "expected a non-negative integer, got True"),
    ({"s": ""}, "s", "expected a non-empty string, got ''"),
])
def test_raw_book_ticker_events_name_the_field_as_decoded_ones(
        change: dict[str, Any], field: str, problem: str) -> None:
    raw = json.dumps({**book_ticker_event(), **change}).encode()
    with pytest.raises(BadResponse) as err:
        parse_book_ticker_event(raw, "bnbusdt@bookTicker")
    assert (err.value.endpoint, err.value.field, err.value.problem) == (
        "stream bnbusdt@bookTicker", field, problem)


def test_raw_payloads_take_what_typed_decoding_leaves_to_the_checks() -> None:
    """"-0" is a plain zero to models (not to typed decoding); fields not used are ignored;
    of a key given twice the last counts, as in json."""
    event = {**book_ticker_event(), "b": "-0", "extra": [1, {"x": None}]}
    update_id, top = parse_book_ticker_event(json.dumps(event).encode(), "x@bookTicker")
    assert (update_id, top.bid_price) == (400900217, 0)
    twice = b'{"u":1,"s":"X","b":"1","B":"1","a":"1","A":"1","A":"2"}'
    assert parse_book_ticker_event(twice, "x@bookTicker")[1].ask_qty == 2


def test_raw_book_ticker_answers_parse_as_decoded_ones() -> None:
    """The REST client hands the body on as read."""
    payload = load("book_ticker.json")
    tops = parse_book_tickers(json.dumps(payload).encode())
    assert dict(tops) == dict(parse_book_tickers(payload))
    assert list(tops) == [entry["symbol"] for entry in payload]
    with pytest.raises(TypeError):
        tops["NEW"] = tops[payload[0]["symbol"]]  # type: ignore[index]
    assert not parse_book_tickers(b"[]")
    payload[2]["bidQty"] = "1e3"
    with pytest.raises(BadResponse) as err:
        parse_book_tickers(json.dumps(payload).encode())
    assert (err.value.endpoint, err.value.field) == ("/api/v3/ticker/bookTicker",
                                                     "[2].bidQty")


def test_raw_depth_updates_parse_as_decoded_ones() -> None:
    raw = json.dumps(depth_event()).encode()
    assert parse_depth_update(raw, STREAM) == parse_depth_update(depth_event(), STREAM)
    with pytest.raises(BadResponse) as err:
        parse_depth_update(b'{"e": "depthUpdate"', STREAM)
    assert str(err.value) == f"stream {STREAM}: field body: not valid JSON"
