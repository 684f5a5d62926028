from modelops.lifecycle.conditions import Cond, apply_conditions, find, set_condition


def test_transition_time_changes_only_when_status_flips():
    conds = set_condition([], Cond("Ready", "False", "Training", "a"), generation=1, now="t1")
    conds = set_condition(conds, Cond("Ready", "False", "Deploying", "b"), generation=2, now="t2")
    ready = find(conds, "Ready")
    assert ready["lastTransitionTime"] == "t1"
    assert (ready["reason"], ready["message"], ready["observedGeneration"]) == ("Deploying", "b", 2)
    conds = set_condition(conds, Cond("Ready", "True", "Serving", "c"), generation=2, now="t3")
    assert find(conds, "Ready")["lastTransitionTime"] == "t3"


def test_reconciling_and_stalled_exist_only_while_true():
    conds = apply_conditions([], [Cond("Reconciling", "True", "Training")], generation=1, now="t1")
    assert find(conds, "Reconciling")["status"] == "True"
    conds = apply_conditions(conds, [Cond("Ready", "True", "Serving")], generation=1, now="t2")
    assert find(conds, "Reconciling") is None
    conds = apply_conditions(conds, [Cond("Stalled", "False", "x")], generation=1, now="t3")
    assert find(conds, "Stalled") is None


def test_input_is_not_mutated():
    original = [{"type": "Ready", "status": "False", "lastTransitionTime": "t0"}]
    set_condition(original, Cond("Ready", "True", "Serving"), generation=1, now="t1")
    assert original == [{"type": "Ready", "status": "False", "lastTransitionTime": "t0"}]
