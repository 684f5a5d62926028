"""A small client for Prometheus' HTTP query API.

Every answer is parsed through one validated shape (pydantic models of the API's envelope and
result types, https://prometheus.io/docs/prometheus/latest/querying/api/), so anything else a
server or a proxy in front of it may send (a list body, no `data`, a null result, a range
vector, a value that is not a number) is a `PrometheusError` with its reason, never a
KeyError or TypeError that escapes the callers' handling.

Time is bounded per query AND per evaluation: httpx's timeouts apply to each read, so an
answer trickling a byte at a time would never time out; here the body is read in chunks
against one `Deadline` shared by all the queries of an evaluation.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError

QUERY_SECONDS = 5.0
"""Total time one query may take (connect, send, the whole answer)."""
EVALUATION_SECONDS = 15.0
"""Total time all queries of one evaluation (a policy's drift and decay, a canary's analysis) may take."""
MAX_ANSWER_BYTES = 32 << 20
"""A bigger answer is refused: our queries aggregate to a few series per feature."""


class PrometheusError(Exception):
    """Prometheus could not answer: unreachable, too slow, rejected the query, or answered malformed data."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Deadline:
    """A point in time shared by several queries; each query also keeps its own limit."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()


# --- the HTTP API's shapes ----------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


_Point = tuple[float, StrictStr]
"""[unix time, value as a string]: the API writes values as strings ("1.5", "NaN", "+Inf")."""


class _VectorItem(_Model):
    metric: dict[str, StrictStr]
    value: _Point


class _MatrixItem(_Model):
    metric: dict[str, StrictStr]
    values: list[_Point]


class _Vector(_Model):
    resultType: Literal["vector"]
    result: list[_VectorItem]


class _Scalar(_Model):
    resultType: Literal["scalar"]
    result: _Point


class _Matrix(_Model):
    resultType: Literal["matrix"]
    result: list[_MatrixItem]


class _String(_Model):
    resultType: Literal["string"]
    result: _Point


class _Success(_Model):
    status: Literal["success"]
    data: Annotated[_Vector | _Scalar | _Matrix | _String, Field(discriminator="resultType")]


class _Failure(_Model):
    status: Literal["error"]
    errorType: str = ""
    error: str = ""


_ANSWER: TypeAdapter[_Success | _Failure] = TypeAdapter(
    Annotated[_Success | _Failure, Field(discriminator="status")]
)


def _number(text: str, labels: dict[str, str], *, finite: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PrometheusError(
            f"Prometheus answered a value that is not a number: {text!r} for {labels}"
        ) from None
    if finite and math.isinf(value):
        raise PrometheusError(f"Prometheus answered {text} for {labels}, where a finite count was expected")
    return value


def parse(body: bytes, *, finite: bool = True) -> list[Sample]:
    """An instant query's answer as samples (NaN dropped: no data, e.g. 0/0); anything else is an error.

    `finite=False` accepts ±Inf (histogram_quantile says +Inf when the quantile is above the last bucket).
    """
    try:
        answer = _ANSWER.validate_json(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the answer"
        raise PrometheusError(f"Prometheus answered malformed data: {first['msg']} at {where}") from None
    if isinstance(answer, _Failure):
        raise PrometheusError(f"Prometheus rejected the query: {answer.errorType}: {answer.error}")
    data = answer.data
    if isinstance(data, _Scalar):
        value = _number(data.result[1], {}, finite=finite)
        return [] if math.isnan(value) else [Sample({}, value)]
    if not isinstance(data, _Vector):
        raise PrometheusError(f"Prometheus answered a {data.resultType} where an instant vector was expected")
    out = []
    for item in data.result:
        value = _number(item.value[1], item.metric, finite=finite)
        if not math.isnan(value):
            out.append(Sample(dict(item.metric), value))
    return out


# --- I/O ---------------------------------------------------------------------------------------
async def _fetch(url: str, promql: str, budget: float) -> tuple[int, bytes]:
    chunks, size = [], 0
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(budget)) as client,
        client.stream("GET", f"{url.rstrip('/')}/api/v1/query", params={"query": promql}) as r,
    ):
        async for chunk in r.aiter_bytes():  # decoded: Prometheus gzips its answers
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise PrometheusError(f"Prometheus at {url} answered more than {MAX_ANSWER_BYTES} bytes")
        return r.status_code, b"".join(chunks)


def _read(url: str, promql: str, budget: float) -> tuple[int, bytes]:
    """GET the query within `budget` seconds in total: connect, headers and the whole body.

    An event loop of its own (handlers run in threads), because only a task can be cancelled
    at a total deadline; httpx's own timeouts restart at every byte received.
    """

    async def bounded() -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(_fetch(url, promql, budget), budget)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer within {budget:.1f}s") from None

    return asyncio.run(bounded())


def query(
    url: str,
    promql: str,
    *,
    deadline: Deadline | None = None,
    timeout: float = QUERY_SECONDS,
    finite: bool = True,
) -> list[Sample]:
    """An instant query; returns the vector (NaN samples dropped) within `timeout` and the `deadline`."""
    budget = min(timeout, deadline.remaining()) if deadline is not None else timeout
    if budget <= 0:
        raise PrometheusError(
            f"Prometheus at {url} did not answer within the evaluation's {deadline.seconds if deadline else timeout:.0f}s"
        )
    try:
        status, body = _read(url, promql, budget)
    except httpx.TimeoutException as e:
        raise PrometheusError(f"Prometheus at {url} did not answer within {budget:.1f}s: {e}") from e
    except httpx.HTTPError as e:
        raise PrometheusError(f"Prometheus at {url} is unreachable: {type(e).__name__}: {e}") from e
    try:
        return parse(body, finite=finite)
    except PrometheusError as e:
        if status >= 400 and not isinstance(_safe_json(body), dict):
            raise PrometheusError(f"Prometheus at {url} answered HTTP {status}: {body[:200]!r}") from e
        raise


def _safe_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


def scalar(url: str, promql: str, *, deadline: Deadline | None = None, finite: bool = True) -> float | None:
    """The single value of an aggregated query, or None when there is no data."""
    samples = query(url, promql, deadline=deadline, finite=finite)
    if len(samples) > 1:
        raise PrometheusError(f"Prometheus answered {len(samples)} series where one was expected: {promql}")
    return samples[0].value if samples else None
