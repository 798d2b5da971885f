"""Network faults between a client and the API server, for end-to-end tests (loopback only).

:class:`FaultProxy` is a TCP proxy on 127.0.0.1 in front of a server (TLS passes through untouched, so a
kubeconfig pointing at the proxy verifies the real API server's certificate, which covers 127.0.0.1):

* ``forward`` (default): bytes flow both ways;
* :meth:`FaultProxy.outage`: for N seconds the port is closed (new connections are refused) and every open
  connection is reset - what a client sees while the API server restarts; then it listens again;
* ``FaultProxy(None)``: a *black hole* that accepts connections and never answers (a hung server, a
  firewall that drops replies).

Only the clients pointed at the proxy see the faults; the shared control plane and everything else keep
working, so a test needs no private control plane.

    with FaultProxy(("127.0.0.1", plane.api_port)) as proxy:
        kubeconfig = proxied_kubeconfig(plane.kubeconfig, proxy.url, tmp_path)
        ...
        proxy.outage(3.0)            # returns at once; the outage ends by itself
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path
from typing import Optional

import yaml


class FaultProxy:
    def __init__(self, target: Optional[tuple[str, int]]) -> None:
        self.target = target
        self.port = 0
        self.connections = 0  # accepted so far
        self.resets = 0  # connections reset by outages
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: Optional[socket.socket] = None
        self._down_until = 0.0
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self._listen()
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._close_listener()
        self._reset_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def outage(self, seconds: float) -> None:
        """Refuse and reset every connection for ``seconds`` (non-blocking)."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
        self._close_listener()
        self._reset_all()

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    # ------------------------------------------------------------------ internals
    def _listen(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        s.settimeout(0.1)
        self.port = s.getsockname()[1]
        self._listener = s

    def _close_listener(self) -> None:
        with self._lock:
            s, self._listener = self._listener, None
        if s is not None:
            s.close()

    def _reset_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, []
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
            except OSError:
                pass
            s.close()
            self.resets += 1

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            if self._listener is None:
                if self.down:
                    time.sleep(0.05)
                    continue
                try:
                    self._listen()
                except OSError:
                    time.sleep(0.05)
                    continue
            listener = self._listener
            if listener is None:
                continue
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                continue  # closed by an outage
            self.connections += 1
            client.settimeout(None)  # accepted sockets inherit the listener's timeout
            with self._lock:
                self._open.append(client)
            if self.target is None:
                continue  # black hole: hold it open, never answer
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxied_kubeconfig(kubeconfig: Path, server: str, out_dir: Path) -> Path:
    """A copy of ``kubeconfig`` whose clusters point at ``server`` (the proxy)."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    for c in cfg.get("clusters") or []:
        c["cluster"]["server"] = server
    out = out_dir / f"proxied-{kubeconfig.name}"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out.chmod(0o600)
    return out
