"""A network namespace of our own for the real node, and the two ways the test process reaches into it.

    ns = NetNS.create("aicr-rn-1234")        # a new namespace held by a `sleep` of ours; lo up
    ns.call(plane.start)                      # runs in a long-lived thread that joined the namespace: the
                                              # processes it starts live there, and die if that thread does
    fwd = ns.forward(api_port)                # 127.0.0.1:<fwd.port> on the host -> 127.0.0.1:<api_port> inside
    subprocess.run(ns.exec_prefix() + ["sysctl", "net.ipv4.ip_forward"])
    ns.delete()                               # closes forwarders, kills the holder: the namespace is gone

The namespace has no name under /run/netns (nothing on the machine refers to it): it lives as long as a process
is in it, so killing its processes removes it. Nothing is added to the machine's own network: the namespace
starts empty (only its ``lo``), every address and
the one iptables rule (the ``kubernetes`` Service ClusterIP -> the API server, standing in for kube-proxy) live
inside it, and a forwarder is a listening socket of this process on the host's loopback, closed at the end.

Why a thread: the network namespace is per thread in Linux (``setns(CLONE_NEWNET)`` works in a threaded
process), and children inherit the namespace of the thread that forks them. The thread is a daemon, so
``PR_SET_PDEATHSIG`` on the children (see ``cluster.die_with_parent``) fires only when the process dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import socket
import subprocess
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
T = TypeVar("T")
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NetNSError(RuntimeError):
    """A namespace step failed; the message holds the command and its output."""


def _die_with_parent() -> None:
    _LIBC.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)


def inode(path: str) -> int:
    """Inode of a namespace file (``/proc/PID/ns/net``), 0 if it cannot be read."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


@dataclass
class NetNS:
    """One named network namespace and the worker thread that lives in it."""

    name: str
    holder: Optional["subprocess.Popen[bytes]"] = None
    _jobs: "queue.Queue[Optional[tuple[Callable[[], Any], Future[Any]]]]" = field(default_factory=queue.Queue)
    _thread: Optional[threading.Thread] = None
    _forwarders: list["Forwarder"] = field(default_factory=list)

    @classmethod
    def create(cls, name: str) -> "NetNS":
        holder = subprocess.Popen(
            ["unshare", "--net", "--", "sleep", "infinity"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        ns = cls(name, holder)
        try:
            deadline = time.monotonic() + 10
            while inode(str(ns.path)) in (0, inode("/proc/self/ns/net")):  # until unshare has exec'd sleep
                if holder.poll() is not None or time.monotonic() > deadline:
                    raise NetNSError(f"unshare --net failed (exit {holder.poll()})")
                time.sleep(0.02)
            ns._start_thread()
            ns.run(["ip", "link", "set", "lo", "up"])
        except BaseException:
            ns.delete()
            raise
        return ns

    @property
    def path(self) -> Path:
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/ns/net")

    @property
    def inode(self) -> int:
        return inode(str(self.path))

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command in this namespace (and only that: same mounts, same cgroup)."""
        return ["nsenter", f"--net={self.path}", "--"]

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.exec_prefix() + argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise NetNSError(
                f"in netns {self.name}: {' '.join(argv)} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def add_address(self, cidr: str) -> None:
        self.run(["ip", "addr", "add", cidr, "dev", "lo"])

    def dnat(self, ip: str, port: int, to_port: int) -> None:
        """Connections to ip:port inside the namespace go to 127.0.0.1:to_port (what kube-proxy would do)."""
        self.run(["sysctl", "-q", "-w", "net.ipv4.conf.all.route_localnet=1"])
        self.run(
            [
                "iptables",
                "-w",
                "-t",
                "nat",
                "-A",
                "OUTPUT",
                "-d",
                f"{ip}/32",
                "-p",
                "tcp",
                "--dport",
                str(port),
                "-j",
                "DNAT",
                "--to-destination",
                f"127.0.0.1:{to_port}",
            ]
        )

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the namespace thread and return its result (exceptions are re-raised here)."""
        assert self._thread is not None and self._thread.is_alive(), "namespace thread is gone"
        fut: Future[T] = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def forward(self, port: int) -> "Forwarder":
        fwd = Forwarder(self, port)
        self._forwarders.append(fwd)
        return fwd

    def delete(self) -> None:
        """Close the forwarders, stop the thread, remove the namespace. Idempotent."""
        for fwd in self._forwarders:
            fwd.close()
        self._forwarders.clear()
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=10)
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()

    # ------------------------------------------------------------------ internals
    def _start_thread(self) -> None:
        joined: Future[None] = Future()
        self._thread = threading.Thread(target=self._loop, args=(joined,), name=f"netns-{self.name}", daemon=True)
        self._thread.start()
        joined.result()

    def _loop(self, joined: "Future[None]") -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                if _LIBC.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NetNSError(f"setns({self.path}): {os.strerror(err)}")
            finally:
                os.close(fd)
        except BaseException as exc:
            joined.set_exception(exc)
            return
        joined.set_result(None)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, fut = job
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)


class Forwarder:
    """Accepts on the host's 127.0.0.1 (an ephemeral port) and relays each connection to 127.0.0.1:``port``
    inside the namespace. The outgoing sockets are made by the namespace thread, so they belong to it; two
    threads per connection copy the bytes, one per direction."""

    def __init__(self, ns: NetNS, port: int) -> None:
        self.ns, self.target = ns, port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name=f"fwd-{port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self._thread.join(timeout=10)
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self._open.clear()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _addr = self.listener.accept()
            except OSError:
                return
            try:
                upstream = self.ns.call(lambda: socket.create_connection(("127.0.0.1", self.target), timeout=10))
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            ends = [2]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._copy, args=(a, b, ends), daemon=True).start()

    def _copy(self, src: socket.socket, dst: socket.socket, ends: list[int]) -> None:
        """Copy src -> dst until EOF; the second direction to finish closes both sockets."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            ends[0] -= 1
            if ends[0]:
                return
            for s in (src, dst):
                self._open.discard(s)
                s.close()
