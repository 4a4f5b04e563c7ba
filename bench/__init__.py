"""Benchmarks of binance-exporter against the bundled Binance simulator (issue 6).

Run from the repository root with the project's virtual environment::

    .venv/bin/python -m bench                  # everything, ~22 minutes; writes BENCHMARKS.md
    .venv/bin/python -m bench --quick --output /tmp/bench.md   # a shortened smoke run
    .venv/bin/python -m bench --only latency,cpu

Every process (simulators, exporters, load generators) is started and stopped
here, on 127.0.0.1 only; nothing ever contacts Binance. Modules:

* ``latency``: refresh latency in round trips of the simulator's latency L;
* ``cost``: request weight per minute spent upstream, two scrape patterns at once;
* ``scrape``: ``/metrics`` latency from a warm cache under concurrent clients;
* ``cpu``: CPU of parsing, validating and ranking the full 24 h ticker;
* ``memory``: RSS over 200 refreshes of every group;
* ``stream``: stream mode beside REST mode: weight, market change → ``/metrics``, scrape
  latency, bookTicker events absorbed on one core, RSS over a million events; with
  ``blaster`` (a WebSocket server pushing events at a fixed rate) and ``absorb`` (a
  ``StreamSource`` against it, in a process of its own);
* ``run``: the command line, which prints the table and writes ``BENCHMARKS.md``.
"""
