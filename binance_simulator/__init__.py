"""Offline simulator of the public Binance Spot REST API and market-data streams.

It serves the market-data endpoints the exporter uses (``ping``, ``time``,
``exchangeInfo``, ``ticker/24hr``, ``depth``, ``ticker/bookTicker``) from
recorded responses bundled in ``data/``, with prices that move
deterministically from a seed, Binance's request weights and rate limiting,
and switchable faults, so the exporter can be tested and benchmarked without
touching the real exchange.  The ``@bookTicker`` and ``@depth@100ms``
WebSocket streams follow the same books on a port of their own.  The REST
side is standard library only; the streams use aiohttp's WebSocket server
(framing is not something to write by hand), and nothing of the client under
test is shared.

Modules, from the bottom up:

* ``data``      -- loads the bundled recordings.
* ``market``    -- deterministic order books and tickers (injectable clock).
* ``weights``   -- Binance's request weights and the per-minute weight limiter.
* ``faults``    -- fault specifications, validation and per-request selection.
* ``mutations`` -- the pure functions that corrupt books and payloads.
* ``api``       -- parameter validation and the endpoint handlers.
* ``streams``   -- stream names, events and per-connection sessions (no sockets).
* ``app``       -- ties the above together into replies; control API; stats.
* ``server``    -- the HTTP plumbing (``ThreadingHTTPServer``).
* ``stream_server`` -- the streams' listener (aiohttp's WebSocket server).
* ``connection_log`` -- when each stream connection opened, ended, and carried what.
* ``cli``       -- the ``binance-simulator`` console script.
"""
