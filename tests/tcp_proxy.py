"""A TCP forwarder on 127.0.0.1 that a test can cut and restore: a real network outage
between a client and a server that keeps its state (moto loses it when restarted)."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.conftest import free_port


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port while up; refuses connections while down."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._held: socket.socket | None = None  # the port, bound but not listening
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def _bind(self) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        return sock

    def up(self) -> None:
        with self._lock:
            if self._held is not None:
                self._held.close()
                self._held = None
            listener = self._bind()
            listener.listen(64)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self, keep: tuple[socket.socket, ...] = ()) -> None:
        """Stop listening and cut every open connection but those in ``keep``. The port
        stays held (connections to it are refused), so no other server takes it meanwhile
        (a test's Prefect server picking a free port) and ``up`` can have it back."""
        with self._lock:
            if self._listener is not None:
                # A listener closed while a thread waits in accept() listens on until that
                # returns: shut it down first, which wakes the thread and stops it at once.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
                self._held = self._bind()
            for conn in self._conns:
                if conn not in keep:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
            self._conns = [conn for conn in self._conns if conn in keep]

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def arriving(self, source: socket.socket, sink: socket.socket, data: bytes) -> None:
        """Called with each chunk before it goes through: a proxy that looks for a cue in
        a request overrides it (after the request is sent, its answer may come first), and
        one that cuts on a cue in an answer (after the answer is sent, the client's next
        request may come first). Raising ``OSError`` drops the chunk and the connection."""

    def passed(self, source: socket.socket, sink: socket.socket, data: bytes) -> None:
        """Called after each chunk goes through: a proxy that cuts on a cue overrides it."""

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.arriving(source, sink, data)
                sink.sendall(data)
                self.passed(source, sink, data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
