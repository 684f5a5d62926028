"""bench/heap_probe: a process started with it on PYTHONPATH reports its heap on SIGUSR2, and only then."""

import os
import signal
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[2] / "bench" / "heap_probe"

CHILD = """
import os, signal, time
class Held:
    pass
kept = [Held() for _ in range(5000)]
cache = {"job": {"kind": "Job", "metadata": {"name": "train"}, "status": {}}}
os.kill(os.getpid(), signal.SIGUSR2)
time.sleep(0.2)
print(os.getpid())
"""


HOLDER = """
import json, os, signal, time
by_name = {}
for i in range(50):
    body = json.loads('{"metadata": {"name": "v%d", "labels": {"model": "iris"}}}' % i)
    by_name[body["metadata"]["name"]] = body["metadata"]["labels"]
os.kill(os.getpid(), signal.SIGUSR2)
time.sleep(0.2)
print(os.getpid())
"""


def _run(child: str = CHILD, *args: str, **env: str) -> tuple[int, Path]:
    out = subprocess.run(
        [sys.executable, "-c", child, *args],
        env={**os.environ, "PYTHONPATH": str(PROBE), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return out.returncode, Path(f"/tmp/heap-{out.stdout.strip() or 'none'}.txt")


def test_the_probe_reports_allocators_and_objects_by_type_on_signal():
    code, report = _run(HEAP_PROBE="1")
    assert code == 0
    try:
        text = report.read_text()
    finally:
        report.unlink(missing_ok=True)
    assert text.startswith("VmRSS:")
    assert "# bytes in allocated blocks" in text and "in use bytes" in text  # pymalloc's, glibc's
    held = next(line for line in text.splitlines() if line.endswith(" __main__.Held"))
    assert int(held.split()[2]) == 5000
    kinds = text.split("== whole Kubernetes objects alive")[1].splitlines()
    assert kinds[1].split() == ["1", "Job", "+status"]
    assert kinds[2].strip().startswith("held by builtins.dict keys=['job']")
    assert "== after malloc_trim(0)" in text


def test_the_probe_names_what_holds_objects_made_where_asked():
    # Only the operator is traced: its command line names modelops.cli.
    code, report = _run(
        HOLDER, "modelops.cli", HEAP_PROBE="1", HEAP_PROBE_TRACE="1", HEAP_PROBE_HOLDERS_OF="json/"
    )
    assert code == 0
    try:
        text = report.read_text()
    finally:
        report.unlink(missing_ok=True)
    held = text.split("== objects allocated in json/, by what holds them")[1].splitlines()
    assert any(line.endswith("in builtins.dict keys=['v0', 'v1', 'v2', 'v3']") for line in held[1:4]), held


def test_without_heap_probe_set_the_signal_keeps_its_default_and_writes_nothing():
    code, report = _run()
    assert code == -signal.SIGUSR2  # the default action: the process ends, unprobed
    assert not report.exists()
