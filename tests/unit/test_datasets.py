"""Retrain data: URI templates, the resolve command, and the report the policy reads."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from modelops.lifecycle.datasets import (
    expand,
    is_dynamic,
    parse_resolution,
    same_data,
    sample,
    template_error,
)
from modelops.lifecycle.observed import job_view, pod_view
from modelops.trainer import resolve as resolver
from modelops.trainer.data import load

AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def test_templates_fill_the_trigger_time_and_keep_folders():
    assert expand("pvc://data/iris/%Y-%m-%d.csv", AT) == "pvc://data/iris/2026-11-26.csv"
    assert expand("pvc://data/%Y/%m/", AT) == "pvc://data/2026/11/"
    assert expand("sklearn:iris", AT) == "sklearn:iris"
    assert sample("pvc://data/iris/") == "pvc://data/iris/newest.csv"
    assert (
        is_dynamic("pvc://data/iris/") and is_dynamic("file:///d/%Y.csv") and not is_dynamic("sklearn:iris")
    )
    assert template_error("pvc://d/%Y-%V-%%.csv") is None
    assert "%Q" in (template_error("pvc://d/%Q.csv") or "")
    assert template_error("pvc://d/x%") is not None


def test_reports_are_parsed_and_compared_by_digest():
    assert parse_resolution(None, None) is None
    r = parse_resolution(json.dumps({"uri": "sklearn:iris", "digest": "ab"}), None)
    assert r is not None and (r.uri, r.digest, r.error) == ("sklearn:iris", "ab", None)
    assert parse_resolution("garbage", None).error.startswith("unreadable")
    assert parse_resolution(None, "no file").error == "no file"
    assert same_data(r, "sha256:AB") and not same_data(r, "cd") and not same_data(r, None)


def _write(path, text, mtime):
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_resolve_takes_the_newest_file_of_a_folder_and_hashes_it_as_the_trainer_does(tmp_path):
    folder = tmp_path / "data" / "iris"
    folder.mkdir(parents=True)
    _write(folder / "a.csv", "x,y\n1,0\n2,1\n", 1_000)
    _write(folder / "b.csv", "x,y\n3,0\n4,1\n", 2_000)
    _write(folder / "c.txt", "newest but not data", 3_000)
    out = resolver.resolve("pvc://data/iris/", AT, str(tmp_path))
    assert out["uri"] == "pvc://data/iris/b.csv"
    assert out["digest"] == load("pvc://data/iris/b.csv", str(tmp_path)).digest
    _write(folder / "2026-11-26.csv", "x,y\n5,0\n", 500)  # a dated name is taken as named, not by age
    assert (
        resolver.resolve("pvc://data/iris/%Y-%m-%d.csv", AT, str(tmp_path))["uri"]
        == "pvc://data/iris/2026-11-26.csv"
    )


def test_resolve_reports_in_the_termination_log_and_fails_with_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "data" / "2026-11").mkdir(parents=True)
    (tmp_path / "data" / "2026-11" / "d.csv").write_text("x,y\n1,0\n")
    term = tmp_path / "term"
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(term))
    args = ["--uri", "pvc://data/%Y-%m/", "--at", "2026-11-26T09:30:00Z", "--pvc-root", str(tmp_path)]
    assert resolver.main(args) == 0
    report = json.loads(term.read_text())
    assert report["uri"] == "pvc://data/2026-11/d.csv" and len(report["digest"]) == 64
    args[1] = "pvc://data/%Y-%d/"
    assert resolver.main(args) == 2
    assert "dataset folder not found" in term.read_text()


def test_sklearn_data_resolves_to_the_digest_the_trainer_records():
    assert resolver.resolve("sklearn:iris", AT)["digest"] == load("sklearn:iris").digest


def test_a_completed_jobs_report_is_its_pods_termination_message():
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-11-26T09:30:00Z"},
        "status": {
            "containerStatuses": [{"state": {"terminated": {"exitCode": 0, "message": '{"uri": "u"}\n'}}}]
        },
    }
    job = {"metadata": {"uid": "u"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert job_view(job, [pod_view(pod)]).output == '{"uri": "u"}'
    running = {"metadata": {"uid": "u"}, "status": {}}
    assert job_view(running, [pod_view(pod)]).output is None


@pytest.mark.parametrize("uri", ["pvc://data/../../etc/", "pvc://data/x/"])
def test_resolve_refuses_escapes_and_missing_folders(tmp_path, uri):
    with pytest.raises(Exception) as e:
        resolver.resolve(uri, AT, str(tmp_path))
    assert "outside" in str(e.value) or "not found" in str(e.value)
