"""Artifacts: atomic writes, digests, and a loader that refuses anything but trusted skops."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from modelops import artifacts


class Payload:
    """A pickle that, if ever unpickled, creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_sha256_file_matches_hashlib(tmp_path):
    f = tmp_path / "blob"
    f.write_bytes(os.urandom(3 * (1 << 20) + 17))
    assert artifacts.sha256_file(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_atomic_directory_creates_and_overwrites_without_leftovers(tmp_path):
    final = tmp_path / "m" / "v1"
    with artifacts.atomic_directory(final) as tmp:
        (tmp / "a").write_text("one")
        (tmp / "old-only").write_text("x")
    assert (final / "a").read_text() == "one"
    with artifacts.atomic_directory(final) as tmp:
        assert not (tmp / "a").exists()  # a fresh directory, not the old one
        (tmp / "a").write_text("two")
    assert (final / "a").read_text() == "two"
    assert not (final / "old-only").exists()
    assert sorted(p.name for p in final.parent.iterdir()) == ["v1"]


def test_atomic_directory_fallback_without_renameat2(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_exchange", lambda a, b: False)
    final = tmp_path / "v"
    for text in ("one", "two"):
        with artifacts.atomic_directory(final) as tmp:
            (tmp / "a").write_text(text)
    assert (final / "a").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_atomic_directory_failure_keeps_the_old_version(tmp_path):
    final = tmp_path / "v"
    with artifacts.atomic_directory(final) as tmp:
        (tmp / "a").write_text("good")
    with pytest.raises(RuntimeError), artifacts.atomic_directory(final) as tmp:
        (tmp / "a").write_text("half")
        raise RuntimeError("killed half way")
    assert (final / "a").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.neighbors._kd_tree.KDTree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("numpy.dtype", True),
        ("numpy.float64", True),
        ("numpy.random.mtrand.RandomState", True),
        ("numpy.load", False),
        ("numpy.lib.npyio.load", False),
        ("builtins.eval", False),
        ("os.system", False),
        ("sklearn.datasets.fetch_openml", False),
        ("sklearnx.evil", False),
    ],
)
def test_trusted_type_allow_list(name, trusted):
    assert artifacts.is_trusted_type(name) is trusted


def test_read_verified_refuses_a_different_file(tmp_path):
    f = tmp_path / "model.skops"
    f.write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert artifacts.read_verified(f, good.upper()) == b"abc"
    with pytest.raises(artifacts.DigestMismatch, match=f"expected {'0' * 64}, got {good}"):
        artifacts.read_verified(f, "0" * 64)


def test_load_model_round_trip(tmp_path):
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    artifacts.dump_model(model, tmp_path / "m.skops")
    loaded = artifacts.load_model((tmp_path / "m.skops").read_bytes())
    assert loaded.predict([[2.5]]).tolist() == [1]


def test_pickle_with_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(Payload(marker))
    with pytest.raises(artifacts.UntrustedArtifact, match="not a valid skops file"):
        artifacts.load_model(data)
    assert not marker.exists()


def test_skops_file_naming_an_untrusted_function_is_refused(tmp_path):
    sio.dump(FunctionTransformer(func=os.system), tmp_path / "evil.skops")
    with pytest.raises(artifacts.UntrustedArtifact, match=r"untrusted types: .*system"):
        artifacts.load_model((tmp_path / "evil.skops").read_bytes())


def test_termination_log(tmp_path):
    target = tmp_path / "termination-log"
    artifacts.write_termination_log("error: x", {"MODELOPS_TERMINATION_LOG": str(target)})
    assert target.read_text() == "error: x\n"
    artifacts.write_termination_log("error: y", {"MODELOPS_TERMINATION_LOG": str(tmp_path / "no" / "log")})
    assert not (tmp_path / "no").exists()
    if not Path(artifacts.DEFAULT_TERMINATION_LOG).exists():
        artifacts.write_termination_log("error: z", {})
        assert not Path(artifacts.DEFAULT_TERMINATION_LOG).exists()
