"""Test PKI for the local control plane, made with the ``openssl`` command line tool.

Why the CLI: the ``cryptography`` package is not a dependency of this project, and ``openssl`` (3.x) is on
every developer machine and on CI. Every call passes an argument list (no shell).

One CA signs everything (serving and client certificates); the apiserver trusts it for client certificates
(``--client-ca-file``) and for the kubelet's serving certificate (``--kubelet-certificate-authority``).
Keys are ECDSA P-256: they are generated in milliseconds, and Go, OpenSSL and Python's ``ssl`` accept them.

Kubernetes identities from client certificates: user name = subject CN, groups = each subject O.
``O=system:masters`` is bound to ``cluster-admin`` and bypasses RBAC.

Typical use (see :class:`tests.controlplane.cluster.ControlPlane`)::

    pki = create_pki(Path("/tmp/run/pki"))
    crt, key = pki.issue_client_cert("alice", groups=["dev"])   # a non-admin user
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

DAYS = "3650"
APISERVER_SANS: tuple[str, ...] = (
    "127.0.0.1",
    "localhost",
    "10.0.0.1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
KUBELET_SANS: tuple[str, ...] = ("127.0.0.1", "localhost")


class PKIError(RuntimeError):
    """An ``openssl`` call failed; the message holds its command line and stderr."""


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PKIError(f"openssl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")


def _subject(cn: str, orgs: Iterable[str] = ()) -> str:
    """An ``openssl -subj`` string; '/', '+', ',', '=' and '\\' in values are escaped."""

    def esc(value: str) -> str:
        for ch in "\\/+,=":
            value = value.replace(ch, "\\" + ch)
        return value

    return "".join(f"/O={esc(o)}" for o in orgs) + f"/CN={esc(cn)}"


def _san(names: Sequence[str]) -> str:
    parts = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            parts.append(f"IP:{name}")
        except ValueError:
            parts.append(f"DNS:{name}")
    return ",".join(parts)


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


@dataclass(frozen=True)
class PKI:
    """Paths of the generated files, all absolute, all inside ``dir``."""

    dir: Path
    ca_crt: Path
    ca_key: Path
    apiserver_crt: Path
    apiserver_key: Path
    admin_crt: Path
    admin_key: Path
    kubelet_crt: Path
    kubelet_key: Path
    kubelet_client_crt: Path
    kubelet_client_key: Path
    sa_key: Path
    sa_pub: Path

    def issue_cert(
        self, name: str, cn: str, *, orgs: Iterable[str] = (), client: bool = True, sans: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        """Issue a leaf certificate signed by the CA; returns ``(crt, key)`` named ``<name>.crt/.key``.

        ``client=True`` gives extendedKeyUsage clientAuth; ``sans`` (IPs or DNS names) make it a serving cert.
        """
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        crt = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        usages = (["clientAuth"] if client else []) + (["serverAuth"] if sans else [])
        if not usages:
            raise ValueError("a certificate needs client=True or some sans")
        lines = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=" + ",".join(usages),
        ]
        if sans:
            lines.append("subjectAltName=" + _san(sans))
        ext.write_text("\n".join(lines) + "\n")
        _new_key(key)
        _openssl("req", "-new", "-key", str(key), "-subj", _subject(cn, orgs), "-out", str(csr))
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.ca_crt),
            "-CAkey",
            str(self.ca_key),
            "-set_serial",
            str(secrets.randbits(63)),
            "-days",
            DAYS,
            "-sha256",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        )
        csr.unlink()
        ext.unlink()
        return crt, key

    def issue_client_cert(self, username: str, groups: Iterable[str] = ()) -> tuple[Path, Path]:
        """Client certificate for a Kubernetes user (CN=username, one O per group)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in username)
        return self.issue_cert(f"user-{safe}-{secrets.token_hex(3)}", username, orgs=groups)


def create_pki(directory: Path) -> PKI:
    """Create the CA and every certificate and key the control plane and the test kubelet need."""
    d = directory.resolve()
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    _new_key(ca_key)
    _openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(ca_key),
        "-subj",
        "/CN=kubectl-aicr-test-ca",
        "-days",
        DAYS,
        "-sha256",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        "-out",
        str(ca_crt),
    )
    sa_key, sa_pub = d / "sa.key", d / "sa.pub"
    _new_key(sa_key)
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    partial = PKI(d, ca_crt, ca_key, *([d / "unset"] * 8), sa_key, sa_pub)
    apiserver = partial.issue_cert("apiserver", "kube-apiserver", client=False, sans=APISERVER_SANS)
    admin = partial.issue_cert("admin", "kubectl-aicr-test-admin", orgs=["system:masters"])
    kubelet = partial.issue_cert("kubelet", "process-kubelet", client=False, sans=KUBELET_SANS)
    kubelet_client = partial.issue_cert(
        "apiserver-kubelet-client", "kube-apiserver-kubelet-client", orgs=["system:masters"]
    )
    return PKI(d, ca_crt, ca_key, *apiserver, *admin, *kubelet, *kubelet_client, sa_key, sa_pub)
