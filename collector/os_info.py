"""Operating-system facts of the host (measurement type ``OS``).

Every reader takes its roots as arguments (``proc_root``, ``sys_root``, ``etc_root``), so the agent can point them at
host mounts (``/host/proc``...) and tests at fixture trees. Keys never contain the root: sysctl keys are always
``/proc/sys/...`` whatever ``proc_root`` is.

Subtypes, in emitted order (the first four are the original tool's, with its key style):

``grub``     kernel command line (``/proc/cmdline``): ``param=value`` -> ``{param: value}``; a bare flag -> ``""``;
             duplicates: last wins. Dropped: ``root`` (as the original) and everything after ``--`` (arguments for
             init, not kernel parameters). Secrets keep their key with the value ``"<redacted>"``: a secret-looking
             name (see :func:`secret_name`: password, passphrase, token, bearer, key, auth, ``*_pw``, ``luks.*``...),
             or a secret-looking value (see :func:`secret_value`: a URL or ``user:pass@host`` with a password, a
             ``token=``/``key=``/``sig=``... query or option, a bearer token or JWT); ``systemd.setenv=NAME=VALUE``
             keeps ``NAME`` and redacts ``VALUE`` when either looks secret. Double quotes group a value containing
             spaces (``opt="a b"``) as the kernel does.
``sysctl``   every readable file under ``/proc/sys`` -> ``{"/proc/sys/<path>": value}``; see :data:`SYSCTL_EXCLUDE`.
``kmod``     loaded modules (``/proc/modules``) -> ``{name: true}``.
``release``  os-release -> ``{KEY: value}`` (keys as in the file, quotes removed, empty values dropped).
``kernel``   ``release``, ``version`` (``/proc/sys/kernel/osrelease``, ``.../version``), ``arch`` (``uname -m``).
``cpu``      ``model-name``, ``vendor-id``, ``cpu-family``, ``model``, ``stepping``, ``microcode`` (or ARM's
             ``cpu-implementer``/``cpu-part``), ``logical-cpus``, ``sockets``, ``cores-per-socket``,
             ``threads-per-core``, ``numa-nodes``, ``smt-control``, ``isolated-cpus``.
``memory``   ``mem-total-kb``, ``swap-total-kb``, ``hugepages-total``, ``hugepage-size-kb``, ``hugetlb-kb``,
             ``hugepages-<size>kb-total`` per pool, ``thp-enabled``, ``thp-defrag``.

Values: a whole decimal integer becomes ``int``; anything else is a ``str`` with whitespace runs (tabs, newlines)
collapsed to one space. A source that cannot be read gives its subtype ``status: unavailable`` and the reason.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from collector._util import (
    as_int,
    collapse_ws,
    colon_pairs,
    join,
    paragraphs,
    read_text,
    short_error,
    try_read,
    try_read_line,
    typed,
)
from collector.keys import SECRET, VOLATILE, sysctl_paths
from collector.model import STATUS_PARTIAL, Scalar, Subtype, missing, reading

__all__ = [
    "SYSCTL_EXCLUDE",
    "SYSCTL_MAX_KEYS",
    "HostRoots",
    "collect_cpu",
    "collect_grub",
    "collect_kernel",
    "collect_kmod",
    "collect_memory",
    "collect_release",
    "collect_sysctl",
    "parse_cmdline",
    "parse_cpuinfo",
    "parse_meminfo",
    "parse_modules",
    "parse_os_release",
    "sysctl_excluded",
]

REDACTED = "<redacted>"

#: Hard cap on sysctl keys (a large host has ~1,500 once per-interface net keys are excluded).
SYSCTL_MAX_KEYS = 8000
#: Default time budget for the /proc/sys walk, seconds.
SYSCTL_TIME_BUDGET = 5.0

#: Paths under /proc/sys left out of the ``sysctl`` subtype, as ``fnmatch``-free prefixes/exact names (see
#: :func:`sysctl_excluded`): the volatile and secret sysctls of the key registry (:mod:`collector.keys`, with their
#: reasons), and the ones that are not settings: media state, write-only triggers, per-CPU fan-out.
SYSCTL_EXCLUDE: tuple[str, ...] = (
    "dev/cdrom/",  # the original's exclusion (media state)
    "kernel/sched_domain/",  # per-CPU scheduler topology dump (thousands of keys on big hosts)
    "vm/drop_caches",  # write-only triggers, not settings
    "vm/compact_memory",
    "vm/stat_refresh",
    "net/ipv4/route/flush",
    "net/ipv6/route/flush",
    # plus, by rule (see sysctl_excluded): net/<proto>/conf/<iface>/ for every iface except all and default,
    # net/<proto>/neigh/ (per-interface ARP/ND tables), and any */stable_secret (IPv6 address secret).
) + sysctl_paths(VOLATILE, SECRET)

#: Name words (between ``.``, ``_``, ``-``) that mark a secret: ``api_token``, ``rd.luks.key``, ``db_pw``.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pass",
        "pwd",
        "pw",
        "secret",
        "token",
        "key",
        "apikey",
        "auth",
        "authtoken",
        "bearer",
        "cred",
        "creds",
        "credential",
        "credentials",
        "psk",
        "sig",
        "signature",
        "luks",
    }
)
#: Substrings that mark a secret anywhere in a name, whatever the separators: ``dbpassword``, ``x-auth-token``.
_SECRET_PARTS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "bearer",
    "credential",
    "apikey",
    "privatekey",
    "authorization",
)
#: ``scheme://user:password@`` or ``user:password@host`` (iSCSI, NFS roots).
_USERINFO = re.compile(r"(?:^|://|[=,;\s])[^/:@\s]*:[^/@\s]+@")
#: ``name=`` inside a value: a URL's query (``?token=``, ``&sig=``) or an option list (``opt=a,password=b``).
_INNER_NAME = re.compile(r"(?:^|[?&;,\s])([A-Za-z0-9_.\-]+)=")
_BEARER_OR_JWT = re.compile(
    r"(?i)(?:^|[\s:=])bearer\s+\S|(?:^|[^A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."
)


@dataclass(frozen=True)
class HostRoots:
    proc_root: str = "/proc"
    sys_root: str = "/sys"
    etc_root: str = "/etc"
    uname: Callable[[], Any] = field(default=os.uname)


# ------------------------------------------------------------------------------------------------------ parsers


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines; quotes (``"``/``'``) removed, shell escapes in double quotes undone;
    empty values dropped."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key, value = key.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r'\\([\\"$`])', r"\1", value)
        value = value.strip("\"'")  # the original strips stray quotes too
        if key and value:
            out[key] = value
    return out


def _split_cmdline(text: str) -> list[str]:
    """Split like the kernel: whitespace separates, double quotes group (and are removed)."""
    args: list[str] = []
    cur: list[str] = []
    in_quote = False
    started = False
    for ch in text.strip():
        if ch == '"':
            in_quote = not in_quote
            started = True
            continue
        if ch.isspace() and not in_quote:
            if started:
                args.append("".join(cur))
                cur, started = [], False
            continue
        cur.append(ch)
        started = True
    if started:
        args.append("".join(cur))
    return args


def secret_name(name: str) -> bool:
    """Whether a parameter (or environment variable) name says its value is a secret."""
    low = name.lower()
    return any(w in _SECRET_WORDS for w in re.split(r"[._\-]", low)) or any(p in low for p in _SECRET_PARTS)


def secret_value(value: str) -> bool:
    """Whether a value carries a secret whatever its name: a password in a URL or ``user:pass@host``, a secret
    ``name=`` inside it (query parameters, option lists), a bearer token or a JWT."""
    if _USERINFO.search(value) or _BEARER_OR_JWT.search(value):
        return True
    return any(secret_name(m.group(1)) for m in _INNER_NAME.finditer(value))


def _redact_param(key: str, value: str) -> str:
    if not value:
        return value
    if key.rsplit(".", 1)[-1] == "setenv" and "=" in value:  # systemd.setenv=NAME=VALUE: the name is worth keeping
        name, _, inner = value.partition("=")
        return f"{name}={REDACTED}" if inner and (secret_name(name) or secret_value(inner)) else value
    return REDACTED if secret_name(key) or secret_value(value) else value


def parse_cmdline(text: str) -> dict[str, str]:
    """Kernel command line -> ``{param: value}``; see the module docstring for the rules."""
    out: dict[str, str] = {}
    for arg in _split_cmdline(text):
        if arg == "--":
            break
        key, sep, value = arg.partition("=")
        if not key or key == "root":
            continue
        out[key] = _redact_param(key, value) if sep else ""
    return out


def parse_modules(text: str) -> dict[str, bool]:
    """``/proc/modules`` -> ``{module: True}``."""
    out: dict[str, bool] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts:
            out[parts[0]] = True
    return out


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` -> one dict per block (``processor`` entries on x86/ARM; ARM adds a trailing summary block)."""
    blocks: list[dict[str, str]] = []
    for lines in paragraphs(text):
        cur = dict(colon_pairs(lines))
        if cur:
            blocks.append(cur)
    return blocks


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` -> ``{"MemTotal": 24684084, ...}`` (numbers in the file's unit, kB or pages/counts)."""
    out: dict[str, int] = {}
    for k, v in colon_pairs(text):
        parts = v.split()
        if parts and re.fullmatch(r"\d+", parts[0]):
            out[k] = int(parts[0])
    return out


def _count_cpu_list(text: str) -> int | None:
    """``"0-3,8,10-11"`` -> 7."""
    total = 0
    t = text.strip()
    if not t:
        return 0
    for part in t.split(","):
        a, sep, b = part.partition("-")
        if not a.isdigit() or (sep and not b.isdigit()):
            return None
        total += (int(b) - int(a) + 1) if sep else 1
    return total


# ------------------------------------------------------------------------------------------------------ readers


def _host_root(etc_root: str) -> str:
    return os.path.dirname(os.path.normpath(os.path.abspath(etc_root))) or "/"


def _resolve_in_root(path: str, host_root: str, max_hops: int = 16) -> str:
    """Follow a symlink chain at ``path`` as if ``host_root`` were ``/`` (absolute targets are re-rooted).

    ``/host/etc/os-release -> ../usr/lib/os-release`` resolves to ``/host/usr/lib/os-release``, and an absolute
    ``-> /usr/lib/os-release`` to ``/host/usr/lib/os-release`` too, never to the container's own file.
    """
    for _ in range(max_hops):
        if not os.path.islink(path):
            return path
        target = os.readlink(path)
        if os.path.isabs(target):
            path = join(host_root, target)
        else:
            path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return path


def collect_release(etc_root: str = "/etc") -> Subtype:
    """``os-release`` of the host at ``etc_root`` (falls back to ``<host root>/usr/lib/os-release`` like systemd)."""
    host_root = _host_root(etc_root)
    candidates = [join(etc_root, "os-release"), join(host_root, "usr/lib/os-release")]
    problems: list[str] = []
    for cand in candidates:
        resolved = _resolve_in_root(cand, host_root)
        try:
            text = read_text(resolved)
        except FileNotFoundError:
            if resolved != cand:
                problems.append(f"{cand} -> {resolved}: not found")
            else:
                problems.append(f"{cand}: not found")
            continue
        except OSError as e:
            problems.append(short_error(e))
            continue
        data = parse_os_release(text)
        # The `source` names the file on the host, not the mount point the agent read it through.
        shown = "/" + os.path.relpath(resolved, host_root) if host_root != "/" else resolved
        if not data:
            return reading("release", {}, source=shown, status=STATUS_PARTIAL, reason="no KEY=value lines")
        return reading("release", data, source=shown)
    return missing("release", source="/etc/os-release", reason="; ".join(problems) or "no os-release file")


def collect_kernel(proc_root: str = "/proc", uname: Callable[[], Any] = os.uname) -> Subtype:
    data: dict[str, Scalar] = {}
    release = try_read_line(join(proc_root, "sys/kernel/osrelease"))
    version = try_read_line(join(proc_root, "sys/kernel/version"))
    try:
        u = uname()
    except Exception:  # noqa: BLE001 - an injected uname may fail; the files still count
        u = None
    if release:
        data["release"] = release
    elif u is not None:
        data["release"] = u.release
    if version:
        data["version"] = collapse_ws(version)
    elif u is not None:
        data["version"] = collapse_ws(u.version)
    if u is not None:
        data["arch"] = u.machine
    if not data:
        return missing(
            "kernel", source=join("/proc", "sys/kernel"), reason="neither /proc/sys/kernel nor uname readable"
        )
    return reading("kernel", data, source="/proc/sys/kernel/{osrelease,version}, uname")


def collect_grub(proc_root: str = "/proc") -> Subtype:
    path = join(proc_root, "cmdline")
    try:
        text = read_text(path)
    except OSError as e:
        return missing("grub", source="/proc/cmdline", reason=short_error(e))
    return reading("grub", parse_cmdline(text.replace("\x00", " ")), source="/proc/cmdline")


def collect_kmod(proc_root: str = "/proc") -> Subtype:
    path = join(proc_root, "modules")
    try:
        text = read_text(path)
    except FileNotFoundError:
        return missing(
            "kmod", source="/proc/modules", reason="/proc/modules not found (kernel without loadable module support?)"
        )
    except OSError as e:
        return missing("kmod", source="/proc/modules", reason=short_error(e))
    return reading("kmod", parse_modules(text), source="/proc/modules")


def sysctl_excluded(rel: str) -> bool:
    """Whether ``rel`` (a path relative to /proc/sys, ``/``-separated, directories end with ``/``) is left out."""
    for ex in SYSCTL_EXCLUDE:
        if rel == ex or (ex.endswith("/") and rel.startswith(ex)):
            return True
    parts = rel.rstrip("/").split("/")
    if parts[-1] == "stable_secret":
        return True
    if len(parts) >= 3 and parts[0] == "net":
        if parts[2] == "neigh":
            return True
        if parts[2] == "conf" and len(parts) >= 4 and parts[3] not in ("all", "default"):
            return True
    return False


def _walk_sysctl(base: str, rel: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(rel_path, abs_path)`` for regular files, depth-first in sorted order, pruning excluded directories."""
    try:
        entries = sorted(os.scandir(os.path.join(base, rel) if rel else base), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        sub = f"{rel}{entry.name}"
        try:
            if entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if not sysctl_excluded(sub + "/"):
                    yield from _walk_sysctl(base, sub + "/")
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            continue
        if mode & 0o444 == 0 or sysctl_excluded(sub):
            continue
        yield sub, entry.path


def _sysctl_values(key: str, text: str) -> dict[str, Scalar]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return {key: ""}
    if len(lines) >= 2 and all(len(ln.split()) >= 2 for ln in lines):
        # The original's rule: a table whose every line has >= 2 fields becomes <key>/<first field> = rest.
        out: dict[str, Scalar] = {}
        for ln in lines:
            first, rest = ln.split(None, 1)
            out[f"{key}/{first}"] = typed(collapse_ws(rest))
        return out
    return {key: typed(collapse_ws(" ".join(lines)))}


def collect_sysctl(
    proc_root: str = "/proc", *, max_keys: int = SYSCTL_MAX_KEYS, time_budget: float = SYSCTL_TIME_BUDGET
) -> Subtype:
    base = join(proc_root, "sys")
    if not os.path.isdir(base):
        return missing("sysctl", source="/proc/sys", reason=f"{base} not found")
    deadline = time.monotonic() + time_budget
    data: dict[str, Scalar] = {}
    stopped = ""
    unreadable = 0
    for rel, path in _walk_sysctl(base):
        if len(data) >= max_keys:
            stopped = f"stopped at the {max_keys}-key limit"
            break
        if time.monotonic() > deadline:
            stopped = f"stopped after the {time_budget:g}s time budget"
            break
        try:
            text = read_text(path, 64 * 1024)
        except OSError:
            unreadable += 1  # write-only, permission denied, EIO (stable_secret unset)...
            continue
        data.update(_sysctl_values(f"/proc/sys/{rel}", text))
    if stopped:
        return reading(
            "sysctl", data, source="/proc/sys", status=STATUS_PARTIAL, reason=f"{stopped} ({len(data)} keys)"
        )
    sub = reading("sysctl", data, source="/proc/sys")
    if unreadable:
        sub.context["unreadable"] = str(unreadable)
    return sub


def collect_cpu(proc_root: str = "/proc", sys_root: str = "/sys") -> Subtype:
    data: dict[str, Scalar] = {}
    cpuinfo = try_read(join(proc_root, "cpuinfo"))
    blocks = parse_cpuinfo(cpuinfo) if cpuinfo else []
    procs = [b for b in blocks if "processor" in b]
    first = procs[0] if procs else (blocks[0] if blocks else {})
    for key, name in (
        ("model-name", "model name"),
        ("vendor-id", "vendor_id"),
        ("cpu-family", "cpu family"),
        ("model", "model"),
        ("stepping", "stepping"),
        ("microcode", "microcode"),
        ("cpu-implementer", "CPU implementer"),
        ("cpu-part", "CPU part"),
    ):
        if name in first:
            data[key] = typed(collapse_ws(first[name]))
    if procs:
        data["logical-cpus"] = len(procs)

    cpu_dir = join(sys_root, "devices/system/cpu")
    online = try_read_line(os.path.join(cpu_dir, "online"))
    if "logical-cpus" not in data and online is not None:
        n = _count_cpu_list(online)
        if n is not None:
            data["logical-cpus"] = n
    packages: set[int] = set()
    cores: set[tuple[int, int]] = set()
    try:
        cpu_names = [n for n in os.listdir(cpu_dir) if re.fullmatch(r"cpu\d+", n)]
    except OSError:
        cpu_names = []
    for name in cpu_names:
        pkg = as_int(try_read_line(os.path.join(cpu_dir, name, "topology/physical_package_id")))
        core = as_int(try_read_line(os.path.join(cpu_dir, name, "topology/core_id")))
        if pkg is not None and core is not None:
            packages.add(pkg)
            cores.add((pkg, core))
    if packages:
        data["sockets"] = len(packages)
        data["cores-per-socket"] = len(cores) // len(packages)
        logical = sum(1 for n in cpu_names if os.path.exists(os.path.join(cpu_dir, n, "topology/core_id")))
        if cores and logical % len(cores) == 0:
            data["threads-per-core"] = logical // len(cores)
    elif procs:
        phys = {b.get("physical id") for b in procs if "physical id" in b}
        if phys:
            data["sockets"] = len(phys)
        per_core = as_int(first.get("cpu cores"))
        siblings = as_int(first.get("siblings"))
        if per_core:
            data["cores-per-socket"] = per_core
            if siblings and siblings % per_core == 0:
                data["threads-per-core"] = siblings // per_core
    try:
        nodes = [n for n in os.listdir(join(sys_root, "devices/system/node")) if re.fullmatch(r"node\d+", n)]
        data["numa-nodes"] = len(nodes)
    except OSError:
        pass
    smt = try_read_line(os.path.join(cpu_dir, "smt/control"))
    if smt is not None:
        data["smt-control"] = smt
    isolated = try_read_line(os.path.join(cpu_dir, "isolated"))
    if isolated is not None:
        data["isolated-cpus"] = isolated
    if not data:
        return missing(
            "cpu", source="/proc/cpuinfo", reason="neither /proc/cpuinfo nor /sys/devices/system/cpu readable"
        )
    return reading("cpu", data, source="/proc/cpuinfo, /sys/devices/system/{cpu,node}")


def _bracketed(text: str | None) -> str | None:
    """``"always [madvise] never"`` -> ``"madvise"``."""
    if text is None:
        return None
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else text.strip()


def collect_memory(proc_root: str = "/proc", sys_root: str = "/sys") -> Subtype:
    text = try_read(join(proc_root, "meminfo"))
    if text is None:
        return missing("memory", source="/proc/meminfo", reason=f"{join(proc_root, 'meminfo')} not readable")
    info = parse_meminfo(text)
    data: dict[str, Scalar] = {}
    for key, name in (
        ("mem-total-kb", "MemTotal"),
        ("swap-total-kb", "SwapTotal"),
        ("hugepages-total", "HugePages_Total"),
        ("hugepage-size-kb", "Hugepagesize"),
        ("hugetlb-kb", "Hugetlb"),
    ):
        if name in info:
            data[key] = info[name]
    pools = join(sys_root, "kernel/mm/hugepages")
    try:
        pool_names = sorted(os.listdir(pools))
    except OSError:
        pool_names = []
    for pool in pool_names:
        m = re.fullmatch(r"hugepages-(\d+)kB", pool)
        n = as_int(try_read_line(os.path.join(pools, pool, "nr_hugepages"))) if m else None
        if m and n is not None:
            data[f"hugepages-{m.group(1)}kb-total"] = n
    thp = join(sys_root, "kernel/mm/transparent_hugepage")
    for key, name in (("thp-enabled", "enabled"), ("thp-defrag", "defrag")):
        value = _bracketed(try_read_line(os.path.join(thp, name)))
        if value is not None:
            data[key] = value
    return reading("memory", data, source="/proc/meminfo, /sys/kernel/mm")
