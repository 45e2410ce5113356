"""The sound gate: its share of an iteration, and which ways of making it cheap pay (issue 12).

    OMP_NUM_THREADS=1 python benchmarks/bench_gate.py [--iterations 100] [--out bench-out]

Part ``share``: trains the demo (double integrator, sound gate, seed 0) and the grid-only demo, and
prints per iteration the wall time and its parts (evaluations of ``g``, gradients, the SOCP, the
gate), the gate's share, the candidates the gate saw and rejected, the states it added, and the
final imitation loss of both.

Part ``strategies``: certifies the accepted iterates of that sound run again, in order, with
each strategy the issue asks about, and prints the mean time per certificate and the leaves:

* a fresh partition for every iterate;
* the previous iterate's partition carried over, without merging;
* carried over with merging back of siblings certified with slack (the default);
* the same with an IBP pre-filter before CROWN;
* bounds valid for every ``θ'`` in a box of radius ``r`` around ``θ_t`` (IBP with a parameter
  box, the only parameter-set bound in scpo): the share of leaves such a bound certifies, which
  is what a step inside the ball could reuse without a new certificate.

Writes ``gate_share.csv`` and ``gate_strategies.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scpo.certify.bounds import as_boxes, bound_rollout, closed_loop
from scpo.certify.sound_region import GateConfig, RegionCertifier
from scpo.runs import load_run
from scpo.training import resolve_config, train


def _train(out: Path, iterations: int, certify: str) -> tuple[float, object]:
    cfg = resolve_config("double-integrator", train_overrides={"iterations": iterations, "seed": 0, "certify": certify})
    t0 = time.perf_counter()
    res = train(cfg, out)
    return time.perf_counter() - t0, res


def share(args: argparse.Namespace, base: Path) -> Path:
    rows = []
    sound_dir = base / "sound"
    for certify in ("sound", "grid"):
        wall, res = _train(base / certify, args.iterations, certify)
        recs = load_run(base / certify).records
        per = lambda k: float(np.mean([r.get(k, 0.0) for r in recs]))  # noqa: E731
        it = per("wall_time_s")
        row = {
            "certify": certify, "run_s": wall, "iteration_ms": 1e3 * it,
            "evaluation_ms": 1e3 * per("evaluation_time_s"), "gradient_ms": 1e3 * per("gradient_time_s"),
            "socp_ms": 1e3 * (per("solve_time_s") + per("setup_time_s")), "gate_ms": 1e3 * per("gate_time_s"),
            "gate_share": per("gate_time_s") / it if it > 0 else float("nan"),
            "gate_tries": sum(r.get("gate_tries", 0) for r in recs), "gate_rejections": sum(r.get("gate_rejections", 0) for r in recs),
            "states_added": sum(len(r.get("added_states") or []) for r in recs),
            "accepted": res.accepted, "imitation_ratio": res.quality_final["imitation_loss_ratio"], "violations": res.violations,
        }
        rows.append(row)
    print(f"\nPart share: double integrator, {args.iterations} iterations, seed 0 (ms per iteration, mean)")
    print("| certify | run s | iteration | g evaluations | gradients | SOCP | gate | gate share | gate tries / rejected | states added | accepted | loss / backup's | violations |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['certify']} | {r['run_s']:.0f} | {r['iteration_ms']:.0f} | {r['evaluation_ms']:.0f} | {r['gradient_ms']:.0f} | "
              f"{r['socp_ms']:.0f} | {r['gate_ms']:.0f} | {100 * r['gate_share']:.0f}% | {r['gate_tries']} / {r['gate_rejections']} | "
              f"{r['states_added']} | {r['accepted']} | {r['imitation_ratio']:.3f} | {r['violations']} |")
    _write(args.out / "gate_share.csv", rows)
    return sound_dir


def _certify_all(run, thetas, config: GateConfig, *, fresh: bool) -> dict:
    task = run.task
    region = task.declared_region()
    certifier = RegionCertifier(task.problem, task.structure, region, config)
    times, leaves, holds = [], [], 0
    for th in thetas:
        if fresh:
            certifier = RegionCertifier(task.problem, task.structure, region, config)
        t0 = time.perf_counter()
        c = certifier.certify(th)
        times.append(time.perf_counter() - t0)
        leaves.append(c.summary["live_leaves"])
        holds += int(c.holds)
    return {"ms_per_certificate": 1e3 * float(np.mean(times)), "leaves_mean": float(np.mean(leaves)),
            "leaves_max": int(np.max(leaves)), "holds": f"{holds}/{len(thetas)}"}


def _parameter_ball(run, thetas, radii) -> list[dict]:
    task = run.task
    region = task.declared_region()
    cert = RegionCertifier(task.problem, task.structure, region).certify(thetas[-1])
    part = cert.partition
    live = part.live
    out = []
    for r in radii:
        th = thetas[-1]
        loop = closed_loop(task.problem, task.structure, th)
        t0 = time.perf_counter()
        rb = bound_rollout(loop, as_boxes(part.lower[live], part.upper[live], n=2), task.problem.horizon, method="ibp",
                           state_rows=task.problem.Hx, input_rows=task.problem.Hu, theta_box=(th - r, th + r))
        dt = time.perf_counter() - t0
        st = (rb.state_rows.upper[:, 1:].numpy() - task.problem.hx).reshape(len(live), -1).max(axis=1)
        inp = (rb.input_rows.upper.numpy() - task.problem.hu).reshape(len(live), -1).max(axis=1)
        ok = np.maximum(st, inp) <= 0
        out.append({"strategy": f"IBP over the parameter box |θ' − θ_t|∞ ≤ {r:g}", "ms_per_certificate": 1e3 * dt,
                    "leaves_mean": float(len(live)), "leaves_max": int(len(live)),
                    "holds": f"{int(ok.sum())}/{len(live)} leaves (state and input rows)"})
    return out


def strategies(args: argparse.Namespace, sound_dir: Path) -> None:
    run = load_run(sound_dir)
    its = [i for i in sorted(run.checkpoints) if i > 0][: args.strategy_iterates]
    thetas = [run.theta(i) for i in its]
    base = GateConfig()
    variants = [
        ("fresh partition per iterate", GateConfig(merge_slack=None), True),
        ("carried over, no merging", GateConfig(merge_slack=None), False),
        ("carried over, merging (default)", base, False),
        ("carried over, merging, IBP pre-filter", GateConfig(use_ibp=True), False),
    ]
    rows = []
    for name, cfg, fresh in variants:
        rows.append({"strategy": name, **_certify_all(run, thetas, cfg, fresh=fresh)})
    rows += _parameter_ball(run, thetas, (1e-5, 1e-4, 1e-3))
    print(f"\nPart strategies: the {len(thetas)} accepted iterates of the sound run, certified again in order")
    print("| strategy | ms per certificate | leaves (mean) | leaves (max) | holds |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['strategy']} | {r['ms_per_certificate']:.0f} | {r['leaves_mean']:.0f} | {r['leaves_max']} | {r['holds']} |")
    _write(args.out / "gate_strategies.csv", rows)


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--strategy-iterates", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--part", choices=("all", "share", "strategies"), default="all")
    ap.add_argument("--run", type=Path, help="part strategies: an existing sound run instead of training one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="scpo-gate-") as tmp:
        base = Path(tmp)
        sound_dir = args.run
        if args.part in ("all", "share"):
            sound_dir = share(args, base)
        if args.part in ("all", "strategies"):
            if sound_dir is None:
                _train(base / "sound", args.iterations, "sound")
                sound_dir = base / "sound"
            strategies(args, sound_dir)
    print(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"), "python": sys.version.split()[0]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
