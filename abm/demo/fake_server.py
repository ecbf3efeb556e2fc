"""fakeredis's TCP server, made fit to serve the demo's processes when no redis-server is installed.

Three differences from ``fakeredis.TcpFakeServer`` as it comes, each found by running
RQ workers against it:

- It answers ``INFO`` (a short server section with a Redis version). RQ asks it once
  per connection; fakeredis does not know the command, and its TCP handler hangs up
  after an unknown command, so the next command on that pooled connection failed
  with "Connection closed by server".
- ``CLIENT INFO`` gives addresses as ``host:port``, as Redis does (fakeredis printed a
  Python tuple, which redis-py cannot parse: RQ workers died on start).
- Connection threads are daemon threads, so the demo can exit while a child that it
  is stopping still holds a connection.

Only the demo process uses this server; the registration of ``INFO`` is for it alone.
"""

from __future__ import annotations

import os
from socketserver import StreamRequestHandler

from fakeredis import TcpFakeServer
from fakeredis._clients._sync import FakeRedisConnection
from fakeredis._clients._tcp_server import _INTERNAL_CONNECTION_KWARGS, TCPFakeRequestHandler, Writer
from fakeredis._commands import SUPPORTED_COMMANDS, command
from fakeredis._socket._fakesocket import FakeSocket

REDIS_VERSION = "7.2.0"


def _register_info() -> None:
    if "info" in SUPPORTED_COMMANDS:
        return

    def demo_info(self, *sections: bytes) -> bytes:
        return (f"# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n"
                "os:fakeredis (abm demo)\r\n").encode()

    FakeSocket.demo_info = command((), (bytes,), name="info")(demo_info)


def _addr(pair) -> str:
    return f"{pair[0]}:{pair[1]}" if isinstance(pair, tuple) else str(pair)


class _Handler(TCPFakeRequestHandler):
    def setup(self) -> None:
        StreamRequestHandler.setup(self)
        self._setup_client()

    def _setup_client(self) -> None:
        """fakeredis's own setup, with host:port addresses for CLIENT INFO and CLIENT LIST."""
        import fcntl  # noqa: PLC0415 - POSIX only (fakeredis guards it so too)

        fd = self.rfile.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.writer = Writer(self.client_address, self.wfile, self)
        client = self.server.clients.get(self.client_address)
        if client is None:
            client = FakeRedisConnection(
                server=self.server.fake_server, writer=self.writer,
                client_info={"laddr": _addr(self.connection.getsockname()),
                             "addr": _addr(self.connection.getpeername()), "fd": self.connection.fileno()},
                **_INTERNAL_CONNECTION_KWARGS)
            self.server.clients[self.client_address] = client
        self.current_client = client


class DemoFakeServer(TcpFakeServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int]):
        _register_info()
        super().__init__(address, server_type="redis")
        self.daemon_threads = True
        self.RequestHandlerClass = _Handler
