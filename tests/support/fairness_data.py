"""A generated credit-style data set with a sensitive column, for the fairness gate.

No data set with a sensitive attribute ships with scikit-learn and nothing can be downloaded here,
so it is generated, deterministically from a seed: two numeric features, a categorical `region`,
a sensitive `group` (A or B) and a binary `approved` label. With `bias > 0` the label depends on
the group itself (A is approved far more often at the same income and debt), so a model that
sees `group` learns it and its selection rate differs between the groups; with `bias = 0` the
label ignores the group. A `ssn` column stands for personal data that must be excluded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def credit_frame(n: int = 1200, seed: int = 7, bias: float = 2.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], size=n)
    income = rng.normal(50, 15, size=n)
    debt = rng.normal(20, 8, size=n)
    region = rng.choice(["north", "south", "east"], size=n)
    score = (income - 50) / 15 - (debt - 20) / 8 + bias * (group == "A") - bias / 2
    approved = (score + rng.normal(0, 0.5, size=n) > 0).astype(int)
    ssn = [f"{rng.integers(100, 999)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(n)]
    return pd.DataFrame(
        {
            "income": income.round(2),
            "debt": debt.round(2),
            "region": region,
            "group": group,
            "ssn": ssn,
            "approved": approved,
        }
    )


def credit_training(uri: str) -> dict[str, object]:
    """The training spec both governance tests use on the credit table at `uri`: the sensitive
    `group` is a categorical input, `ssn` is excluded."""
    return {
        "dataset": {
            "uri": uri,
            "target": "approved",
            "categorical": ["region", "group"],
            "exclude": ["ssn"],
        },
        "estimator": {"class": "LogisticRegression"},
    }
