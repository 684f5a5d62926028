"""From Prometheus samples to live bins, per-feature verdicts and the online metric."""

import math

import pytest

from modelops.api.modelversion import Bin
from modelops.api.retrainpolicy import DriftTrigger, PerformanceTrigger
from modelops.drift.evaluate import (
    OTHER,
    DriftDataError,
    evaluate_drift,
    evaluate_features,
    evaluate_online,
    live_bins,
    online_metric,
    reference_shares,
)
from modelops.drift.scores import jensen_shannon, ks, psi
from modelops.prometheus import Sample

NUMERIC = Bin(edges=[1.0, 2.5, 1e6], shares=[0.25, 0.5, 0.125, 0.125])
COLOUR = Bin(categories=["red", "green"], shares=[0.75, 0.25])


def buckets(feature, cumulative: dict[str, float]):
    return [Sample({"feature": feature, "le": le}, v) for le, v in cumulative.items()]


def cats(feature, counts: dict[str, float]):
    return [Sample({"feature": feature, "category": c}, v) for c, v in counts.items()]


# --- live_bins ---------------------------------------------------------------------------


def test_cumulative_le_counts_become_per_bin_counts():
    samples = buckets("x", {"1": 10, "2.5": 30, "1e+06": 35, "+Inf": 40})
    assert live_bins(NUMERIC, samples) == ([10, 20, 5, 5], 40)


def test_le_matching_tolerates_float_formatting_and_ignores_extra_buckets():
    ref = Bin(edges=[0.1 + 0.2, 1234567.0], shares=[0.3, 0.3, 0.4])
    samples = [
        Sample({"le": "0.30000000000000004"}, 3.0),
        Sample({"le": "0.3"}, 0.0),  # isclose to the same edge: summed
        Sample({"le": "0.5"}, 4.0),  # not an edge of the reference: ignored
        Sample({"le": "1.234567e+06"}, 6.0),
        Sample({"le": "+Inf"}, 10.0),
    ]
    assert live_bins(ref, samples) == ([3.0, 3.0, 4.0], 10.0)


def test_missing_bucket_is_an_error_that_names_it():
    samples = buckets("x", {"1": 10, "1e+06": 35, "+Inf": 40})
    with pytest.raises(DriftDataError, match=r"le=2\.5"):
        live_bins(NUMERIC, samples)
    with pytest.raises(DriftDataError, match=r"\+Inf"):
        live_bins(NUMERIC, buckets("x", {"1": 10, "2.5": 30, "1e+06": 35}))


def test_negative_differences_from_resets_clamp_to_zero():
    # the 2.5 bucket saw a reset the 1 bucket did not: 8 < 10
    samples = buckets("x", {"1": 10, "2.5": 8, "1e+06": 12, "+Inf": 12})
    counts, total = live_bins(NUMERIC, samples)
    assert counts == [10, 0, 2, 0]
    assert total == 12
    assert all(c >= 0 for c in counts)


def test_categories_map_to_reference_plus_other():
    samples = cats("colour", {"green": 3, "red": 5, "blue": 1, OTHER: 1})
    assert live_bins(COLOUR, samples) == ([5, 3, 2], 10)
    assert reference_shares(COLOUR) == [0.75, 0.25, 0.0]
    with_other = Bin(categories=["a", OTHER], shares=[0.9, 0.1])
    assert reference_shares(with_other) == [0.9, 0.1]
    assert live_bins(with_other, cats("c", {"a": 2, "zzz": 1, OTHER: 1})) == ([2, 2], 4)


@pytest.mark.parametrize(
    ("ref", "match"),
    [
        (Bin(edges=[1.0, 2.0], shares=[0.5, 0.5]), "2 edges but 2 shares"),
        (Bin(edges=[2.0, 1.0], shares=[0.3, 0.3, 0.4]), "ascending"),
        (Bin(categories=["a"], shares=[0.5, 0.5]), "1 categories but 2 shares"),
        (Bin(shares=[1.0]), "neither edges nor categories"),
    ],
)
def test_malformed_reference_is_refused(ref, match):
    with pytest.raises(DriftDataError, match=match):
        live_bins(ref, [])


# --- evaluate_features -------------------------------------------------------------------


def test_stable_drifted_and_unknown_features():
    reference = {"x": NUMERIC, "y": NUMERIC, "colour": COLOUR, "z": NUMERIC}
    live = [
        # x: exactly the reference (40 = 10/20/5/5)
        *buckets("x", {"1": 10, "2.5": 30, "1e+06": 35, "+Inf": 40}),
        # y: everything moved to the top bin
        *buckets("y", {"1": 1, "2.5": 2, "1e+06": 3, "+Inf": 40}),
        # z: too few samples
        *buckets("z", {"1": 1, "2.5": 2, "1e+06": 3, "+Inf": 5}),
    ]
    colours = cats("colour", {"red": 30, "green": 10})
    ev = evaluate_features(reference, live, colours, "psi", 0.25, min_samples=20)
    f = ev.features
    assert f["x"].result == "Stable" and f["x"].score == pytest.approx(0.0, abs=1e-12)
    assert f["x"].band == "none" and f["x"].samples == 40
    assert f["y"].result == "Drifted" and f["y"].band == "major"
    # PSI on Jeffreys-smoothed shares; NUMERIC records no size, so it counts as large as the live 40
    smoothed_ref = [(s * 40 + 0.5) / 42 for s in NUMERIC.shares]
    assert f["y"].score == pytest.approx(psi(smoothed_ref, [1.5 / 42, 1.5 / 42, 1.5 / 42, 37.5 / 42]))
    assert f["y"].p_value < 1e-6 and f["x"].p_value == pytest.approx(1.0)
    assert f["colour"].result == "Stable" and f["colour"].samples == 40
    assert f["z"].result == "Unknown" and f["z"].score is None and f["z"].samples == 5
    assert ev.result == "Drifted"
    assert ev.drifted == ["y"]
    assert ev.max_score == f["y"].score
    assert "drifted y=" in ev.summary() and "unknown z" in ev.summary()


def test_too_few_samples_everywhere_is_unknown_never_drifted():
    live = buckets("x", {"1": 0, "2.5": 0, "1e+06": 0, "+Inf": 19})
    ev = evaluate_features({"x": NUMERIC}, live, [], "psi", 0.25, min_samples=20)
    assert ev.features["x"].result == "Unknown"
    assert ev.result == "Unknown" and ev.drifted == [] and ev.max_score is None


def test_no_traffic_at_all_is_unknown_not_an_error():
    ev = evaluate_features({"x": NUMERIC, "colour": COLOUR}, [], [], "ks", 0.1, min_samples=1)
    assert {f.result for f in ev.features.values()} == {"Unknown"}
    assert all(f.error is None and f.samples == 0 for f in ev.features.values())


def test_a_mismatched_feature_is_unknown_with_the_reason_and_others_still_count():
    live = [
        *buckets("x", {"1": 10, "+Inf": 40}),
        *buckets("y", {"1": 10, "2.5": 30, "1e+06": 35, "+Inf": 40}),
    ]
    ev = evaluate_features({"x": NUMERIC, "y": NUMERIC}, live, [], "psi", 0.25, 20)
    assert ev.features["x"].result == "Unknown" and "missing buckets" in ev.features["x"].error
    assert ev.features["y"].result == "Stable"
    assert ev.result == "Stable"


def test_feature_selection_and_unknown_feature_names():
    live = buckets("x", {"1": 10, "2.5": 30, "1e+06": 35, "+Inf": 40})
    ev = evaluate_features({"x": NUMERIC, "y": NUMERIC}, live, [], "psi", 0.25, 20, features=["x", "nope"])
    assert set(ev.features) == {"x", "nope"}
    assert ev.features["nope"].result == "Unknown"
    assert "no reference" in ev.features["nope"].error


def test_no_reference_at_all():
    ev = evaluate_features({}, [], [], "psi", 0.25, 20)
    assert ev.result == "Unknown" and ev.error and "no reference" in ev.summary()


SIZED = Bin(edges=NUMERIC.edges, shares=NUMERIC.shares, samples=1000)


@pytest.mark.parametrize("method", ["psi", "ks", "jensenShannon"])
def test_threshold_is_inclusive_and_methods_score_the_same_bins(method):
    # 500 samples shifted well beyond noise (p < 1e-6): the threshold alone decides
    live = buckets("x", {"1": 200, "2.5": 400, "1e+06": 450, "+Inf": 500})
    counts = [200, 200, 50, 50]
    if method == "psi":  # both sides smoothed with half a count per bin (Jeffreys)
        ref = [(s * 1000 + 0.5) / 1002 for s in NUMERIC.shares]
        expected = psi(ref, [(c + 0.5) / 502 for c in counts])
    else:
        expected = {"ks": ks, "jensenShannon": jensen_shannon}[method](NUMERIC.shares, counts)
    first = evaluate_features({"x": SIZED}, live, [], method, expected / 2, 10).features["x"]
    assert first.score == pytest.approx(expected, rel=1e-12)
    at = evaluate_features({"x": SIZED}, live, [], method, first.score, 10).features["x"]
    assert at.result == "Drifted" and at.p_value < 1e-6 and at.span == "window"
    above = evaluate_features({"x": SIZED}, live, [], method, first.score * 1.01, 10).features["x"]
    assert above.result == "Stable"
    assert (at.band is not None) == (method == "psi")


@pytest.mark.parametrize("method", ["psi", "ks", "jensenShannon"])
def test_a_large_score_on_few_samples_is_not_drift(method):
    # the same shares on 50 samples: X² ≈ 6 on 3 df (p ≈ 0.1), noise as far as the test can tell
    live = buckets("x", {"1": 20, "2.5": 40, "1e+06": 45, "+Inf": 50})
    f = evaluate_features({"x": SIZED}, live, [], method, 0.01, 10).features["x"]
    assert f.score > 0.05 and 0.01 < f.p_value < 0.5
    assert f.result == "Stable"
    # a lenient alpha lets the same data through: the test, not the score, held it back
    assert evaluate_features({"x": SIZED}, live, [], method, 0.01, 10, alpha=0.5).features["x"].result == (
        "Drifted"
    )


def test_categorical_ks_uses_total_variation():
    colours = cats("colour", {"red": 10, "green": 20, "blue": 10})
    ev = evaluate_features({"colour": COLOUR}, [], colours, "ks", 0.9, 1)
    # shares 0.25/0.5/0.25 vs 0.75/0.25/0 → ½(0.5+0.25+0.25)
    assert ev.features["colour"].score == pytest.approx(0.5)


def test_evaluate_drift_uses_the_trigger():
    trig = DriftTrigger(method="jensenShannon", threshold=0.2, min_samples=30, features=["x"])
    live = buckets("x", {"1": 10, "2.5": 30, "1e+06": 35, "+Inf": 40})
    ev = evaluate_drift(trig, {"x": NUMERIC, "y": NUMERIC}, live, [])
    assert ev.method == "jensenShannon" and list(ev.features) == ["x"]
    assert ev.features["x"].result == "Stable"


def test_feature_wire_keeps_nulls_for_merge_patch():
    ev = evaluate_features({"x": NUMERIC}, [], [], "psi", 0.25, 20)
    assert ev.features["x"].wire() == {
        "score": None,
        "samples": 0,
        "result": "Unknown",
        "band": None,
        "error": None,
        "pValue": None,
        "span": None,
    }


# --- online metric -----------------------------------------------------------------------


def test_online_accuracy_and_mae():
    assert online_metric(100, 90, None, "accuracy", 50) == pytest.approx(0.9)
    assert online_metric(100, None, 25.0, "mae", 50) == pytest.approx(0.25)
    assert online_metric(100, 104, None, "accuracy", 50) == 1.0  # increase() extrapolation


def test_online_metric_needs_min_labels():
    assert online_metric(49, 49, None, "accuracy", 50) is None
    assert online_metric(None, None, None, "accuracy", 1) is None
    assert online_metric(0, 0, 0, "mae", 1) is None


def test_evaluate_online_floor_ceiling_unknown():
    floor = PerformanceTrigger(metric="accuracy", floor=0.8, min_labels=10)
    assert evaluate_online(floor, 100, 70, None).result == "Breached"
    assert evaluate_online(floor, 100, 80, None).result == "Healthy"
    unknown = evaluate_online(floor, 5, 0, None)
    assert unknown.result == "Unknown" and unknown.value is None and unknown.labels == 5
    ceiling = PerformanceTrigger(metric="mae", ceiling=2.0, min_labels=10)
    assert evaluate_online(ceiling, 10, None, 30.0).result == "Breached"
    assert evaluate_online(ceiling, 10, None, 10.0).result == "Healthy"
    w = evaluate_online(floor, 100, 70, None).wire()
    assert w["metric"] == "accuracy" and w["value"] == 0.7 and w["floor"] == 0.8
    assert "0.7" in evaluate_online(floor, 100, 70, None).summary()
    assert math.isclose(evaluate_online(ceiling, 10, None, 10.0).value, 1.0)


def test_reference_size_comes_from_the_bin_then_the_caller_then_the_live_count():
    # 200 live rows, 60/40/50/50 against 25/50/12.5/12.5 %: how sure we are depends on the reference size
    live = buckets("x", {"1": 60, "2.5": 100, "1e+06": 150, "+Inf": 200})
    p_unknown = evaluate_features({"x": NUMERIC}, live, [], "psi", 0.1, 10).features["x"].p_value
    p_caller = evaluate_features({"x": NUMERIC}, live, [], "psi", 0.1, 10, reference_samples=5000)
    p_bin = evaluate_features(
        {"x": Bin(edges=NUMERIC.edges, shares=NUMERIC.shares, samples=40)},
        live,
        [],
        "psi",
        0.1,
        10,
        reference_samples=5000,
    )
    assert p_caller.features["x"].p_value < p_unknown < p_bin.features["x"].p_value


def test_evaluate_drift_passes_alpha_and_correction():
    trig = DriftTrigger(threshold=0.01, alpha=0.2, correction="bonferroni", min_samples=10)
    live = buckets("x", {"1": 20, "2.5": 40, "1e+06": 45, "+Inf": 50})
    ev = evaluate_drift(trig, {"x": SIZED}, live, [])
    assert (ev.alpha, ev.correction) == (0.2, "bonferroni")
    assert ev.features["x"].result == "Drifted"  # p ≈ 0.1: significant at 0.2, not at the default 0.01
    assert (
        evaluate_drift(DriftTrigger(threshold=0.01, min_samples=10), {"x": SIZED}, live, []).result
        == "Stable"
    )
    assert "alpha 0.2" in ev.summary() and "p=" in ev.summary()


def test_drifted_features_are_named_in_order_of_the_champions_importance():
    from modelops.drift.evaluate import DriftEvaluation, FeatureEval

    feats = {n: FeatureEval(0.3, 500, "Drifted") for n in ("age", "balance", "tenure")}
    plain = DriftEvaluation("psi", 0.2, feats)
    assert plain.drifted == ["age", "balance", "tenure"]
    ranked = DriftEvaluation("psi", 0.2, feats, importance={"tenure": 0.2, "balance": 0.05})
    assert ranked.drifted == ["tenure", "balance", "age"]
    assert (
        ranked.summary().index("tenure=")
        < ranked.summary().index("balance=")
        < ranked.summary().index("age=")
    )
