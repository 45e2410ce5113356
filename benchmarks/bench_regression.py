"""Regression with harmful supervision: SCPO vs the paper's plain bank vs unconstrained training.

    python benchmarks/bench_regression.py [--seeds 0 1 2 3 4] [--iterations 1000] [--out bench-out]

Same optimiser (Adam, the task's learning rate) in every variant; the variants differ only in
what the projector does:

* ``scpo``: the toolkit's default (block-gradient probes at radius 1e-3, bank 16);
* ``plain-bank``: the paper's bank of raw steps (probe = the raw step, no block probes);
* ``unconstrained``: every raw step taken (``projection=False``).

Prints one row per variant and seed (final loss, fraction of the achievable improvement, first
iteration reaching 90 %, constraint evaluations, accepted iterates violating the box, first
violation) and writes regression_comparison.csv and regression_comparison.png.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "scpo": {},
    "plain-bank": {"block_probes": 0, "probe_radius": None},
    "unconstrained": {"projection": False},
}


def run_variant(name: str, seed: int, iterations: int) -> dict:
    from scpo.tasks import make_task
    from scpo.training import _build_projector, resolve_config

    cfg = resolve_config("regression", projector_overrides=VARIANTS[name], train_overrides={"seed": seed})
    task = make_task("regression", cfg.task_config, seed=seed)
    proj = _build_projector(task, cfg.projector, task.theta0)
    fracs, violations, first_violation, hit90, hit90_evals = [], 0, None, None, None
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        rec = proj.step()
        frac = (task.reference["f0"] - rec.objective) / (task.reference["f0"] - task.reference["f_star"])
        fracs.append(frac)
        if rec.accepted and not rec.max_constraint <= 0:
            violations += 1
            first_violation = first_violation or it
        if hit90 is None and frac >= 0.9 and rec.max_constraint <= 0:
            hit90, hit90_evals = it, proj.evaluations
    return {
        "variant": name,
        "seed": seed,
        "final_loss": proj.objective_value,
        "improvement_fraction": fracs[-1],
        "iteration_90pct": hit90,
        "evaluations_90pct": hit90_evals,
        "evaluations": proj.evaluations,
        "violating_iterates": violations,
        "first_violation": first_violation,
        "wall_s": time.perf_counter() - t0,
        "curve": fracs,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"{'variant':>14} {'seed':>4} {'loss':>8} {'improv.':>8} {'it@90%':>7} {'evals@90%':>9} {'evals':>7} {'viol.':>6} {'1st viol.':>9} {'time':>7}")
    for name in args.variants:
        for seed in args.seeds:
            r = run_variant(name, seed, args.iterations)
            rows.append(r)
            print(
                f"{name:>14} {seed:>4} {r['final_loss']:8.4f} {100 * r['improvement_fraction']:7.1f}% "
                f"{r['iteration_90pct'] or '-':>7} {r['evaluations_90pct'] or '-':>9} {r['evaluations']:>7} "
                f"{r['violating_iterates']:>6} {r['first_violation'] or '-':>9} {r['wall_s']:6.1f}s",
                flush=True,
            )
    with open(args.out / "regression_comparison.csv", "w", newline="") as fh:
        fields = [k for k in rows[0] if k != "curve"]
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows({k: r[k] for k in fields} for r in rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {"scpo": "tab:blue", "plain-bank": "tab:orange", "unconstrained": "tab:red"}
    for r in rows:
        ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], color=colors.get(r["variant"], "k"), alpha=0.6,
                label=r["variant"] if r["seed"] == args.seeds[0] else None)
    ax.axhline(0.9, ls="--", color="gray", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("fraction of achievable improvement")
    ax.set_ylim(-0.05, 1.1)
    ax.set_title("Regression with harmful supervision (unconstrained ignores |f| ≤ 1)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "regression_comparison.png", dpi=120)
    print(f"wrote {args.out / 'regression_comparison.csv'} and {args.out / 'regression_comparison.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
