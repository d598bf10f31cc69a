"""A TCP proxy between the runner and PostgreSQL that can cut every connection on demand,
refuse new ones, or lose the server's replies: real lost connections, not mocked ones."""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.refusing = False
        self.accept_limit: int | None = None  # refuse connections past this many
        self.swallowing = False
        self.connections = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing or (self.accept_limit is not None and self.connections >= self.accept_limit):
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
                self.connections += 1
            for source, sink, to_client in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pump, args=(source, sink, to_client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if to_client and self.swallowing:
                    continue  # the server's reply is lost on the way, as on a dying network
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Reset every open connection, as a restarting proxy or a network fault would."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                # shutdown() first: close() alone does not wake a thread blocked in recv(), and
                # the peer would never notice.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
