"""A heap probe for the operator under the bench: where its memory is, read from outside the product.

    HEAP_PROBE=1 PYTHONPATH=bench/heap_probe python bench/operator_scale.py ...
    kill -USR2 <operator pid>        # writes /tmp/heap-<pid>.txt

With HEAP_PROBE_TRACE=1 the operator (only it) also runs tracemalloc from its start, and the
report lists live allocations by file and line (HEAP_PROBE_TRACE=12: and the largest by their
call chains, 12 frames deep; HEAP_PROBE_HOLDERS_OF=json/decoder.py: what holds the objects
made there); the operator is then about twice as slow.
Python imports this module at start-up when it is on PYTHONPATH; it does nothing unless
HEAP_PROBE is set.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import itertools
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


def _type_name(t: type) -> str:
    return f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', t.__name__)}"


def _describe(o: Any) -> str:
    name = _type_name(type(o))
    if isinstance(o, dict):
        return f"{name} keys={list(o)[:4]}"
    return name


def _holders(samples: int = 3) -> list[str]:
    """Who keeps whole Kubernetes objects alive (dicts with metadata.name: a parsed body or list
    item), by kind, with the referrers of a few of each, two levels up."""
    found = [
        o
        for o in gc.get_objects()
        if type(o) is dict and isinstance(o.get("metadata"), dict) and "name" in o["metadata"]
    ]
    by_kind: dict[str, list[Any]] = collections.defaultdict(list)
    for o in found:
        by_kind[f"{o.get('kind', '(list item)')}{' +status' if 'status' in o else ''}"].append(o)
    ignore = {id(found), id(by_kind)} | {id(v) for v in by_kind.values()}
    lines = []
    for kind, objs in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"{len(objs):8d} {kind}")
        for o in itertools.islice(objs, samples):  # a slice would be one more holder
            for r in gc.get_referrers(o):
                if id(r) in ignore or type(r).__name__ == "frame":
                    continue
                up = [_describe(rr) for rr in gc.get_referrers(r) if id(rr) not in ignore][:3]
                lines.append(f"           held by {_describe(r)} ← {up}")
    del found, by_kind
    return lines


def _holders_of_allocations(site: str, top: int = 25) -> list[str]:
    """The containers holding objects allocated in files whose name contains `site` (tracemalloc
    knows where an object was made, not who keeps it): the objects by their holder's description."""
    count: collections.Counter[str] = collections.Counter()
    size: collections.Counter[str] = collections.Counter()
    for holder in gc.get_objects():
        for o in gc.get_referents(holder):
            tb = tracemalloc.get_object_traceback(o)
            if tb is not None and site in tb[0].filename:
                name = _describe(holder)
                count[name] += 1
                size[name] += sys.getsizeof(o)
    return [f"{size[n] / 1024:10.1f} KiB {count[n]:8d} in {n}" for n, _ in size.most_common(top)]


def report() -> str:
    gc.collect()
    count: collections.Counter[str] = collections.Counter()
    size: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        name = _type_name(type(o))
        count[name] += 1
        size[name] += sys.getsizeof(o)
    lines = [
        _rss(),
        "== allocators",
        *_allocator_stats(),
        "== gc-tracked objects by type (shallow size)",
    ]
    lines += [f"{size[n] / 1024:10.1f} KiB {count[n]:8d} {n}" for n, _ in size.most_common(40)]
    lines += ["== whole Kubernetes objects alive, by kind, and what holds a few", *_holders()]
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
        if site := os.environ.get("HEAP_PROBE_HOLDERS_OF"):
            lines.append(f"== objects allocated in {site}, by what holds them")
            lines += _holders_of_allocations(site)
        if tracemalloc.get_traceback_limit() > 1:
            lines.append("== by call chain, the largest")
            for s in snap.statistics("traceback")[:8]:
                lines.append(f"{s.size / 1024:10.1f} KiB {s.count:8d}")
                lines += [f"           {line}" for line in s.traceback.format(most_recent_first=True)]
    return "\n".join(lines) + "\n"


def _rss() -> str:
    with open("/proc/self/status") as f:
        return next(line for line in f if line.startswith("VmRSS")).strip()


def _on_signal(signum: int, frame: Any) -> None:
    text = report()
    # What glibc holds free and could give back: malloc_trim releases the free pages inside every
    # arena, not only the top of the heap (after the report, so the report sees the process as is).
    trimmed = ctypes.CDLL("libc.so.6").malloc_trim(0)
    text += f"== after malloc_trim(0) (released: {bool(trimmed)}): {_rss()}\n"
    with open(f"/tmp/heap-{os.getpid()}.txt", "w") as f:
        f.write(text)


if os.environ.get("HEAP_PROBE"):
    signal.signal(signal.SIGUSR2, _on_signal)
    with open("/proc/self/cmdline", "rb") as cmdline:
        operator = b"modelops.cli" in cmdline.read()
    if operator and os.environ.get("HEAP_PROBE_TRACE"):
        tracemalloc.start(int(os.environ["HEAP_PROBE_TRACE"]))  # frames kept per allocation
