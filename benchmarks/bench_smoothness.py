"""Certified smoothness L and state-Lipschitz constants: looseness against sampled maxima, and timings.

Run on one core (the full run takes several minutes on an idle machine; ``--quick`` well under two):

    OMP_NUM_THREADS=1 python benchmarks/bench_smoothness.py [--quick] [--out bench-out]

Part 1  MLP output of a 2-16-16-1 tanh net (P = 337): the interval bound (a) and the norm chain (b)
        of sup ‖∇²_θ f‖₂ over L∞ boxes and L2 balls, divided by the sampled maximum (dense
        torch.func.hessian at random points, corners / boundary points, then projected ascent on
        the top eigenvalue).
Part 2  The regression task (1-64-64-1, d = 4353): (a), (b) and the estimated lower bound
        (power iteration + ascent + second differences) per grid point; time for all 800 rows.
Part 3  Rollout rows of the double integrator (2-32-32-1, d = 1185) through the unrolled closed loop:
        norm-chain bound over the estimated lower bound, by horizon T.
Part 4  State-Lipschitz constants (naive product, LipSDP with re-check, sampled Jacobian norm,
        largest local per-cell bound) of the residual, the policy and the closed loop.
Part 5  Certified L in the projector: rejected tries with the certified L vs. L/20 (regression, small).
Part 6  A 100-iteration double-integrator demo run (``--run RUN``; without it one is trained into
        ``--out``/demo with ``scpo demo --certify grid`` settings, about 10 minutes): the wall time of
        ``scpo verify-lipschitz RUN`` (a subprocess, one torch thread; target < 60 s on 2 cores), and
        the sound/lower ratio distributions of the subspace bound (all rows, and the randomly sampled
        rows) beside the full-space bound (on ``--full-states`` random initial states, same θ and
        radius; ``0`` skips it: the full-space bound of all 1,470 states takes ~9 CPU minutes).
Part 7  Certified-L training runs (``--train-run RUN ...``, e.g. ``scpo train double-integrator
        --iterations 100 --seed 0 --L-mode subspace --certified-radius 0.03``): imitation loss over the
        backup's, candidates rejected for safety, prediction failures, violating iterates, seconds per
        iteration and in the subspace certificate.

Parts 6 and 7 run only when asked (``--parts 6 7``); ``--parts`` defaults to 1–5.

Writes smoothness_mlp.csv, smoothness_regression.csv, smoothness_rollout.csv, lipschitz.csv,
smoothness_demo_ratios.csv.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np


def _one_core() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _write(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def sampled_max(f, theta, x, region, n_points, ascent_steps, rng):
    """Largest ‖∇²_θ f(θ', x)‖₂ over sampled θ' in the region plus projected ascent (dense Hessians)."""
    import torch
    from torch.func import grad, hessian, vmap

    d = theta.shape[0]
    c = torch.as_tensor(theta)
    xt = torch.as_tensor(x)
    if region.kind == "box":
        D = rng.uniform(-1, 1, size=(n_points, d))
        D[: n_points // 2] = np.sign(D[: n_points // 2])
    else:
        D = rng.normal(size=(n_points, d))
        D /= np.linalg.norm(D, axis=1, keepdims=True)
    pts = torch.cat([c[None], c + region.radius * torch.as_tensor(D)])
    hess = vmap(hessian(f), in_dims=(0, None))
    ev = torch.linalg.eigvalsh(hess(pts, xt)).abs().amax(-1)
    best = float(ev.max())
    cur = pts[torch.argsort(ev, descending=True)[:4]].clone()

    def rq(th, v, s):
        return s * v @ hessian(f)(th, xt) @ v

    for k in range(ascent_steps):
        H = hess(cur, xt)
        e, V = torch.linalg.eigh(H)
        idx = e.abs().argmax(-1)
        u = V[torch.arange(cur.shape[0]), :, idx]
        s = torch.sign(e[torch.arange(cur.shape[0]), idx])
        g = vmap(grad(rq))(cur, u, s)
        step = torch.sign(g) if region.kind == "box" else g / g.norm(dim=-1, keepdim=True).clamp(min=1e-300)
        cur = region.project(cur + step * region.radius / (k + 2), c)
        best = max(best, float(torch.linalg.eigvalsh(hess(cur, xt)).abs().amax()))
    return best


def part1(quick: bool, out: Path) -> None:
    import torch

    from scpo.certify.smoothness import Region, mlp_hessian_bound_chain, mlp_hessian_bound_interval
    from scpo.policies import MLP

    print("\n== Part 1: MLP output, 2-16-16-1 tanh (P = 337): bound / sampled maximum ==")
    mlp = MLP(2, (16, 16), 1, seed=0)
    st = mlp.structure
    rng = np.random.default_rng(0)
    theta = rng.normal(size=st.dim) * 0.5
    xs = rng.normal(size=(1 if quick else 3, 2))
    regions = [Region.box(r) for r in (1e-3, 3e-3, 1e-2, 3e-2)] + [Region.ball(r) for r in (1e-3, 1e-2, 3e-2, 1e-1)]
    if quick:
        regions = [Region.box(1e-3), Region.box(1e-2), Region.box(3e-2), Region.ball(1e-2), Region.ball(1e-1)]

    def f(th, x):
        return st.forward(th, x)[0]

    rows = []
    print(f"{'region':>14} {'sampled':>9} {'(a)/samp':>9} {'(b)/samp':>9} {'t(a) ms':>8} {'t(b) ms':>8}")
    for reg in regions:
        for x in xs:
            t0 = time.perf_counter()
            a = float(mlp_hessian_bound_interval(st, theta[None], x[None], reg.radius, kind=reg.kind)[0])
            ta = time.perf_counter() - t0
            t0 = time.perf_counter()
            b = float(mlp_hessian_bound_chain(st, theta[None], x[None], reg.radius, kind=reg.kind)[0])
            tb = time.perf_counter() - t0
            s = sampled_max(f, theta, x, reg, 16 if quick else 64, 3 if quick else 8, rng)
            rows.append({"kind": reg.kind, "radius": reg.radius, "sampled": s, "interval": a, "norm_chain": b,
                         "interval_over_sampled": a / s, "chain_over_sampled": b / s, "t_interval_s": ta, "t_chain_s": tb})
            print(f"{reg.kind + ' ' + format(reg.radius, 'g'):>14} {s:9.4g} {a / s:9.3f} {b / s:9.3f} {ta * 1e3:8.1f} {tb * 1e3:8.1f}")
    _write(out / "smoothness_mlp.csv", rows)


def _bounds(task, theta, region, **kw):
    from scpo.certify.smoothness import smoothness_bounds

    return smoothness_bounds(task.problem, task.structure, theta, task.constraint_states, region, aggregation=task.rows,
                             temperature=task.lse_temperature, **kw)


def _lower(task, theta, region, rows, **kw):
    from scpo.certify.smoothness import smoothness_lower_bounds

    return smoothness_lower_bounds(task.problem, task.structure, theta, task.constraint_states, region, rows,
                                   aggregation=task.rows, temperature=task.lse_temperature, **kw)


def part2(quick: bool, out: Path) -> None:
    from scpo.certify.smoothness import Region
    from scpo.tasks import RegressionTask

    print("\n== Part 2: regression task (1-64-64-1, d = 4353): bounds over the estimated lower bound ==")
    task = RegressionTask()
    rng = np.random.default_rng(1)
    theta = task.theta0.copy()
    theta[-65:] = rng.normal(size=65) * 0.1  # a non-zero final layer, as after some training
    rows_idx = np.arange(0, 800, 200 if quick else 20)
    regions = [Region.ball(0.0), Region.ball(1e-2), Region.box(1e-3)] if quick else \
        [Region.ball(0.0), Region.ball(1e-3), Region.ball(1e-2), Region.ball(1e-1), Region.box(1e-4), Region.box(1e-3)]
    rows = []
    print(f"{'region':>14} {'(a)/lower':>22} {'(b)/lower':>22} {'t all rows (a)':>15} {'(b)':>7}")
    for reg in regions:
        t0 = time.perf_counter()
        cert = _bounds(task, theta, reg, methods=("norm-chain",) if quick else ("interval", "norm-chain"))
        tb = cert.timings.get("norm-chain", float("nan"))
        if quick:  # the interval method on the sampled rows only (all 400 inputs take ~1 minute)
            from scpo.certify.smoothness import mlp_hessian_bound_interval

            st = task.structure
            x = task.constraint_states[rows_idx // 2]
            t0 = time.perf_counter()
            a_rows = mlp_hessian_bound_interval(st, theta[None], x, reg.radius, kind=reg.kind)
            ta = (time.perf_counter() - t0) * 400 / rows_idx.size
        else:
            a_rows = cert.methods["interval"][rows_idx]
            ta = cert.timings["interval"]
        lb = _lower(task, theta, reg, rows_idx, ascent_steps=3 if quick else 8)
        ra = a_rows / lb.values
        rb = cert.methods["norm-chain"][rows_idx] / lb.values
        rows.append({"kind": reg.kind, "radius": reg.radius, "interval_over_lower_median": float(np.median(ra)),
                     "interval_over_lower_max": float(ra.max()), "chain_over_lower_median": float(np.median(rb)),
                     "chain_over_lower_max": float(rb.max()), "t_interval_all_rows_s": ta, "t_chain_all_rows_s": tb})
        print(f"{reg.kind + ' ' + format(reg.radius, 'g'):>14} {'median %.3f max %.3f' % (np.median(ra), ra.max()):>22} "
              f"{'median %.3f max %.3f' % (np.median(rb), rb.max()):>22} {ta:14.1f}s {tb:6.2f}s" + (" (extrapolated)" if quick else ""))
    _write(out / "smoothness_regression.csv", rows)


def part3(quick: bool, out: Path) -> None:
    from scpo.certify.smoothness import Region
    from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask

    print("\n== Part 3: double-integrator rollout rows (2-32-32-1, d = 1185): norm chain over the lower bound, by horizon ==")
    rows = []
    horizons = (5, 10, 30) if quick else (5, 10, 20, 30)
    print(f"{'T':>3} {'radius':>7} {'first state row':>16} {'last input row':>15} {'terminal row':>13} {'max row':>9} {'t chain':>8}")
    for T in horizons:
        task = DoubleIntegratorTask(DoubleIntegratorConfig(horizon=T, rows="per-row", grid=20 if quick else 50))
        rng = np.random.default_rng(T)
        theta = task.theta0 + rng.normal(size=task.dim) * 0.05
        R = task.problem.layout.n_rows
        S = task.constraint_states.shape[0]
        states = rng.choice(S, size=min(3 if quick else 10, S), replace=False)
        kinds = {"first state row": 0, "last input row": R - 2, "terminal row": R - 1}
        sel = np.concatenate([states * R + k for k in kinds.values()])
        for rad in (0.0, 1e-2):
            cert = _bounds(task, theta, Region.ball(rad))
            lb = _lower(task, theta, Region.ball(rad), sel, ascent_steps=3 if quick else 8)
            ratio = (cert.L[sel] / lb.values).reshape(len(kinds), -1)
            # a max row's certificate is the largest bound of its rows; its curvature at least the largest lower bound found
            maxrow = np.array([cert.L[s * R : (s + 1) * R].max() for s in states]) / lb.values.reshape(len(kinds), -1).max(axis=0)
            rec = {"horizon": T, "radius": rad, "t_chain_s": cert.timings["norm-chain"], "states": int(states.size)}
            rec.update({f"{k.replace(' ', '_')}_median": float(np.median(r)) for k, r in zip(kinds, ratio)})
            rec["max_row_median"] = float(np.median(maxrow))
            rows.append(rec)
            cells = " ".join(f"{np.median(r):>{w}.3g}" for r, w in zip(ratio, (16, 15, 13)))
            print(f"{T:3d} {rad:7.3g} {cells} {np.median(maxrow):9.3g} {cert.timings['norm-chain']:7.2f}s")
    print("  (sound norm-chain bound / estimated lower bound, median over states; all rows of all states are bounded in 't chain')")
    _write(out / "smoothness_rollout.csv", rows)


def part4(quick: bool, out: Path) -> None:
    from scpo.certify.lipschitz import state_lipschitz
    from scpo.certify.region_cover import state_box
    from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask, RegressionTask

    print("\n== Part 4: state-Lipschitz constants ==")
    rows = []
    tasks = [("double-integrator", DoubleIntegratorTask(DoubleIntegratorConfig(grid=20)))]
    if not quick:
        tasks.append(("regression", RegressionTask()))
    print(f"{'task':>18} {'map':>12} {'naive':>9} {'LipSDP':>9} {'method':>7} {'sampled':>9} {'local max':>10} {'t LipSDP':>9}")
    for name, task in tasks:
        theta = task.theta0 + np.random.default_rng(2).normal(size=task.dim) * 0.1
        # the box of states the local bounds cover: the state box, or the span of a static problem's inputs
        lo, hi = (task.constraint_states.min(0), task.constraint_states.max(0)) if task.problem.is_static else state_box(task.problem)
        rep = state_lipschitz(task.problem, task.structure, theta, lo, hi, cells_per_axis=10 if quick else 20)
        for m in dict.fromkeys(b.map for b in rep.bounds):
            nv = [b for b in rep.bounds if b.map == m and b.method == "naive"][0]
            sd = [b for b in rep.bounds if b.map == m and b.method == "sampled"][0]
            ls = [b for b in rep.bounds if b.map == m and b.method in ("lipsdp",) or (b.map == m and "fallback" in b.details)][0]
            t = ls.details.get("solve_time_s", float("nan"))
            rows.append({"task": name, "map": m, "naive": nv.value, "lipsdp": ls.value, "lipsdp_method": ls.method,
                         "solver": ls.details.get("solver"), "sampled": sd.value, "local_max": float(rep.local[m].max()), "t_lipsdp_s": t})
            print(f"{name:>18} {m:>12} {nv.value:9.4g} {ls.value:9.4g} {ls.method:>7} {sd.value:9.4g} {rep.local[m].max():10.4g} {t:8.2f}s")
    _write(out / "lipschitz.csv", rows)


def part5() -> None:
    from scpo.certify.smoothness import certified_L
    from scpo.projector import Projector, ProjectorConfig
    from scpo.tasks import RegressionConfig, RegressionTask

    print("\n== Part 5: certified L in the projector (regression, hidden (8,), start 0.05 from the boundary) ==")
    task = RegressionTask(RegressionConfig(hidden=(8,), n_grid=60, n_train=40))
    theta = task.theta0.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for k in range(1, 401):
        _, gr = task.objective_and_grad(theta)
        m, v = 0.9 * m + 0.1 * gr, 0.999 * v + 0.001 * gr**2
        theta -= 0.02 * (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
    theta[-9:] *= 0.95 / np.abs(task.predict(theta[None], np.linspace(-3, 3, 60))).max()
    L = certified_L(task.problem, task.structure, theta, task.constraint_states, 0.1)
    for label, L0 in (("certified L (ball 0.1)", L), ("L / 20", L / 20)):
        cfg = ProjectorConfig(direction="sgd", lr=0.02, L_fixed=True, armijo=-1.0, bank_size=8, probe_radius=1e-3, solver="clarabel")
        p = Projector(theta0=theta, objective=task.objective, objective_and_grad=task.objective_and_grad,
                      constraints=task.constraints, config=cfg, L0=L0)
        recs = [p.step() for _ in range(12)]
        print(f"  {label:<24} accepted {sum(r.accepted for r in recs):2d}/12  rejected tries {sum(r.rejected_tries for r in recs):3d}  "
              f"prediction failures {sum(r.prediction_failures for r in recs):2d}  objective {recs[0].objective_before:.4f} -> {recs[-1].objective:.4f}")


def _quantiles(v: np.ndarray) -> str:
    v = v[np.isfinite(v)]
    if not v.size:
        return f"{0:>7} rows"
    q = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
    return f"{v.size:>7} rows " + " ".join(f"{x:>9.3g}" for x in (*q, v.max()))


def _ratios(sound, lower) -> np.ndarray:
    sound, lower = np.asarray(sound, dtype=float), np.array([float(x) for x in lower])
    ok = np.isfinite(sound) & np.isfinite(lower) & (lower > 0)
    return sound[ok] / lower[ok]


def _demo_run(out: Path) -> Path:
    import subprocess

    run = out / "demo"
    if not (run / "run.json").is_file():
        print(f"  training a 100-iteration demo run into {run} (scpo demo --certify grid) ...", flush=True)
        subprocess.run(["scpo", "demo", "--out", str(run), "--certify", "grid"], check=True, stdout=subprocess.DEVNULL)
    return run


def part6(run: Path | None, full_states: int, out: Path) -> None:
    import json
    import subprocess

    from scpo.certify.smoothness import verify_smoothness
    from scpo.runs import load_run
    from scpo.runs.files import read_tensors

    run = run if run is not None else _demo_run(out)
    print(f"\n== Part 6: verify-lipschitz on {run} (subspace vs full-space bound) ==")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    res = subprocess.run(["scpo", "verify-lipschitz", str(run), "--json"], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        raise SystemExit(f"scpo verify-lipschitz failed (exit {res.returncode}): {res.stderr[-2000:]}")
    sub = json.loads(res.stdout)
    load = os.getloadavg()[0]
    print(f"  scpo verify-lipschitz {run.name}: {wall:.1f} s wall (target < 60 s; internal {sub['timings_s']}); "
          f"load average {load:.1f} on {os.cpu_count()} cores" + (" — a shared, loaded machine" if load > (os.cpu_count() or 1) else ""))
    pr = sub["per_row"]
    r_all = _ratios(pr["sound"], pr["lower"])
    sample = np.asarray(sub.get("sample_rows") or [], dtype=int)
    lines = [("subspace, every row (lower: centre Hessian, 2nd differences, search)", r_all)]
    if sample.size:
        lines.append(("subspace, the random sample", _ratios(np.asarray(pr["sound"], float)[sample], np.array(pr["lower"], dtype=object)[sample])))
    radius = float(sub["region"]["radius"])
    if full_states:
        r_run = load_run(run)
        task = r_run.task
        K = int(sub["iteration"])
        state = read_tensors(r_run.paths.state_files()[K])
        theta, L = state["theta"], state["L"]
        S = task.constraint_states.shape[0]
        R = L.size // S
        pick = np.sort(np.random.default_rng(0).choice(S, size=min(full_states, S), replace=False))
        rows = (pick[:, None] * R + np.arange(R)[None, :]).reshape(-1)
        t1 = time.perf_counter()
        ver = verify_smoothness(task.problem, task.structure, theta, task.constraint_states[pick], L[rows], L[rows], radius, bound="full",
                                aggregation=task.rows, temperature=task.lse_temperature, seed=0)
        tf = time.perf_counter() - t1
        d = ver.to_dict()["per_row"]
        lines.append((f"full space, {pick.size} random states (lower: search on sampled rows; {tf:.0f} s)", _ratios(d["sound"], d["lower"])))
    print(f"  sound / lower ratio at θ_{sub['iteration']}, ball radius {radius:.4g} (subspace dimension {sub['region'].get('dim')}):")
    print(f"  {'':>72} {'':>12}{'p10':>9} {'p25':>9} {'median':>9} {'p75':>9} {'p90':>9} {'max':>9}")
    rows_csv = []
    for label, r in lines:
        print(f"  {label:>72} {_quantiles(r)}")
        if r.size:
            rows_csv.append({"bound": label, "rows": r.size, **{f"q{int(q * 100)}": float(np.quantile(r, q)) for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
                             "max": float(r.max())})
    print(f"  (target: subspace median ≤ 10×; counts {sub['counts']})")
    _write(out / "smoothness_demo_ratios.csv", rows_csv)


def part7(runs: list[Path]) -> None:
    import json

    print("\n== Part 7: certified-L training runs ==")
    print(f"{'run':>28} {'L mode':>9} {'iters':>5} {'acc':>4} {'imitation / backup':>18} {'rej. safety':>11} {'pred. fail':>10} "
          f"{'violating':>9} {'s/it':>7} {'L s/it':>7} {'radius':>7}")
    for run in runs:
        recs = [json.loads(line) for line in (run / "certificates.jsonl").read_text().splitlines() if line.strip()]
        if not recs:
            continue
        f0 = recs[0]["objective_before"]
        last = recs[-1]["objective"]
        acc = [r for r in recs if r["accepted"]]
        rad = recs[-1].get("L_radius", float("nan"))
        safety = str(sum(r["safety_rejections"] for r in recs)) if all("safety_rejections" in r for r in recs) else "-"
        print(f"{run.name:>28} {recs[-1].get('L_mode', '?'):>9} {len(recs):5d} {len(acc):4d} {last / f0:18.1%} "
              f"{safety:>11} {sum(r['prediction_failures'] for r in recs):10d} "
              f"{sum(bool(r['violation']) for r in recs):9d} {np.mean([r['wall_time_s'] for r in recs]):7.1f} "
              f"{np.mean([r.get('L_time_s', 0.0) for r in recs]):7.1f} {rad:7.3g}")
    print("  imitation / backup: f(θ_T) / f(θ_0) (θ_0 is the backup: zero final layer); target ≤ 75 %, zero rejections for safety "
          "('-': records written before the count existed)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (well under two minutes)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--parts", type=int, nargs="*", default=[1, 2, 3, 4, 5], choices=range(1, 8))
    ap.add_argument("--run", type=Path, default=None, help="Part 6: a 100-iteration demo run (default: train one into OUT/demo)")
    ap.add_argument("--full-states", type=int, default=64, help="Part 6: initial states of the full-space bound (0: skip)")
    ap.add_argument("--train-run", type=Path, nargs="*", default=[], help="Part 7: certified-L training runs")
    args = ap.parse_args(argv)
    _one_core()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for k, part in ((1, part1), (2, part2), (3, part3), (4, part4)):
        if k in args.parts:
            part(args.quick, args.out)
    if 5 in args.parts:
        part5()
    if 6 in args.parts:
        part6(args.run, args.full_states, args.out)
    if 7 in args.parts:
        part7(args.train_run)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s; CSV files in {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
