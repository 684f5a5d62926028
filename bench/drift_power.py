"""Drift rule on simulated data: false alarms on drift-free traffic and power for shifted traffic.

Each draw is one evaluation of one feature (`tests/support/drift_simulation.py`): a standard
normal training sample of `--reference` rows binned into quantile bins as the trainer does, and n
live rows from N(shift, 1) counted on those bins, judged by the operator's own functions. Rules:

  test      the chi-square test alone at alpha (no effect-size gate)
  psi       the default rule: PSI >= 0.25 and the test rejects
  ks, js    KS >= 0.1 / Jensen-Shannon >= 0.1, and the test rejects
  old       PSI >= 0.25 alone with the former 1e-4 share floor (before this rule)

A second table: six independent drift-free features per evaluation, the share of evaluations with
any alarm, per correction. A third: how many evaluations a step change needs to be acted on
(`evaluations_to_act`, large-n limit).

Run:  .venv/bin/python bench/drift_power.py [--draws 1000] [--reference 1000]
Writes bench/results/drift-power.md. Single-threaded numpy; about 20 s on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from modelops.drift.evaluate import evaluations_to_act, mixture_fraction  # noqa: E402
from tests.support.drift_simulation import alarms, old_alarms, simulate  # noqa: E402

SIZES = (100, 300, 1000)
BINS = (10, 20)
SHIFTS = (0.0, 0.25, 1.0)
ALPHA = 0.01
RULES = {
    "test": {"method": "psi", "threshold": 0.0},
    "psi": {"method": "psi", "threshold": 0.25},
    "ks": {"method": "ks", "threshold": 0.1},
    "js": {"method": "jensenShannon", "threshold": 0.1},
}


def rates(draws: int, reference: int, seed: int) -> dict[tuple[int, int, float], dict[str, float]]:
    out = {}
    for n in SIZES:
        for bins in BINS:
            for shift in SHIFTS:
                rng = np.random.default_rng([seed, n, bins, int(shift * 100), reference])
                ref, live = simulate(rng, draws=draws, n=n, bins=bins, reference_size=reference, shift=shift)
                row = {
                    name: float(alarms(ref, live, alpha=ALPHA, **rule).mean()) for name, rule in RULES.items()
                }
                row["old"] = float(old_alarms(ref, live).mean())
                out[(n, bins, shift)] = row
    return out


def corrections(draws: int, reference: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, 6])
    ref, live = simulate(rng, draws=draws, n=300, bins=10, reference_size=reference, features=6)
    return {
        c: float(alarms(ref, live, threshold=0.0, alpha=ALPHA, correction=c).mean())
        for c in ("benjaminiHochberg", "bonferroni", "none")
    }


def reaction() -> list[str]:
    edges = norm.ppf(np.linspace(0, 1, 11))
    p = np.full(10, 0.1)
    lines = [
        "| shift | method ≥ threshold | new rows needed | newest interval | window = 10 intervals |",
        "|---|---|---|---|---|",
    ]
    for sd in (0.5, 0.75, 1.0, 2.0):
        q = np.diff(norm.cdf(edges - sd))
        for method, threshold in (("psi", 0.25), ("ks", 0.1), ("jensenShannon", 0.1)):
            f = mixture_fraction(p, q, method, threshold)
            if f is None:
                lines.append(
                    f"| {sd:g} sd | {method} ≥ {threshold:g} | never (below threshold) | n/a | n/a |"
                )
                continue
            newest = evaluations_to_act(60, 60, 2, f)
            window = evaluations_to_act(60, 600, 2, f)
            lines.append(
                f"| {sd:g} sd | {method} ≥ {threshold:g} | {f:.0%} | {newest[0]}-{newest[1]} | {window[0]}-{window[1]} |"
            )
    return lines


def table(
    results: dict[tuple[int, int, float], dict[str, float]], shift: float, columns: list[str]
) -> list[str]:
    lines = ["| n | bins | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for n in SIZES:
        for bins in BINS:
            row = results[(n, bins, shift)]
            lines.append(f"| {n} | {bins} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--reference", type=int, default=1000, help="training rows the reference bins come from")
    ap.add_argument("--small-reference", type=int, default=120, help="a second, small reference (iris: 120)")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "drift-power.md")
    args = ap.parse_args()

    load_before = os.getloadavg()
    started = time.perf_counter()
    main_ref = rates(args.draws, args.reference, args.seed)
    small_ref = {k: v for k, v in rates(args.draws, args.small_reference, args.seed).items() if k[2] == 0.0}
    corr = corrections(args.draws, args.reference, args.seed)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()

    bound = scipy.stats.binom.ppf(0.999, args.draws, ALPHA) / args.draws
    lines = [
        "# Drift rule: false alarms and power (simulated)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; `bench/drift_power.py --draws {args.draws} "
        f"--reference {args.reference} --seed {args.seed}`; {args.draws} draws per cell, one feature per draw,",
        f"alpha = {ALPHA}; {os.cpu_count()} CPUs, load average {load_before[0]:.2f} / {load_before[1]:.2f} / "
        f"{load_before[2]:.2f} before and {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after; "
        f"{elapsed:.1f} s; Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}.",
        "",
        "Rules: `test` = the chi-square test alone; `psi` = the default (PSI ≥ 0.25 and the test rejects);",
        "`ks` / `js` = KS ≥ 0.1 / Jensen-Shannon ≥ 0.1 and the test; `old` = PSI ≥ 0.25 alone (before).",
        f"Binomial 99.9 % bound on {args.draws} draws at alpha {ALPHA}: {bound:.3f}.",
        "",
        f"## False alarms, no shift, reference of {args.reference} rows",
        "",
        *table(main_ref, 0.0, ["test", "psi", "ks", "js", "old"]),
        "",
        f"## False alarms, no shift, small reference of {args.small_reference} rows",
        "",
        *table(small_ref, 0.0, ["test", "psi", "ks", "js", "old"]),
        "",
        f"## Power, 0.25 sd shift (PSI on deciles ≈ 0.06, KS ≈ 0.10), reference of {args.reference} rows",
        "",
        *table(main_ref, 0.25, ["test", "psi", "ks", "js"]),
        "",
        f"## Power, 1 sd shift (PSI on deciles ≈ 0.93, KS ≈ 0.38), reference of {args.reference} rows",
        "",
        *table(main_ref, 1.0, ["test", "psi", "ks", "js"]),
        "",
        "## Six drift-free features per evaluation (n = 300, 10 bins): share of evaluations with any alarm",
        "",
        "| correction | test alone |",
        "|---|---|",
        *(f"| {c} | {v:.3f} |" for c, v in corr.items()),
        "",
        "## Evaluations until a step change is acted on (consecutive 2; large-n limit; best-worst by phase)",
        "",
        *reaction(),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
