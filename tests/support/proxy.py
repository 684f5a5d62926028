"""A TCP forwarder to put between the operator and the API server, and cut at will.

An API-server outage as the operator sees it (open connections reset, new ones closed at once),
injected from outside the product: the API server itself keeps serving everyone else (the trainer's
reports, the kubelet stand-in, the test), as it does when only the operator's network path fails.
Or connections that die silently (`silence`): what the operator sends on them is lost, no error
comes back, as after an API server's fail-over behind a virtual IP; new connections work.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import yaml


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._clients: set[socket.socket] = set()
        """The operator's side of each open connection."""
        self._silenced: set[socket.socket] = set()
        """Client sides whose bytes are dropped from now on, for good."""

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Reset every open connection and close new ones at once, until restore()."""
        self._up.clear()
        with self._lock:
            conns, self._open = list(self._open), set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def silence(self) -> None:
        """Every connection open now drops what the client sends from now on, and never errs:
        a request on one waits for an answer that cannot come (watches already sent keep
        streaming). Connections opened later are forwarded as usual."""
        with self._lock:
            self._silenced |= self._open & self._clients

    def restore(self) -> None:
        self._up.set()

    def stop(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def kubeconfig(self, original: Path, out: Path) -> Path:
        """A copy of `original` whose cluster server is this proxy (same TLS: 127.0.0.1 either way)."""
        config = yaml.safe_load(original.read_text())
        for entry in config["clusters"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        out.write_text(yaml.safe_dump(config))
        return out

    # --- forwarding -------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
                self._clients.add(client)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src not in self._silenced:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._open -= {src, dst}
                self._silenced -= {src, dst}
                self._clients -= {src, dst}
