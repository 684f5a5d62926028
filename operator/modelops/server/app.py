"""The model server as a minimal raw ASGI application on uvicorn with httptools and uvloop.

Chosen by measurement (bench/asgi_stack.py: the same `Service`, model and metrics behind each
stack; wrk on loopback, 1-row v2 infer of iris LogisticRegression, 2-core machine shared with
other work, so only the differences are meaningful):

    stack                         c=1 req/s   p50 ms   p99 ms    c=16 req/s
    raw ASGI, httptools + uvloop       3364     0.27     0.89         3509
    Starlette, httptools + uvloop      2902     0.29     3.37         3379
    raw ASGI, h11 + asyncio            2644     0.35     1.32         3049

Starlette's Request/Response/router layers cost ~14% of throughput at concurrency 1 and bought
nothing we use: a dozen fixed routes, one JSON body in, one out. The endpoint logic (`Service`)
does not depend on the ASGI layer, so swapping it back is a small change.

Every client error is a `RequestError` answered with {"error", "field"} and a 4xx; anything else
raised while handling a request is logged and answered 500, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelops import artifacts

from .capture import Capture
from .feedback import DEFAULT_MAX_ROWS, PendingPredictions
from .inputs import RequestError, from_records, from_v2
from .metrics import CONTENT_TYPE, ServerMetrics
from .model import ServedModel

log = logging.getLogger("modelops.server")

JSON = b"application/json"
# Batches up to this many rows are predicted on the event loop thread (a thread hop costs more
# than the prediction); larger ones go to a worker thread so health checks and /metrics still answer.
INLINE_ROWS = 256
MAX_ID_LENGTH = 128
REQUEST_ID = re.compile(rf"[ -~]{{1,{MAX_ID_LENGTH}}}")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Settings:
    model_name: str
    version: str
    max_rows: int = 10_000
    max_body_bytes: int = 4 * 1024 * 1024
    pending_rows: int = DEFAULT_MAX_ROWS
    capture_file: str | None = None
    """Where labelled served rows go (serving.capture); None: nothing is captured."""
    capture_max_rows: int = 10_000
    capture_exclude: tuple[str, ...] = ()
    capture_target: str = "target"


@dataclass
class Response:
    status: int
    body: bytes
    content_type: bytes = JSON
    request_id: str | None = None


def error(status: int, message: str, field: str | None = None) -> Response:
    return Response(status, orjson.dumps({"error": message, "field": field}))


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, f"body is not valid JSON: {exc}", "body") from None


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)


def _datatype(values: np.ndarray) -> str:
    kind = values.dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind, "BYTES")


def _json_values(values: np.ndarray) -> Any:
    """numpy for orjson's fast path where it can take it; a list for strings and objects."""
    return values if values.dtype.kind in "biuf" else values.tolist()


class Service:
    """The endpoints, independent of the ASGI layer: (params, body, request id) -> Response."""

    def __init__(self, settings: Settings, metrics: ServerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or ServerMetrics(settings.model_name, settings.version)
        self.pending = PendingPredictions(settings.pending_rows)
        self.capture: Capture | None = None
        self.model: ServedModel | None = None
        self.card: tuple[bytes, bytes] | None = None
        """The model card (JSON, Markdown) from the artifact directory, when the trainer wrote one."""
        self._prefix = os.urandom(4).hex()
        self._counter = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    # -- state -----------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.model is not None

    def set_model(self, model: ServedModel) -> None:
        self.metrics.attach(model)
        s = self.settings
        if s.capture_file:
            self.capture = Capture(
                s.capture_file, model.names, s.capture_target, s.capture_max_rows, s.capture_exclude
            )
        self.model = model
        # Everything alive now (scikit-learn, scipy, the model) lives for the whole process. Left to
        # the cyclic GC, each full collection walks ~150k such objects and stalls a request for
        # 50-80 ms: that was the entire p99 at concurrency 1. Freezing them takes them out of it.
        gc.collect()
        gc.freeze()
        self.metrics.ready = 1

    def new_id(self) -> str:
        self._counter += 1
        return f"{self._prefix}-{self._counter}"

    def _check_model(self, name: str, version: str | None) -> ServedModel:
        if name != self.settings.model_name:
            raise RequestError(
                404, f"unknown model {name!r}; this server serves {self.settings.model_name!r}", "model_name"
            )
        if version is not None and version != self.settings.version:
            raise RequestError(
                404,
                f"unknown version {version!r} of model {name!r}; this server serves "
                f"{self.settings.version!r}",
                "model_version",
            )
        if self.model is None:
            raise RequestError(503, "model is not loaded yet", None)
        return self.model

    def _request_id(self, given: Any, header: str | None) -> str:
        rid = given if given is not None else header
        if rid is None or rid == "":
            return self.new_id()
        if not isinstance(rid, str) or not REQUEST_ID.fullmatch(rid):
            raise RequestError(
                422,
                f"'id' must be at most {MAX_ID_LENGTH} printable ASCII characters (it is echoed in a header)",
                "id",
            )
        return rid

    # -- health and metadata ---------------------------------------------------------------------
    def live(self) -> Response:
        return Response(200, b'{"live":true}')

    def server_ready(self) -> Response:
        return Response(200, b'{"ready":true}') if self.ready else Response(503, b'{"ready":false}')

    def server_metadata(self) -> Response:
        from importlib.metadata import version

        return Response(200, _dumps({"name": "modelops", "version": version("modelops"), "extensions": []}))

    def model_ready(self, name: str, version: str | None) -> Response:
        try:
            self._check_model(name, version)
        except RequestError as exc:
            if exc.status != 503:
                raise
            return Response(503, _dumps({"name": name, "ready": False}))
        return Response(200, _dumps({"name": name, "ready": True}))

    def model_metadata(self, name: str, version: str | None) -> Response:
        model = self._check_model(name, version)
        inputs = [
            {"name": f.name, "datatype": "BYTES" if f.categorical else "FP64", "shape": [-1]}
            for f in model.features
        ]
        outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
        parameters: dict[str, Any] = {
            "task": model.metadata.get("task"),
            "metrics": model.metadata.get("metrics"),
        }
        if model.classification:
            assert model.classes is not None
            outputs[0]["datatype"] = _datatype(model.classes)
            parameters["classes"] = [str(c) for c in model.classes]
            if model.has_proba:
                outputs.append(
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]}
                )
        body = {
            "name": self.settings.model_name,
            "versions": [self.settings.version],
            "platform": "sklearn",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": parameters,
        }
        return Response(200, _dumps(body))

    def model_card(self, name: str, version: str | None, markdown: bool) -> Response:
        """The card written at training time: JSON, or Markdown for `?format=markdown`."""
        self._check_model(name, version)
        if self.card is None:
            raise RequestError(
                404, "this version's artifact has no model card (trained before cards existed)"
            )
        if markdown:
            return Response(200, self.card[1], b"text/markdown; charset=utf-8")
        return Response(200, self.card[0])

    def metrics_text(self) -> Response:
        return Response(200, self.metrics.render(), CONTENT_TYPE.encode())

    # -- inference -------------------------------------------------------------------------------
    async def _predict(self, model: ServedModel, X: np.ndarray, proba: bool) -> tuple[np.ndarray, Any]:
        if X.shape[0] <= INLINE_ROWS:
            pred, p = model.predict(X, proba)
        else:
            loop = asyncio.get_running_loop()
            pred, p = await loop.run_in_executor(self._executor, model.predict, X, proba)
        self.metrics.observe_rows(X, pred)
        return pred, p

    async def infer(self, name: str, version: str | None, body: bytes, header_id: str | None) -> Response:
        model = self._check_model(name, version)
        payload = _loads(body)
        if not isinstance(payload, dict):
            raise RequestError(422, "the body must be a JSON object with 'inputs'", "body")
        wanted = self._wanted_outputs(payload.get("outputs"), model)
        rid = self._request_id(payload.get("id"), header_id)
        X = from_v2(payload.get("inputs"), model.features, self.settings.max_rows)
        pred, proba = await self._predict(model, X, "predict_proba" in wanted)
        self.pending.add(rid, pred, model.classification, X if self.capture else None)
        outputs = []
        if "predict" in wanted:
            outputs.append(
                {
                    "name": "predict",
                    "datatype": _datatype(pred),
                    "shape": [len(pred)],
                    "data": _json_values(pred),
                }
            )
        if proba is not None and "predict_proba" in wanted:
            outputs.append(
                {
                    "name": "predict_proba",
                    "datatype": "FP64",
                    "shape": list(proba.shape),
                    "data": proba.ravel(),
                }
            )
        result = {
            "model_name": self.settings.model_name,
            "model_version": self.settings.version,
            "id": rid,
            "parameters": {},
            "outputs": outputs,
        }
        return Response(200, _dumps(result), request_id=rid)

    def _wanted_outputs(self, requested: Any, model: ServedModel) -> set[str]:
        available = {"predict", "predict_proba"} if model.has_proba else {"predict"}
        if requested is None:
            return available
        if not isinstance(requested, list):
            raise RequestError(422, "'outputs' must be a list of {\"name\": ...}", "outputs")
        names = set()
        for o in requested:
            name = o.get("name") if isinstance(o, dict) else None
            if name not in available:
                raise RequestError(422, f"unknown output {name!r}; available: {sorted(available)}", "outputs")
            names.add(name)
        return names

    async def predict(self, body: bytes, header_id: str | None) -> Response:
        model = self._check_model(self.settings.model_name, None)
        payload = _loads(body)
        if not isinstance(payload, dict):
            raise RequestError(422, "the body must be a JSON object with 'instances'", "body")
        field = "records" if "records" in payload and "instances" not in payload else "instances"
        if field not in payload:
            raise RequestError(422, "the body needs 'instances': [{feature: value}, ...]", "instances")
        rid = self._request_id(payload.get("id"), header_id)
        X = from_records(payload[field], model.features, self.settings.max_rows, field)
        pred, proba = await self._predict(model, X, True)
        self.pending.add(rid, pred, model.classification, X if self.capture else None)
        result: dict[str, Any] = {
            "id": rid,
            "model_name": self.settings.model_name,
            "model_version": self.settings.version,
            "predictions": _json_values(pred),
        }
        if proba is not None:
            assert model.classes is not None
            result["probabilities"] = proba
            result["classes"] = model.classes.tolist()
        return Response(200, _dumps(result), request_id=rid)

    # -- feedback --------------------------------------------------------------------------------
    def feedback(self, body: bytes) -> Response:
        model = self._check_model(self.settings.model_name, None)
        payload = _loads(body)
        if not isinstance(payload, dict):
            raise RequestError(422, "the body must be a JSON object", "body")
        pairs: list[tuple[str, int, Any, str]] = []  # (id, row, label, field)
        if "items" in payload:
            items = payload["items"]
            if not isinstance(items, list) or not items:
                raise RequestError(422, "'items' must be a non-empty list of {id, label}", "items")
            for i, item in enumerate(items):
                if not isinstance(item, dict) or "label" not in item:
                    raise RequestError(422, f"items[{i}] needs 'id' and 'label'", f"items[{i}]")
                index = item.get("index", 0)
                if type(index) is not int or index < 0:
                    raise RequestError(
                        422, f"items[{i}].index must be a non-negative integer", f"items[{i}].index"
                    )
                pairs.append(
                    (
                        self._feedback_id(item.get("id"), f"items[{i}].id"),
                        index,
                        item["label"],
                        f"items[{i}].label",
                    )
                )
        elif "id" in payload:
            rid = self._feedback_id(payload["id"], "id")
            labels = payload.get("labels")
            if labels is None and "label" in payload:
                labels = [payload["label"]]
            if not isinstance(labels, list) or not labels:
                raise RequestError(422, "'labels' must be a non-empty list, one label per row", "labels")
            pending = self.pending.get(rid)
            if pending is not None and len(labels) != len(pending.predictions):
                raise RequestError(
                    422,
                    f"request {rid!r} had {len(pending.predictions)} rows but {len(labels)} labels",
                    "labels",
                )
            pairs.extend((rid, i, label, f"labels[{i}]") for i, label in enumerate(labels))
        else:
            raise RequestError(422, "the body needs {'id', 'labels'} or {'items': [{id, label}]}", "id")
        checked = [(rid, row, self._label(label, model, field)) for rid, row, label, field in pairs]

        matched = unmatched = 0
        for rid, row, label in checked:
            taken = self.pending.take_row(rid, row)
            if taken is None:
                unmatched += 1
                continue
            predicted, features = taken
            matched += 1
            if self.capture is not None and features is not None:
                self.capture.add(features, label)
            if model.classification:
                if isinstance(label, float):
                    right = str(label) == predicted or (label.is_integer() and str(int(label)) == predicted)
                else:
                    right = label == predicted
                self.metrics.feedback_correct += right
            else:
                self.metrics.feedback_abs_error += abs(float(label) - predicted)
                self.metrics.feedback_count += 1
        self.metrics.feedback_labelled += matched
        self.metrics.feedback_unmatched += unmatched
        return Response(200, _dumps({"matched": matched, "unmatched": unmatched}))

    @staticmethod
    def _feedback_id(rid: Any, field: str) -> str:
        if not isinstance(rid, str) or not REQUEST_ID.fullmatch(rid):
            raise RequestError(422, f"{field} must be the request id returned with the prediction", field)
        return rid

    @staticmethod
    def _label(label: Any, model: ServedModel, field: str) -> Any:
        t = type(label)
        if model.classification:
            if t is str or t is int or t is bool:
                return str(label)
            if t is float:
                return label  # compared as "1.0" and as "1" (see feedback)
            raise RequestError(422, f"{field} must be a class label (string or number)", field)
        if t in (int, float):
            return float(label)
        raise RequestError(422, f"{field} must be a number for a regression model", field)


class App:
    """Raw ASGI: routing, body limits, errors, request ids, timing; lifespan loads the model."""

    def __init__(
        self,
        service: Service,
        loader: Callable[[], ServedModel] | None = None,
        background: bool = True,
        on_fatal: Callable[[int, str], None] | None = None,
    ) -> None:
        self.service = service
        self.loader = loader
        self.background = background
        self.on_fatal = on_fatal
        self.fatal: tuple[int, str] | None = None
        self._load_task: asyncio.Future[Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- lifespan --------------------------------------------------------------------------------
    def _load(self) -> None:
        assert self.loader is not None
        try:
            model = self.loader()
        except artifacts.ArtifactError as exc:
            self._die(3, str(exc))
            return
        except Exception as exc:
            log.exception("loading the model failed")
            self._die(1, f"loading the model failed: {type(exc).__name__}: {exc}")
            return
        self.service.set_model(model)
        log.info(
            "model %s version %s is ready", self.service.settings.model_name, self.service.settings.version
        )

    def _die(self, code: int, reason: str) -> None:
        self.fatal = (code, reason)
        if self.on_fatal is not None:
            self.on_fatal(code, reason)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.loader is not None:
                    if self.background:
                        loop = asyncio.get_running_loop()
                        self._load_task = loop.run_in_executor(None, self._load)
                    else:
                        self._load()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.service.metrics.ready = 0
                if self.service.capture is not None:
                    self.service.capture.flush()  # the labels of the last second are kept too
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- http ------------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        content_length = -1
        header_id: str | None = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                content_length = int(value) if value.isdigit() else -1
            elif key == b"x-request-id":
                header_id = value.decode("latin-1")
        label, handler = self._route(path, scope.get("query_string", b""))
        try:
            response = await handler(method, receive, content_length, header_id)
        except RequestError as exc:
            response = error(exc.status, exc.message, exc.field)
        except Exception:
            log.exception("internal error on %s %s", method, path)
            response = error(500, "internal server error")
        headers = [
            (b"content-type", response.content_type),
            (b"content-length", str(len(response.body)).encode()),
        ]
        if response.request_id is not None:
            headers.append((b"x-request-id", response.request_id.encode("latin-1", "replace")))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        self.service.metrics.observe_request(label, response.status, time.perf_counter() - start)

    def _route(self, path: str, query: bytes = b"") -> tuple[str, Handler]:
        """The `handler` label (bounded cardinality, for metrics) and the handler itself."""
        svc = self.service
        limit = svc.settings.max_body_bytes
        if path.startswith("/v2/models/"):
            parts = path[len("/v2/models/") :].split("/")
            name, rest = parts[0], parts[1:]
            version = None
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = rest[1], rest[2:]
            action = rest[0] if rest else ""
            if not name or len(rest) > 1 or action not in ("", "ready", "infer", "card"):
                return "unknown", _not_found(path)
            if action == "card":
                markdown = b"format=markdown" in query.split(b"&")
                return "model_card", _get(lambda: svc.model_card(name, version, markdown))
            if action == "infer":

                async def infer(method: str, receive: Receive, length: int, rid: str | None) -> Response:
                    _allow(method, "POST")
                    return await svc.infer(name, version, await _read_body(receive, length, limit), rid)

                return "infer", infer
            if action == "ready":
                return "model_ready", _get(lambda: svc.model_ready(name, version))
            return "model_metadata", _get(lambda: svc.model_metadata(name, version))
        if path == "/predict":

            async def predict(method: str, receive: Receive, length: int, rid: str | None) -> Response:
                _allow(method, "POST")
                return await svc.predict(await _read_body(receive, length, limit), rid)

            return "predict", predict
        if path == "/feedback":

            async def feedback(method: str, receive: Receive, length: int, rid: str | None) -> Response:
                _allow(method, "POST")
                return svc.feedback(await _read_body(receive, length, limit))

            return "feedback", feedback
        simple = {
            "/metrics": ("metrics", svc.metrics_text),
            "/v2/health/live": ("live", svc.live),
            "/v2/health/ready": ("ready", svc.server_ready),
            "/v2": ("server_metadata", svc.server_metadata),
            "/v2/": ("server_metadata", svc.server_metadata),
        }
        if path in simple:
            label, fn = simple[path]
            return label, _get(fn)
        return "unknown", _not_found(path)


Handler = Callable[[str, Receive, int, "str | None"], Awaitable[Response]]


def _get(fn: Callable[[], Response]) -> Handler:
    async def handler(method: str, receive: Receive, length: int, rid: str | None) -> Response:
        _allow(method, "GET")
        return fn()

    return handler


def _not_found(path: str) -> Handler:
    async def handler(method: str, receive: Receive, length: int, rid: str | None) -> Response:
        return error(404, f"no such endpoint: {path}", "path")

    return handler


def _allow(method: str, allowed: str) -> None:
    if method != allowed and not (allowed == "GET" and method == "HEAD"):
        raise RequestError(405, f"method {method} not allowed; use {allowed}", "method")


async def _read_body(receive: Receive, content_length: int, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed the limit."""
    if content_length > limit:
        raise RequestError(413, f"body of {content_length} bytes exceeds the limit of {limit}", "body")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "client disconnected", "body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body exceeds the limit of {limit} bytes", "body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
