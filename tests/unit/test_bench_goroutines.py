"""bench/operator_scale.py's summary of a kube-apiserver goroutine dump (`--apiserver-goroutines`)."""

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "operator_scale", Path(__file__).resolve().parents[2] / "bench" / "operator_scale.py"
)
assert SPEC is not None and SPEC.loader is not None
operator_scale = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(operator_scale)

WAITING = """goroutine 7 [sync.Mutex.Lock, 2 minutes]:
internal/sync.runtime_SemacquireMutex(0x89b0d72eb40?, 0x80?, 0x89b0d0032c0?)
\truntime/sema.go:95 +0x25
k8s.io/kubernetes/pkg/registry/core/service/ipallocator.(*MetaAllocator).AllocateNextService(0x89b0e3c1220, 0x89b31fa4288)
\tk8s.io/kubernetes@v1.35.4/pkg/registry/core/service/ipallocator/cidrallocator.go:379 +0x115
k8s.io/apiserver/pkg/endpoints/handlers/finisher.finishRequest.func1()
\tk8s.io/apiserver@v0.35.4/pkg/endpoints/handlers/finisher/finisher.go:117 +0x75"""

PARENT = """goroutine 6 [select]:
k8s.io/apiserver/pkg/endpoints/handlers/finisher.finishRequest({0x3f332c0, 0x14164b3e24e0}, 0x14164c2fa150)
\tk8s.io/apiserver@v0.35.4/pkg/endpoints/handlers/finisher/finisher.go:92 +0xc8
k8s.io/apiserver/pkg/endpoints/handlers.CreateResource.createHandler.func1(...)
\tk8s.io/apiserver@v0.35.4/pkg/endpoints/handlers/create.go:209 +0x354"""

BACKGROUND = """goroutine 3 [select]:
k8s.io/client-go/tools/cache.(*Reflector).watch(0x1)
\tk8s.io/client-go@v0.35.4/tools/cache/reflector.go:400 +0x1"""


def test_handlers_are_grouped_by_state_and_innermost_frame_without_their_waiting_parents():
    dump = "\n\n".join([WAITING, PARENT, WAITING.replace("goroutine 7", "goroutine 9"), BACKGROUND])
    assert operator_scale.request_handlers(dump) == (
        "    2  [sync.Mutex.Lock]  "
        "k8s.io/kubernetes/pkg/registry/core/service/ipallocator.(*MetaAllocator).AllocateNextService"
    )


def test_a_dump_without_request_handlers_says_so():
    assert operator_scale.request_handlers(BACKGROUND) == "no request handler running"
