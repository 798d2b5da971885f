"""Issue 13, offline: what ``-o FILE`` may replace, inputs no snapshot can be, closed streams and pipes, Ctrl-C,
bounded work on hostile inputs, terminal escapes.

Each test drives the real entry point in a subprocess where the process matters (exit codes, closed descriptors,
signals, memory) and the pure functions otherwise. Nothing here writes over a system device unless the code
under test first says it will write through it (``plan_write``), so a regression cannot replace ``/dev/null``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from kubectl_aicr import snapshot_io
from kubectl_aicr.errors import InvalidInput
from tests.procs import terminal_signals

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "fixtures" / "snapshots"
A = str(SNAPSHOTS / "node-a.yaml")
DRIFT = str(SNAPSHOTS / "node-a-drift.yaml")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": "/nonexistent/kubeconfig"}
IS_ROOT = os.geteuid() == 0


def cli(
    *args: str,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
    preexec: Optional[Callable[[], None]] = None,
    cwd: Optional[Path] = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", *args],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        preexec_fn=preexec,
        env=ENV,
        cwd=cwd,
        timeout=120,
    )


def one_error(r: subprocess.CompletedProcess[bytes]) -> str:
    lines = [ln for ln in r.stderr.decode().splitlines() if not ln.startswith("hint: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr.decode()
    return lines[0]


def snap_yaml(data_lines: str) -> str:
    return (
        "kind: Snapshot\napiVersion: aicr.nvidia.com/v1alpha1\nmeasurements:\n- type: GPU\n  subtypes:\n"
        "  - subtype: smi\n    data:\n" + data_lines
    )


def temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".aicr-")]


# ================================================================ 1. -o FILE: what is replaced, what is written through


def test_regular_file_is_replaced_atomically_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "snap.yaml"
    target.write_text("old\n")
    target.chmod(0o640)
    assert snapshot_io.plan_write(str(target)).how == "atomic"
    snapshot_io.write_file_atomic(str(target), "new\n")
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert temp_files(tmp_path) == []


def test_symlink_is_followed_the_link_kept_and_the_target_replaced(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "snap.yaml"
    target.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to("real/snap.yaml")
    chain = tmp_path / "chain.yaml"
    chain.symlink_to("link.yaml")
    snapshot_io.write_file_atomic(str(chain), "new\n")
    assert chain.is_symlink() and link.is_symlink() and os.readlink(link) == "real/snap.yaml"
    assert target.read_text() == "new\n" and not target.is_symlink()
    assert temp_files(tmp_path) == [] and temp_files(tmp_path / "real") == []


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.yaml"
    link.symlink_to("made.yaml")
    snapshot_io.write_file_atomic(str(link), "new\n")
    assert link.is_symlink() and (tmp_path / "made.yaml").read_text() == "new\n"


def test_fifo_is_written_through_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    snapshot_io.write_file_atomic(str(fifo), "through the pipe\n")
    reader.join(10)
    assert got == [b"through the pipe\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_snapshot_local_into_a_fifo_end_to_end(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = cli("snapshot", "--local", "-o", str(fifo))
    reader.join(10)
    assert r.returncode == 0, r.stderr
    assert got and got[0].startswith(b"kind: Snapshot") and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert temp_files(tmp_path) == []


def test_dev_null_is_written_through_and_stays_a_character_device() -> None:
    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode)
    assert snapshot_io.plan_write("/dev/null").how == "through"  # checked first: never rename over the real one
    snapshot_io.write_file_atomic("/dev/null", "discarded\n")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


@pytest.mark.skipif(not IS_ROOT, reason="making device nodes needs root")
def test_private_character_device_is_not_replaced(tmp_path: Path) -> None:
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    r = cli("snapshot", "--local", "-o", str(dev))
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and temp_files(tmp_path) == []


@pytest.mark.parametrize("alias", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_dev_stdout_writes_to_standard_output(alias: str) -> None:
    assert snapshot_io.plan_write(alias).how == "fd"  # checked first: never rename over /dev/stdout
    link_before = os.readlink("/dev/stdout")
    code = f"from kubectl_aicr import snapshot_io; snapshot_io.write_file_atomic({alias!r}, 'to stdout\\n')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=60)
    assert r.returncode == 0 and r.stdout == b"to stdout\n", r.stderr
    assert os.path.islink("/dev/stdout") and os.readlink("/dev/stdout") == link_before


def test_snapshot_local_to_dev_stdout_appends_to_a_redirected_file(tmp_path: Path) -> None:
    assert snapshot_io.plan_write("/dev/stdout").how == "fd"
    out = tmp_path / "out.yaml"
    out.write_text("# kept\n")
    with open(out, "ab") as f:
        r = cli("snapshot", "--local", "-o", "/dev/stdout", stdout=f)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert text.startswith("# kept\nkind: Snapshot")  # written through the descriptor: '>>' keeps what was there


def test_special_files_are_refused_with_one_line(tmp_path: Path) -> None:
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        cases = {
            str(tmp_path): "is a directory",
            str(sock_path): "is a socket",
            "/proc/version": "kernel file",
            "/proc/new-file": "kernel file",
            "/dev/stdin": "standard input",
        }
        if IS_ROOT:
            blk = tmp_path / "blk"
            os.mknod(blk, 0o600 | stat.S_IFBLK, os.makedev(7, 0))
            cases[str(blk)] = "is a block device"
        for path, message in cases.items():
            with pytest.raises(InvalidInput, match=message):
                snapshot_io.check_writable(snapshot_io.FilePath(path))
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    finally:
        sock.close()


def test_snapshot_local_to_proc_version_exits_2_before_collecting() -> None:
    r = cli("snapshot", "--local", "-o", "/proc/version")
    assert r.returncode == 2
    assert one_error(r) == "error: /proc/version: is a kernel file under /proc or /sys, not a place for a snapshot"


def test_dev_full_write_through_is_exit_2_one_line() -> None:
    assert snapshot_io.plan_write("/dev/full").how == "through"  # checked first: never rename over the real one
    r = cli("snapshot", "--local", "-o", "/dev/full")
    assert r.returncode == 2 and "no space left" in one_error(r)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Any:
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_on_o_file_leaves_the_target_and_no_temp_file(tiny_tmpfs: Path) -> None:
    target = tiny_tmpfs / "snap.yaml"
    target.write_text("old\n")
    (tiny_tmpfs / "filler").write_bytes(b"x" * 40_000)  # a snapshot (~45 KB) no longer fits
    r = cli("snapshot", "--local", "-o", str(target))
    assert r.returncode == 2 and "no space left on the device" in one_error(r)
    assert target.read_text() == "old\n" and temp_files(tiny_tmpfs) == []


def test_disk_full_on_stdout_is_exit_2_one_line() -> None:
    with open("/dev/full", "wb") as full:
        r = cli("diff", A, DRIFT, stdout=full)
    assert r.returncode == 2 and one_error(r) == "error: cannot write the output: No space left on device"


# =================================================================== 10/12. inputs no snapshot can be: exit 2, one line

DEEP = 990
BAD_INPUTS = {
    "deep.json": ('{"kind":"Snapshot","measurements":' + "[" * DEEP + "]" * DEEP + "}", "nested more than 32 levels"),
    "deep-flow.yaml": ("kind: Snapshot\nmeasurements: " + "[" * DEEP + "]" * DEEP + "\n", "nested more than 32 levels"),
    "deep-block.yaml": (
        "kind: Snapshot\nmeasurements:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(DEEP)),
        "nested more than 32 levels",
    ),
    "int-digits.json": (
        '{"kind":"Snapshot","measurements":[{"type":"GPU","subtypes":[{"subtype":"s","data":{"x":'
        + "9" * 5000
        + "}}]}]}",
        "4300 digits",
    ),
    "int-digits.yaml": (snap_yaml("      x: " + "9" * 5000 + "\n"), "4300 digits"),
    "int-hex.yaml": (
        snap_yaml("      x: 0x" + "f" * 50_000 + "\n"),
        "$.measurements[0].subtypes[0].data.x: an integer of about 60,205 digits is too large",
    ),
    "int-key.yaml": (
        snap_yaml("      1: one\n      b: two\n"),
        "$.measurements[0].subtypes[0].data: key 1 (int) is not a string",
    ),
    "bool-key.yaml": (
        "kind: Snapshot\nmetadata:\n  true: x\nmeasurements: []\n",
        "$.metadata: key True (bool) is not a string",
    ),
    "nan.json": (
        '{"kind":"Snapshot","measurements":[{"type":"GPU","subtypes":[{"subtype":"s","data":{"x":NaN}}]}]}',
        "NaN is not a number a snapshot can hold",
    ),
    "infinity.json": (
        '{"kind":"Snapshot","measurements":[{"type":"GPU","subtypes":[{"subtype":"s","data":{"x":-Infinity}}]}]}',
        "-Infinity is not a number a snapshot can hold",
    ),
    "overflow.json": (
        '{"kind":"Snapshot","measurements":[{"type":"GPU","subtypes":[{"subtype":"s","data":{"x":1e400}}]}]}',
        "$.measurements[0].subtypes[0].data.x: inf is not a number",
    ),
    "nan.yaml": (snap_yaml("      x: .nan\n"), "$.measurements[0].subtypes[0].data.x: nan is not a number"),
    "inf.yaml": (
        snap_yaml("      ok: 1\n      x: -.inf\n"),
        "$.measurements[0].subtypes[0].data.x: -inf is not a number",
    ),
    "dup.json": (
        '{"kind":"Snapshot","measurements":[{"type":"GPU","subtypes":[{"subtype":"s","data":{"x":1,"x":2}}]}]}',
        "$.measurements[0].subtypes[0].data: duplicate key 'x'",
    ),
    "dup-top.json": ('{"kind":"Snapshot","kind":"Snapshot","measurements":[]}', "$: duplicate key 'kind'"),
    "dup.yaml": (
        snap_yaml("      x: 1\n      y: 2\n      x: 3\n"),
        "$.measurements[0].subtypes[0].data: duplicate key 'x'",
    ),
    "dup-flow.yaml": (
        "kind: Snapshot\nmeasurements: [{type: GPU, type: OS}]\n",
        "$.measurements[0]: duplicate key 'type'",
    ),
    "dup-anchor.yaml": (
        snap_yaml("      a: &v 1\n      x: *v\n      x: 2\n"),
        "$.measurements[0].subtypes[0].data: duplicate key 'x'",
    ),
    "dup-int.yaml": (snap_yaml("      1: a\n      01: b\n"), "duplicate key 1"),
    "dup-tagged.yaml": (
        snap_yaml("      x: !!str 1\n      x: 2\n"),
        "$.measurements[0].subtypes[0].data: duplicate key 'x'",
    ),
}


@pytest.mark.parametrize(
    "text, path",
    [
        ("a: 1\nb: 2\na: 3\n", "block"),
        ("{a: 1, a: 2}\n", "composed"),
        ("a: !!str 1\na: 2\n", "pyyaml"),
        ("<<: {a: 1}\na: 2\n", "pyyaml"),
    ],
)
def test_every_yaml_path_reports_duplicates_and_still_loads_like_pyyaml(text: str, path: str) -> None:
    import yaml

    from kubectl_aicr import fastyaml

    found: fastyaml.Duplicates = []
    docs = fastyaml.load_all(text, duplicates=found)
    assert docs == list(yaml.load_all(text, Loader=yaml.CSafeLoader))  # last one wins, as PyYAML
    assert [k for _, k in found] == ([] if text.startswith("<<") else ["a"])  # a merged key is no duplicate
    assert fastyaml.load_all(text) == docs


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_inputs_are_refused_by_parse_document(name: str) -> None:
    text, message = BAD_INPUTS[name]
    with pytest.raises(InvalidInput) as e:
        snapshot_io.parse_document(text.encode(), source=name)
    assert message in e.value.message and e.value.message.startswith(f"{name}: ")


@pytest.mark.parametrize(
    "name",
    [
        "deep.json",
        "deep-flow.yaml",
        "int-digits.json",
        "int-hex.yaml",
        "int-key.yaml",
        "nan.yaml",
        "dup.yaml",
        "dup.json",
    ],
)
@pytest.mark.parametrize("command", ["validate", "diff"])
def test_bad_inputs_exit_2_with_one_line(tmp_path: Path, name: str, command: str) -> None:
    text, message = BAD_INPUTS[name]
    (tmp_path / name).write_text(text)
    args = ["validate", name] if command == "validate" else ["diff", name, A]
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and message in one_error(r)


def test_diff_with_mixed_key_types_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(snap_yaml("      1: one\n      b: two\n"))
    (tmp_path / "b.yaml").write_text(snap_yaml("      1: uno\n      b: two\n"))
    r = cli("diff", "a.yaml", "b.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "key 1 (int) is not a string" in one_error(r)


def test_valid_documents_still_load_and_merge_keys_are_not_duplicates() -> None:
    doc = snapshot_io.parse_document((SNAPSHOTS / "fleet-20.yaml").read_bytes(), source="fleet")
    assert doc["kind"] == "SnapshotList"
    merged = (
        snap_yaml("      x: 1\n") + "- type: OS\n  subtypes:\n  - subtype: a\n    data: &d {k: 1}\n"
        "  - subtype: b\n    data:\n      <<: *d\n      k: 2\n"
    )
    assert snapshot_io.parse_document(merged.encode(), source="m")["measurements"][1]["subtypes"][1]["data"] == {"k": 2}
    big = snap_yaml("      max: 18446744073709551615\n      f: 1.0e+300\n")
    assert (
        snapshot_io.parse_document(big.encode(), source="b")["measurements"][0]["subtypes"][0]["data"]["max"]
        == 2**64 - 1
    )


def test_json_output_is_standard_json() -> None:
    from kubectl_aicr.diff import render as diff_render

    with pytest.raises(ValueError):
        diff_render.dump_machine({"x": float("nan")}, "json")
    with pytest.raises(ValueError):
        snapshot_io.dumps({"x": float("inf")}, "json")


# ============================================================================ 10. closed streams


def test_stdin_closed_is_exit_2_one_line() -> None:
    r = cli("diff", A, "-", stdin=None, preexec=lambda: os.close(0))
    assert (
        r.returncode == 2
        and one_error(r) == "error: -: standard input is closed; pipe a snapshot in or give a file name"
    )


@pytest.mark.parametrize("args", [("diff", A, DRIFT), ("diff", A, A), ("validate", A), ("schema",)])
def test_stdout_closed_is_exit_2_one_line(args: tuple[str, ...]) -> None:
    r = cli(*args, stdout=None, preexec=lambda: os.close(1))
    assert r.returncode == 2 and "standard output is closed" in one_error(r)


def test_stdout_closed_does_not_matter_with_o_file(tmp_path: Path) -> None:
    r = cli("snapshot", "--local", "-o", str(tmp_path / "s.yaml"), stdout=None, preexec=lambda: os.close(1))
    assert r.returncode == 0 and (tmp_path / "s.yaml").read_text().startswith("kind: Snapshot"), r.stderr


# ============================================================================ 11. a closed pipe: 141, silent


@pytest.mark.parametrize(
    "args",
    [
        ("diff", A, A),
        ("diff", A, DRIFT),
        ("validate", A),
        ("schema",),
        ("version",),
        ("snapshot", "--local"),
        ("diff", A, DRIFT, "-o", "json"),
    ],
)
def test_writing_into_a_closed_pipe_exits_141_silently(args: tuple[str, ...]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like '| head -0': nobody will read
    try:
        r = cli(*args, stdout=write_end)
    finally:
        os.close(write_end)
    assert r.returncode == 141 and r.stderr == b""


def test_exit_code_141_is_documented() -> None:
    from kubectl_aicr import errors

    assert errors.BROKEN_PIPE == 141 and "141" in errors.EXIT_CODES_HELP and "141" in (errors.__doc__ or "")
    assert "| 141 |" in (ROOT / "README.md").read_text()


# ============================================================================ 10. Ctrl-C

INTERRUPT_AT = """
import os, signal, sys
sys.argv = ["kubectl-aicr", "snapshot", "--local", "-o", {out!r}]
{setup}
from kubectl_aicr.cli import main
main()
"""


#: Ctrl-C while click (the CLI's first heavy import) loads.
SIGINT_WHILE_LOADING = """
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Hook())
"""


def sigint_when_called(where: str) -> str:
    """Setup code: Ctrl-C as ``module.function`` is called (then it runs)."""
    module, name = where.rsplit(".", 1)
    return f"""
import {module}
_real = {module}.{name}
def _interrupt(*a, **k):
    os.kill(os.getpid(), signal.SIGINT)
    return _real(*a, **k)
{module}.{name} = _interrupt
"""


def _interrupted(
    tmp_path: Path,
    setup: str,
    preexec: Callable[[], None] = terminal_signals,
) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    out = tmp_path / "snap.yaml"
    out.write_text("old\n")
    code = INTERRUPT_AT.format(out=str(out), setup=setup)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, env=ENV, timeout=120, preexec_fn=preexec)
    return r, out


def test_ctrl_c_while_modules_load_is_130_without_traceback(tmp_path: Path) -> None:
    r, out = _interrupted(tmp_path, SIGINT_WHILE_LOADING)
    assert r.returncode == 130 and r.stderr.strip() == b"interrupted"
    assert out.read_text() == "old\n" and temp_files(tmp_path) == []


@pytest.mark.parametrize("where", ["collector.snapshot.collect_snapshot", "os.fsync"])
def test_ctrl_c_while_collecting_or_writing_is_130_target_untouched(tmp_path: Path, where: str) -> None:
    r, out = _interrupted(tmp_path, sigint_when_called(where))
    assert r.returncode == 130 and r.stderr.strip() == b"interrupted"
    assert out.read_text() == "old\n" and temp_files(tmp_path) == []


def test_ctrl_c_ignored_by_whoever_started_the_cli_stays_ignored(tmp_path: Path) -> None:
    """``nohup kubectl aicr snapshot ... &``: SIGINT arrives ignored, and the CLI honours that (POSIX) even while
    its modules load, where it otherwise answers Ctrl-C itself."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    setup = SIGINT_WHILE_LOADING + sigint_when_called("collector.snapshot.collect_snapshot")
    r, out = _interrupted(tmp_path, setup, preexec=ignore_sigint)
    assert r.returncode == 0, r.stderr
    assert out.read_text() != "old\n" and "kind: Snapshot" in out.read_text()


# ============================================================================ 13. bounded work

MEASURE = """
import json, sys, tracemalloc
{setup}
tracemalloc.start()
result = run()
print(json.dumps({{"peak": tracemalloc.get_traced_memory()[1], "result": result}}))
"""


def measured(setup: str) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, "-c", MEASURE.format(setup=setup)], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def test_300000_schema_errors_stop_early_in_little_memory() -> None:
    setup = """
from kubectl_aicr import schema
doc = {"kind": "Snapshot", "measurements": [{"type": "GPU", "subtypes": [
    {"subtype": f"s{j}", "data": {f"k{i}": [i] for i in range(1000)}} for j in range(300)]}]}
def run():
    found = schema.problems(doc)
    return [len(found), found[-1]]
"""
    m = measured(setup)
    count, last = m["result"]
    assert count == 101 and last == "... stopped after the first 100 errors; fix these and check again"
    assert m["peak"] < 20 * 1024 * 1024  # the old code kept all 300,000 errors: over 1 GB


def test_validate_command_says_it_stopped(tmp_path: Path) -> None:
    lines = ["kind: Snapshot", "measurements:", "- type: GPU", "  subtypes:", "  - subtype: s", "    data:"]
    lines += [f"      k{i}: {{}}" for i in range(5000)]
    (tmp_path / "bad.yaml").write_text("\n".join(lines) + "\n")
    r = cli("validate", "bad.yaml", cwd=tmp_path)
    err = r.stderr.decode().splitlines()
    assert r.returncode == 2 and err[0] == "error: bad.yaml: not a valid snapshot (the first 100 errors)"
    assert len(err) == 102 and err[-1].strip().startswith("... stopped after the first 100 errors")


def test_gzip_bomb_in_a_configmap_is_refused_in_bounded_memory() -> None:
    setup = """
import base64, gzip
from kubectl_aicr import cmstore
from kubectl_aicr.errors import InvalidInput
member = gzip.compress(b"\\0" * (1 << 20), 9)
bomb = base64.b64encode(member * 1000).decode()  # ~1 MB of gzip members holding 1 GB
def run():
    try:
        cmstore.decode({"format": "yaml"}, {"snapshot.yaml.gz": bomb}, source="cm://ns/x")
    except InvalidInput as e:
        return str(e)
    return "accepted"
"""
    m = measured(setup)
    assert m["result"] == (
        "cm://ns/x: snapshot.yaml.gz: decompresses to more than the 52,428,800-byte limit for a snapshot; refusing it"
    )
    assert m["peak"] < 80 * 1024 * 1024  # the limit (50 MiB) plus one step; the old code inflated all 1 GB


def test_compressed_configmaps_still_decode() -> None:
    from kubectl_aicr import cmstore

    text = (SNAPSHOTS / "fleet-20.yaml").read_text()
    data, binary = cmstore.encode(text * 8, "yaml")
    assert binary and cmstore.decode(data, binary, source="cm://a/b").decode() == text * 8
    two = base64.b64encode(gzip.compress(b"a: 1\n") + gzip.compress(b"b: 2\n")).decode()
    assert cmstore.decode({}, {"snapshot.yaml.gz": two}, source="s") == b"a: 1\nb: 2\n"
    for bad in (b"", b"not gzip", gzip.compress(b"truncated")[:-4]):
        with pytest.raises(InvalidInput, match="is not valid gzip data"):
            cmstore.decode({}, {"snapshot.yaml.gz": base64.b64encode(bad).decode()}, source="s")


# ============================================================================ 14. terminal escapes

HOSTILE = "\x1b]0;owned\x07\x1b[31mred\x9b2J\u202eevil\u2066x"


def _no_controls(text: str) -> bool:
    return not any(ch in text for ch in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066"))


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_diff_escapes_terminal_controls(tmp_path: Path, fmt: str) -> None:
    value = json.dumps(HOSTILE)
    (tmp_path / "a.yaml").write_text(
        snap_yaml(f"      x: {value}\n      {value}: 1\n").replace("subtype: smi", f"subtype: {value}")
    )
    (tmp_path / "b.yaml").write_text(snap_yaml("      x: plain\n").replace("subtype: smi", f"subtype: {value}"))
    r = cli("diff", "a.yaml", "b.yaml", "-o", fmt, "--color", "never", cwd=tmp_path)
    out = r.stdout.decode()
    assert r.returncode == 1 and _no_controls(out), out
    assert "\\u001b]0;owned\\u0007\\u001b[31mred\\u009b2J\\u202eevil\\u2066x" in out
    assert "\\x1b]0;owned" in out  # the key and the subtype name, outside quotes


def test_error_messages_escape_terminal_controls(tmp_path: Path) -> None:
    name = "\x1b[2Jgone\u202e.yaml"
    r = cli("validate", name, cwd=tmp_path)
    assert r.returncode == 2 and _no_controls(r.stderr.decode())
    assert one_error(r) == "error: \\x1b[2Jgone\\u202e.yaml: no such file"


# ============================================================================ 10. --timeout


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e400", "infinity", "8d", "200h", "1e9"])
def test_timeout_must_be_a_finite_reasonable_duration(text: str) -> None:
    from kubectl_aicr.deploy import flags

    with pytest.raises(InvalidInput, match="--timeout"):
        flags.parse_duration(text)


def test_timeout_nan_is_refused_before_any_connection() -> None:
    r = cli("snapshot", "--timeout", "nan")
    assert (
        r.returncode == 2
        and one_error(r) == "error: --timeout: 'nan' is not a finite duration (examples: 90s, 5m, 1h30m)"
    )
