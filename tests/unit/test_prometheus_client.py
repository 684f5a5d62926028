"""The Prometheus client: every malformed answer is a PrometheusError with its reason, and time is
bounded per query and per evaluation, not per read.

Answers that the real Prometheus never sends (and a trickling one) come from a small stand-in HTTP
server; well-formed answers are the shapes of the HTTP API's documentation.
"""

from __future__ import annotations

import json
import time

import pytest

from modelops.prometheus import Deadline, PrometheusError, parse, query, scalar
from tests.support.prometheus import MisbehavingPrometheus


def vector(*items: tuple[dict[str, str], str]) -> bytes:
    result = [{"metric": m, "value": [1700000000.5, v]} for m, v in items]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def test_a_vector_is_parsed_and_nan_dropped() -> None:
    body = vector(({"feature": "a", "le": "0.5"}, "3"), ({"feature": "a", "le": "+Inf"}, "NaN"))
    samples = parse(body)
    assert [(s.labels, s.value) for s in samples] == [({"feature": "a", "le": "0.5"}, 3.0)]


def test_a_scalar_is_one_sample() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2.5"]}})
    assert [s.value for s in parse(body.encode())] == [2.5]


def test_an_error_answer_says_what_prometheus_said() -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error at char 3"})
    with pytest.raises(PrometheusError, match="rejected the query: bad_data: parse error at char 3"):
        parse(body.encode())


MALFORMED = {
    "not JSON": (b"<html>502 Bad Gateway</html>", "malformed"),
    "a list body": (b"[1, 2, 3]", "malformed"),
    "no status": (b'{"data": {"resultType": "vector", "result": []}}', "malformed"),
    "missing data": (b'{"status": "success"}', "data"),
    "null data": (b'{"status": "success", "data": null}', "data"),
    "null result": (b'{"status": "success", "data": {"resultType": "vector", "result": null}}', "result"),
    "unknown result type": (b'{"status": "success", "data": {"resultType": "table", "result": []}}', "data"),
    "a matrix": (
        b'{"status": "success", "data": {"resultType": "matrix",'
        b' "result": [{"metric": {}, "values": [[1, "1"], [2, "2"]]}]}}',
        "matrix where an instant vector was expected",
    ),
    "a string": (
        b'{"status": "success", "data": {"resultType": "string", "result": [1, "hello"]}}',
        "string where an instant vector",
    ),
    "a value that is not a number": (vector(({}, "lots")), "not a number: 'lots'"),
    "a number where a string belongs": (
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, 3]}]}}',
        "result",
    ),
    "a value without a time": (
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": ["3"]}]}}',
        "result",
    ),
    "an item without a metric": (
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "3"]}]}}',
        "metric",
    ),
    "+Inf": (vector(({"feature": "a"}, "+Inf")), "+Inf"),
    "-Inf": (vector(({}, "-Inf")), "-Inf"),
    "a label value that is not a string": (
        b'{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "3"]}]}}',
        "metric",
    ),
}


@pytest.mark.parametrize(("body", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_every_malformed_answer_is_a_prometheus_error_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PrometheusError) as e:
        parse(body)
    assert reason in str(e.value)


def test_infinity_is_accepted_only_where_it_means_something() -> None:
    """histogram_quantile answers +Inf when the quantile lies above the last bucket."""
    assert [s.value for s in parse(vector(({}, "+Inf")), finite=False)] == [float("inf")]


@pytest.mark.parametrize(("body", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_the_client_raises_the_same_over_http(body: bytes, reason: str) -> None:
    with MisbehavingPrometheus(body) as bad:
        with pytest.raises(PrometheusError):
            query(bad.url, "up")
        assert bad.queries == ["up"]


def test_a_compressed_answer_is_read_decoded() -> None:
    """The real Prometheus gzips answers for clients that accept it (httpx does)."""
    with MisbehavingPrometheus(vector(({"a": "b"}, "4")), gzip=True) as stand_in:
        assert scalar(stand_in.url, "x") == 4.0


def test_an_http_error_without_the_api_envelope_names_the_status() -> None:
    with (
        MisbehavingPrometheus(b"upstream connect error", status=503) as bad,
        pytest.raises(PrometheusError, match="HTTP 503"),
    ):
        query(bad.url, "up")


def test_a_scalar_query_refuses_several_series() -> None:
    with (
        MisbehavingPrometheus(vector(({"a": "1"}, "1"), ({"a": "2"}, "2"))) as bad,
        pytest.raises(PrometheusError, match="2 series where one was expected"),
    ):
        scalar(bad.url, "sum(x)")


def test_a_trickling_answer_is_cut_at_the_query_deadline() -> None:
    """One byte every 0.3 s: every read is in time, so a per-read timeout would wait ~30 s."""
    body = vector(({"x": "y" * 40}, "1"))
    with MisbehavingPrometheus(body, trickle_seconds=0.3) as bad:
        started = time.monotonic()
        with pytest.raises(PrometheusError, match=r"did not answer within 1\.0s"):
            query(bad.url, "up", timeout=1.0)
        assert time.monotonic() - started < 3.0


def test_an_evaluation_deadline_bounds_all_its_queries_together() -> None:
    """Each query would get its own 2 s; together they stop when the evaluation's 2.5 s are spent."""
    body = vector(({"x": "y" * 40}, "1"))
    deadline = Deadline(2.5)
    started = time.monotonic()
    asked = 0
    with MisbehavingPrometheus(body, trickle_seconds=0.2) as bad:
        for _ in range(10):
            with pytest.raises(PrometheusError):
                query(bad.url, "up", timeout=2.0, deadline=deadline)
            asked += 1
            if deadline.remaining() <= 0:
                break
        with pytest.raises(PrometheusError, match="within the evaluation's 2s"):
            query(bad.url, "up", timeout=2.0, deadline=deadline)
    assert asked == 2  # 2 s, then the 0.5 s left
    assert time.monotonic() - started < 5.0


def test_an_unreachable_prometheus_is_a_prometheus_error() -> None:
    with MisbehavingPrometheus(b"") as bad:
        url = bad.url
    with pytest.raises(PrometheusError, match="unreachable"):
        query(url, "up", timeout=2.0)
