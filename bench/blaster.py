"""A WebSocket server that pushes bookTicker events as fast as asked: far faster than the
simulator, whose market moves once a step.

``python -m bench.blaster --rate R [--per-connection N] [--cpu C]`` serves, on 127.0.0.1
port 0 (printed as ``bench-blaster on ws://127.0.0.1:PORT``):

* ``/stream?streams=a/b/...``: a combined-stream connection that receives, for each
  ``<symbol>@bookTicker`` stream asked for, events ``{"stream": ..., "data": {"u", "s",
  "b", "B", "a", "A"}}`` in turn, ``R`` a second in all (paced on the monotonic clock,
  sent in bursts of at most a millisecond's worth); other streams stay silent. ``u``
  grows by one with every event sent by the process, across connections, so every
  event is newer than the last. After ``N`` events the server closes the connection
  (1000): the client reconnects. Requests (``SUBSCRIBE`` ...) are answered with
  ``{"result": null, "id": ...}``.
* ``/stats``: ``{"sent": events sent, "connections": connections accepted}``.

Events are pre-built: a handful of prices per symbol, encoded once; sending one is a
string join and aiohttp's framing, no JSON encoding. ``--cpu C`` pins the process to
core ``C``. :func:`running_blaster` starts it with the test kit and stops it when the
``with`` block ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from aiohttp import WSMsgType, web

from binance_simulator.testkit import Process, started

from bench.common import BenchError

READY = re.compile(r"bench-blaster on (ws://\S+)")
VARIANTS = 8  # prices per symbol, cycled: the spread window sees real changes
BURST_SECONDS = 0.001


def templates(stream: str, symbol: str) -> list[tuple[str, str]]:
    """(before ``u``, after ``u``) of the events of one bookTicker stream, pre-encoded."""
    head = '{"stream":' + json.dumps(stream, ensure_ascii=False) + ',"data":{"u":'
    built = []
    for variant in range(VARIANTS):
        bid = 100 + variant % 4 * 0.01
        ask = bid + 0.01 * (1 + variant % 3)
        data = {"s": symbol, "b": f"{bid:.8f}", "B": f"{1 + variant:.8f}",
                "a": f"{ask:.8f}", "A": f"{2 + variant:.8f}"}
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        built.append((head, "," + encoded[1:] + "}"))
    return built


class Blaster:
    """The server's state: the rate, the cut-off per connection, and the counts."""

    def __init__(self, rate: float, per_connection: int) -> None:
        self.rate = rate
        self.per_connection = per_connection
        self.sent = 0
        self.connections = 0

    async def stats(self, _: web.Request) -> web.Response:
        """The counts."""
        return web.json_response({"sent": self.sent, "connections": self.connections})

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        """One connection: events at the rate, until the cut-off or the client leaves."""
        names = [name for name in request.query.get("streams", "").split("/") if name]
        events = [template for name in names if name.endswith("@bookTicker")
                  for template in templates(name, name.split("@")[0].upper())]
        ws = web.WebSocketResponse(autoping=True, compress=False)
        await ws.prepare(request)
        self.connections += 1
        reader = asyncio.create_task(self._answer(ws))
        try:
            if events:
                await self._send(ws, events)
        finally:
            reader.cancel()
            await ws.close()
        return ws

    async def _send(self, ws: web.WebSocketResponse, events: list[tuple[str, str]]) -> None:
        started_at, mine = time.monotonic(), 0
        burst = max(1, int(self.rate * BURST_SECONDS))
        while not ws.closed and (not self.per_connection or mine < self.per_connection):
            due = int((time.monotonic() - started_at) * self.rate) - mine
            if due <= 0:
                await asyncio.sleep(BURST_SECONDS)
                continue
            for _ in range(min(due, burst)):
                head, tail = events[self.sent % len(events)]
                self.sent += 1
                mine += 1
                await ws.send_str(f"{head}{self.sent}{tail}")
                if self.per_connection and mine >= self.per_connection:
                    break
            await asyncio.sleep(0)  # let the reader and /stats in between bursts

    @staticmethod
    async def _answer(ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                try:
                    ident = json.loads(message.data).get("id")
                except (ValueError, AttributeError):
                    ident = None
                await ws.send_str(json.dumps({"result": None, "id": ident}))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(prog="python -m bench.blaster", description=__doc__)
    parser.add_argument("--rate", type=float, required=True, help="events a second")
    parser.add_argument("--per-connection", type=int, default=0,
                        help="close a connection after this many events (0: never)")
    parser.add_argument("--cpu", type=int, help="pin the process to this core")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    blaster = Blaster(args.rate, args.per_connection)
    app = web.Application()
    app.router.add_get("/stream", blaster.stream)
    app.router.add_get("/stats", blaster.stats)

    async def serve() -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        print(f"bench-blaster on ws://127.0.0.1:{sock.getsockname()[1]}", flush=True)
        await asyncio.Event().wait()  # until terminated

    asyncio.run(serve())
    return 0


@contextmanager
def running_blaster(scratch: Path, name: str, rate: float, per_connection: int = 0,
                    cpu: int | None = None) -> Iterator[Process]:
    """The blaster as a process until the block ends; its ``url`` is ``ws://...``."""
    command = [sys.executable, "-m", "bench.blaster", "--rate", str(rate),
               "--per-connection", str(per_connection),
               *(() if cpu is None else ("--cpu", str(cpu)))]
    try:
        with started(command, READY, scratch / f"blaster-{name}.log") as running:
            yield running
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


if __name__ == "__main__":
    sys.exit(main())
