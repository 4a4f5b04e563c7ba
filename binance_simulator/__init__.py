"""Offline simulator of the public Binance Spot REST API.

It serves the market-data endpoints the exporter uses (``ping``, ``time``,
``exchangeInfo``, ``ticker/24hr``, ``depth``, ``ticker/bookTicker``) from
recorded responses bundled in ``data/``, with prices that move
deterministically from a seed, Binance's request weights and rate limiting,
and switchable faults, so the exporter can be tested and benchmarked without
touching the real exchange.  Standard library only, on purpose: the simulator
must not share a single dependency with the client it is testing.

Modules, from the bottom up:

* ``data``      -- loads the bundled recordings.
* ``market``    -- deterministic order books and tickers (injectable clock).
* ``weights``   -- Binance's request weights and the per-minute weight limiter.
* ``faults``    -- fault specifications, validation and per-request selection.
* ``mutations`` -- the pure functions that corrupt books and payloads.
* ``api``       -- parameter validation and the endpoint handlers.
* ``app``       -- ties the above together into replies; control API; stats.
* ``server``    -- the HTTP plumbing (``ThreadingHTTPServer``).
* ``cli``       -- the ``binance-simulator`` console script.
"""
