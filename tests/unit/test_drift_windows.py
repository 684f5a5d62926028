"""Which live data is judged (the newest interval or the window), and how fast a step change is acted on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import norm

from modelops.api.modelversion import Bin
from modelops.drift import promql
from modelops.drift.evaluate import evaluate_features, evaluations_to_act, mixture_fraction
from modelops.prometheus import Sample

PROMTOOL = shutil.which("promtool")
DECILES = Bin(
    edges=[float(e) for e in norm.ppf(np.linspace(0, 1, 11)[1:-1])], shares=[0.1] * 10, samples=100_000
)


def shifted_shares(sd: float) -> np.ndarray:
    return np.diff(norm.cdf(np.r_[-np.inf, DECILES.edges, np.inf] - sd))


def samples(counts: np.ndarray, span: str | None = None) -> list[Sample]:
    """Cumulative `le` samples of one feature for per-bin counts, as the union query returns them."""
    les = [f"{e!r}" for e in DECILES.edges] + ["+Inf"]
    extra = {"span": span} if span else {}
    return [
        Sample({"feature": "x", "le": le, **extra}, float(c))
        for le, c in zip(les, np.cumsum(counts), strict=True)
    ]


# --- the query ------------------------------------------------------------------------------------


def test_without_interval_the_query_is_the_window_as_before():
    q = promql.feature_buckets("ns", "iris", "iris-v1", "10m")
    assert (
        q
        == 'sum by (feature, le) (increase(modelops_server_feature_value_bucket{namespace="ns",model="iris",version="iris-v1"}[10m]))'
    )


def test_with_interval_the_query_adds_the_exact_newest_counts_labelled_by_span():
    q = promql.feature_categories("ns", "iris", "iris-v1", "10m", interval="60s")
    series = 'modelops_server_feature_category_total{namespace="ns",model="iris",version="iris-v1"}'
    newest = f"sum by (feature, category) (clamp_min({series} - {series} offset 60s, 0))"
    whole = f"sum by (feature, category) (increase({series}[10m]))"
    assert q == (
        f'label_replace({newest}, "span", "interval", "", "") or label_replace({whole}, "span", "window", "", "")'
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_the_union_query_on_real_promql(tmp_path: Path):
    """promtool evaluates the query: the newest interval counts exactly the rows that arrived in it
    (the counter's difference over `offset`, no extrapolation), the window is increase(), and only
    the champion's own series count."""
    sel = '{namespace="ns",model="m",version="v",feature="x",pod="a"'
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    # 1 row a scrape for 10m, then nothing, then 12 rows in the last scrape before 14m
                    {
                        "series": f'modelops_server_feature_value_bucket{sel},le="1"}}',
                        "values": "0+1x40 40x14 52",
                    },
                    {
                        "series": f'modelops_server_feature_value_bucket{sel},le="+Inf"}}',
                        "values": "0+2x40 80x14 92",
                    },
                    # another version's series is not counted
                    {
                        "series": 'modelops_server_feature_value_bucket{model="m",version="w",feature="x",le="+Inf"}',
                        "values": "0+5x60",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": promql.feature_buckets("ns", "m", "v", "20m", interval="60s"),
                        "eval_time": "14m",
                        "exp_samples": [
                            {"labels": '{feature="x",le="1",span="interval"}', "value": 12},
                            {"labels": '{feature="x",le="+Inf",span="interval"}', "value": 12},
                            {"labels": '{feature="x",le="1",span="window"}', "value": 52},
                            {"labels": '{feature="x",le="+Inf",span="window"}', "value": 92},
                        ],
                    },
                    {
                        "expr": promql.feature_categories("ns", "m", "v", "20m", interval="60s"),
                        "eval_time": "14m",
                        "exp_samples": [],
                    },
                ],
            }
        ],
    }
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    out = subprocess.run(
        [PROMTOOL, "test", "rules", "t.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- which span is judged -------------------------------------------------------------------------


def test_the_newest_interval_is_judged_when_it_holds_min_samples():
    old = np.full(10, 100.0)  # the window is mostly the past
    new = 200 * shifted_shares(1.0)
    live = samples(new, "interval") + samples(old * 9 + new, "window")
    f = evaluate_features({"x": DECILES}, live, [], "psi", 0.25, 150).features["x"]
    assert f.span == "interval" and f.samples == 200 and f.result == "Drifted"
    # too few rows in the interval: the window reaches the floor, and dilutes the shift
    f = evaluate_features({"x": DECILES}, live, [], "psi", 0.25, 250).features["x"]
    assert f.span == "window" and f.samples == 9200 and f.result == "Stable"


def test_unlabelled_samples_are_the_window_and_an_interval_alone_is_used():
    counts = np.full(10, 30.0)
    f = evaluate_features({"x": DECILES}, samples(counts), [], "psi", 0.25, 100).features["x"]
    assert f.span == "window" and f.samples == 300
    f = evaluate_features({"x": DECILES}, samples(counts, "interval"), [], "psi", 0.25, 100).features["x"]
    assert f.span == "interval" and f.samples == 300


# --- how many evaluations a step change needs -----------------------------------------------------


def test_evaluations_to_act_by_hand():
    # newest interval: consecutive, or one more when the step falls inside the first interval
    assert evaluations_to_act(60, 60, 2, 1.0) == (2, 3)
    assert evaluations_to_act(60, 60, 3, 0.4) == (3, 4)
    # window of 10 intervals, 35 % of new rows needed: called at the 4th (or 5th), acted on at the 5th (or 6th)
    assert evaluations_to_act(60, 600, 2, 0.35) == (5, 6)
    assert evaluations_to_act(60, 600, 1, 0.3) == (3, 4)
    with pytest.raises(ValueError):
        evaluations_to_act(60, 30, 2, 0.5)


@pytest.mark.parametrize(
    ("sd", "method", "threshold"), [(1.0, "psi", 0.25), (1.0, "ks", 0.1), (0.75, "jensenShannon", 0.1)]
)
@pytest.mark.parametrize("newest", [True, False], ids=["interval", "window"])
@pytest.mark.parametrize("phase", [1.0, 0.05])
def test_a_step_change_is_acted_on_when_the_arithmetic_says(sd, method, threshold, newest, phase):
    """Replays evaluations over a step change with expected counts (no noise, 5,000 rows an
    interval, window of 10 intervals) through the real evaluation and the planner's counting
    rule (Drifted +1, Stable back to 0, act at `consecutive`)."""
    interval, window, consecutive, rate = 60, 600, 2, 5000.0
    p, q = np.full(10, 0.1), shifted_shares(sd)
    fraction = mixture_fraction(p, q, method, threshold)
    assert fraction is not None
    best, worst = evaluations_to_act(interval, interval if newest else window, consecutive, fraction)
    history: list[np.ndarray] = [rate * p] * 10  # per-interval counts before the step
    streak = 0
    for k in range(1, 20):
        post = phase if k == 1 else 1.0  # share of the k-th interval after the step
        history.append(rate * ((1 - post) * p + post * q))
        win = np.sum(history[-10:], axis=0)
        live = samples(history[-1], "interval") + samples(win, "window")
        min_samples = rate if newest else rate + 1  # the interval alone reaches the floor, or not
        f = evaluate_features({"x": DECILES}, live, [], method, threshold, int(min_samples)).features["x"]
        assert f.span == ("interval" if newest else "window")
        streak = streak + 1 if f.result == "Drifted" else 0
        if streak >= consecutive:
            break
    assert k == (best if phase == 1.0 else worst)
