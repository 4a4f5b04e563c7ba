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
* ``symbols``   -- what the recording tells about a symbol: units, sizes, how busy.
* ``books``     -- how each symbol's order book moves, step by step (deterministic).
* ``market``    -- the market at the clock's time: books and tickers (injectable clock).
* ``weights``   -- Binance's request weights and the per-minute weight limiter.
* ``stream_names`` -- stream names: parsing, and matching fault targets.
* ``faults``    -- fault specifications, validation and per-request selection.
* ``mutations`` -- the pure functions that corrupt books and payloads.
* ``api``       -- parameter validation and the endpoint handlers.
* ``events``    -- the stream events the market's steps produce, computed once.
* ``stream_requests`` -- the requests a stream connection may send, parsed and checked.
* ``stream_stats`` -- the streams' figures for ``/_sim/stats``.
* ``streams``   -- one connection's session: what to send and when (no sockets).
* ``app``       -- ties the above together into replies; control API; stats.
* ``server``    -- the HTTP plumbing (``ThreadingHTTPServer``).
* ``stream_server`` -- the streams' listener (aiohttp's WebSocket server).
* ``connection_log`` -- when each stream connection opened, ended, and carried what.
* ``cli``       -- the ``binance-simulator`` console script.
"""
