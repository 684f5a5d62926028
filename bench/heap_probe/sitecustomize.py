"""A heap probe for the operator under the bench: where its memory is, read from outside the product.

    HEAP_PROBE=1 PYTHONPATH=bench/heap_probe python bench/operator_scale.py ...
    kill -USR2 <operator pid>        # writes /tmp/heap-<pid>.txt

With HEAP_PROBE_TRACE=1 the operator (only it) also runs tracemalloc from its start, and the
report lists live allocations by file and line (the operator is then about twice as slow).
Python imports this module at start-up when it is on PYTHONPATH; it does nothing unless
HEAP_PROBE is set.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import os
import signal
import sys
import tracemalloc
from typing import Any


def _allocator_stats() -> list[str]:
    """pymalloc's and glibc's own accounts (both write to fd 2, so it is borrowed for a moment)."""
    path = f"/tmp/heap-{os.getpid()}.alloc"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    saved = os.dup(2)
    os.dup2(fd, 2)
    try:
        sys._debugmallocstats()
        ctypes.CDLL("libc.so.6").malloc_stats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
    with open(path) as f:
        text = f.read()
    os.unlink(path)
    keep = ("# arenas", "# bytes in", "arenas *", "Arena", "system bytes", "in use bytes", "Total (incl")
    return [line for line in text.splitlines() if line.startswith(keep)]


def report() -> str:
    gc.collect()
    count: collections.Counter[str] = collections.Counter()
    size: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        t = type(o)
        name = f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', t.__name__)}"
        count[name] += 1
        size[name] += sys.getsizeof(o)
    with open("/proc/self/status") as f:
        rss = next(line for line in f if line.startswith("VmRSS"))
    lines = [
        rss.strip(),
        "== allocators",
        *_allocator_stats(),
        "== gc-tracked objects by type (shallow size)",
    ]
    lines += [f"{size[n] / 1024:10.1f} KiB {count[n]:8d} {n}" for n, _ in size.most_common(40)]
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        by_file = snap.statistics("filename")
        lines.append(
            f"== live allocations (tracemalloc): {sum(s.size for s in by_file) / 2**20:.1f} MiB, by file"
        )
        lines += [f"{s.size / 1024:10.1f} KiB {s.count:8d} {s.traceback[0].filename}" for s in by_file[:40]]
        lines.append("== by line")
        lines += [
            f"{s.size / 1024:10.1f} KiB {s.count:8d} {s.traceback[0].filename}:{s.traceback[0].lineno}"
            for s in snap.statistics("lineno")[:60]
        ]
    return "\n".join(lines) + "\n"


def _on_signal(signum: int, frame: Any) -> None:
    with open(f"/tmp/heap-{os.getpid()}.txt", "w") as f:
        f.write(report())


if os.environ.get("HEAP_PROBE"):
    signal.signal(signal.SIGUSR2, _on_signal)
    with open("/proc/self/cmdline", "rb") as cmdline:
        operator = b"modelops.cli" in cmdline.read()
    if operator and os.environ.get("HEAP_PROBE_TRACE"):
        tracemalloc.start()
