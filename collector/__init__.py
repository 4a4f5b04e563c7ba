"""binance-exporter: Binance Spot market data as Prometheus metrics and a console report.

Glossary (the questions the product answers; symbols may be any Unicode):

* Q1: the 5 BTC-quoted symbols with the highest 24 h volume;
* Q2: the 5 USDT-quoted symbols with the most 24 h trades;
* Q3: the notional (Σ price × quantity) of the top 200 bids and asks of each Q1 book;
* Q4: the bid/ask spread (best ask − best bid) of each Q2 symbol;
* Q5: every 10 s, the Q4 spreads and their absolute delta from the previous sample;
* Q6: Q5 (and the rest) as Prometheus metrics at ``/metrics``.

Module map, in the order data flows (each imports only modules above it):

* ``errors``: the failures, one class per kind; a kind is a metric label;
* ``records``: the immutable records every layer passes around, and ``Settings``;
* ``chunked``: read-only maps in chunks that later versions share (the whole market's);
* ``tracked``: maps that record which keys changed, for readers that ask what did;
* ``models``: Binance's JSON → validated records (exact ``Decimal``);
* ``answers``: pure Q1–Q5 functions over records; no I/O;
* ``order_book``: one symbol's local order book from a snapshot and diff events;
* ``binance``: the REST client (timeouts, retries, fallbacks, weights, cool-downs);
* ``stream_client``: one combined WebSocket kept connected (Binance's stream rules);
* ``cache``: a TTL group: single flight, failures held, nothing stale;
* ``costs``: what settings cost in request weight (the budget checks);
* ``q5``: Q5 defined once: a sample, its deltas, its log line;
* ``upstream``: exchangeInfo, the 24 h ticker, Q1/Q2 and health: REST both sources share;
* ``source``: the one interface front ends read;
* ``rest_source``: the default source, fetched on scrape and TTL-cached;
* ``stream_tops``: Q4 from the streams: best bid/ask, 10 s extremes, update counts;
* ``stream_books``: Q3 from the streams: the local books, resyncs, depth limits;
* ``stream_connections``: which connection delivers; attempts and events counted;
* ``stream_views``: the stream state's records, made from what changed since the last;
* ``stream_state``: what the streams said, applied by callbacks (no I/O, no thread);
* ``stream_source``: stream mode's source: thread, loop, feed, book snapshots, Q5 clock;
* ``parted``: the whole market's metric families, built and kept a chunk at a time;
* ``exporter``: ``BinanceCollector``, metric families from a snapshot;
* ``exporter_metrics``: the exporter's own process and Python families (client_python's);
* ``exposition``: /metrics bodies (text, OpenMetrics, gzip): only what changed rendered;
* ``web_config``: ``--web.config.file``, the exporter-toolkit's format, read strictly, kept current;
* ``web_access``: TLS per connection, then headers, rate limit and basic auth per request;
* ``server``: the HTTP server (``/``, ``/metrics``);
* ``config``: flags and ``BINANCE_*`` variables → validated settings (parsing only);
* ``wiring``: validated flags → the running objects, for both front ends;
* ``exporter_cli``: ``binance-exporter``; ``report``: ``binance-report``;
* ``healthcheck``: ``binance-healthcheck``, a container's probe of its own exporter.
"""

__version__ = "0.1.0"
