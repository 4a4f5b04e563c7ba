"""HTTP plumbing: a threading HTTP/1.1 server around ``app.Simulator``.

``ThreadingHTTPServer`` with daemon threads serves each connection in its own
thread, so a fault that holds one connection (``timeout``, ``latency``) does
not stall the others, and idle keep-alive connections never block exit.
Replies carry ``Content-Length`` so HTTP/1.1 keep-alive works, which is what
a ``requests.Session`` in the exporter relies on.

Hang-ups use ``SO_LINGER`` with a zero timeout: closing then sends a TCP
reset instead of an orderly FIN, which is what a crashed or overloaded peer
looks like to the client.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import Hangup, Reply, Simulator, SimulatorConfig

POLL_INTERVAL = 0.05
IDLE_TIMEOUT = 300.0


class SimulatorHandler(BaseHTTPRequestHandler):
    """One connection: reads requests and carries out the simulator's decisions."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT  # drop idle keep-alive connections eventually
    # headers and body are written separately; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms), which would add a round trip Binance does not have
    disable_nagle_algorithm = True
    server: SimulatorServer

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        """Log a request line only with ``--verbose``: quiet by default."""
        if self.server.simulator.config.verbose:
            super().log_message(format, *args)

    def _serve(self) -> None:
        """Serve one request (every method goes through the simulator)."""
        length = self.headers.get("Content-Length", "0")
        body = self.rfile.read(int(length)) if length.isdigit() else b""
        outcome = self.server.simulator.handle(self.command, self.path, body)
        if outcome.delay > 0:
            self.server.stopping.wait(outcome.delay)
        if isinstance(outcome, Hangup):
            self._hang_up(outcome)
        else:
            self._reply(outcome)

    # http.server dispatches on do_<METHOD>; the simulator routes by method itself.
    do_GET = do_POST = do_DELETE = _serve

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.cut_after is None:
            self.wfile.write(reply.body)
            return
        self.wfile.write(reply.body[: reply.cut_after])
        self._abort()

    def _hang_up(self, hangup: Hangup) -> None:
        if hangup.abrupt:
            self._abort()
        else:
            self.close_connection = True

    def _abort(self) -> None:
        """Drop the connection with a TCP reset; nothing more is sent."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


class SimulatorServer(ThreadingHTTPServer):
    """The listening server; ``simulator`` holds all state shared by connections."""

    daemon_threads = True

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.stopping = threading.Event()
        super().__init__((host, port), SimulatorHandler)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (the real port when 0 was asked)."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up first (timeouts, resets), unless verbose."""
        if isinstance(sys.exc_info()[1], ConnectionError) and not self.simulator.config.verbose:
            return
        super().handle_error(request, client_address)

    def stop(self) -> None:
        """Stop serving, wake any connection held by a fault and release the port."""
        self.stopping.set()
        self.shutdown()
        self.server_close()


@contextlib.contextmanager
def serve_in_thread(
    config: SimulatorConfig, now: Callable[[], float] = time.time, host: str = "127.0.0.1"
) -> Iterator[SimulatorServer]:
    """Run a simulator on a free port in a background thread of this process (for tests).

    ``now`` replaces the clock of the market, the limiter and the stats, so
    tests control time exactly.  The server is stopped on exit.
    """
    server = SimulatorServer(Simulator(config, now), host)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join()
