"""The process kubelet's HTTPS endpoint: container logs, as the apiserver proxies ``pods/log`` to a kubelet.

``kubectl logs`` and ``CoreV1Api.read_namespaced_pod_log`` go to the apiserver, which connects to
``https://<node InternalIP>:<status.daemonEndpoints.kubeletEndpoint.Port>/containerLogs/{ns}/{pod}/{container}``
with its ``--kubelet-client-certificate`` and checks our serving certificate against
``--kubelet-certificate-authority``. We require a client certificate signed by the test CA in return.

One server serves every node of a kubelet process (all nodes share ``127.0.0.1`` and the port).
Query parameters honoured: ``tailLines``, ``limitBytes``, ``previous``, ``follow`` (streams until the
container stops). ``timestamps`` and ``sinceSeconds``/``sinceTime`` are accepted and ignored.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from .podrunner import PodWorker

LOG = logging.getLogger("process-kubelet")
Lookup = Callable[[str, str], Optional[PodWorker]]


def select(data: bytes, tail_lines: Optional[int], limit_bytes: Optional[int]) -> bytes:
    """Apply ``tailLines`` then ``limitBytes`` (first N bytes of what is left), as the kubelet does."""
    if tail_lines is not None:
        data = b"".join(data.splitlines(keepends=True)[-tail_lines:]) if tail_lines > 0 else b""
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(addr, handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = self.socket.accept()
        # handshake lazily, in the handler thread, so one slow client cannot block accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class LogServer:
    """HTTPS server on 127.0.0.1; ``lookup(namespace, pod)`` returns the pod's worker, if this kubelet runs it."""

    def __init__(
        self,
        lookup: Lookup,
        cert: Path,
        key: Path,
        client_ca: Path,
        port: int = 0,
        stopping: Optional[threading.Event] = None,
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.stopping = stopping or threading.Event()
        server = self
        handler = type("Handler", (_Handler,), {"server_ref": server})
        self.lookup = lookup
        self.httpd = _TLSServer(("127.0.0.1", port), handler, ctx)
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="log-server", daemon=True)

    def start(self) -> "LogServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_ref: LogServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("log server: " + format, *args)

    def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            return self._reply(200, b"ok")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._reply(404, b"404 page not found")
        _, namespace, pod_name, container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        worker = self.server_ref.lookup(namespace, pod_name)
        if worker is None:
            return self._reply(404, f'pod "{pod_name}" in namespace "{namespace}" not found on this node'.encode())
        c = worker.container(container)
        if c is None:
            return self._reply(400, f'container "{container}" in pod "{pod_name}" is not valid'.encode())
        previous = query.get("previous", "false").lower() == "true"
        if previous:
            if c.restart_count == 0:
                return self._reply(
                    400, f'previous terminated container "{container}" in pod "{pod_name}" not found'.encode()
                )
            path = worker.log_path(c, c.restart_count - 1)
        else:
            if c.state == "waiting" and c.proc is None:
                return self._reply(
                    400, f'container "{container}" in pod "{pod_name}" is waiting to start: {c.reason}'.encode()
                )
            path = worker.log_path(c)
        try:
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
        except ValueError:
            return self._reply(400, b"invalid tailLines or limitBytes")
        data = path.read_bytes() if path.exists() else b""
        data = select(data, tail, limit)
        follow = query.get("follow", "false").lower() == "true" and not previous
        if not follow:
            return self._reply(200, data)
        self._follow(worker, c, path, data, path.stat().st_size if path.exists() else 0, limit)

    def _follow(self, worker: PodWorker, c, path: Path, first: bytes, offset: int, limit: Optional[int]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        restart = c.restart_count

        def chunk(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            if first:
                chunk(first)
                sent += len(first)
            while not self.server_ref.stopping.is_set():
                if limit is not None and sent >= limit:
                    break
                running = c.state == "running" and c.restart_count == restart
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    new = fh.read()
                if new:
                    offset += len(new)
                    if limit is not None:
                        new = new[: limit - sent]
                    chunk(new)
                    sent += len(new)
                elif not running or worker.finished.is_set():
                    break
                else:
                    time.sleep(0.2)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
