"""Dense, independent checks of sound-gated runs (issue 12's acceptance figures).

    OMP_NUM_THREADS=1 python benchmarks/check_sound_runs.py [--regression RUN] [--demo RUN] [--out bench-out]
    OMP_NUM_THREADS=1 python benchmarks/check_sound_runs.py --nd RUN [--samples 100000] [--stride 10]

Without ``--regression`` / ``--demo`` it first trains them with the defaults (``--certify auto``,
i.e. sound): ``scpo train regression --iterations 1000 --seed 0`` and the demo (double integrator,
100 iterations, seed 0).

The checks use their own code, not scpo's rollout or row builder: the flat ``θ`` of each saved
checkpoint (``theta_NNNNNN.safetensors`` read with ``safetensors.numpy``) is unflattened by hand
(per layer ``W`` (out × in) row-major, then ``b``; ``tanh`` between layers) and evaluated in
numpy float64.

* Regression: ``max |f_θ(x)|`` on 100,000 evenly spaced points of ``[−3, 3]``, for every saved
  iterate; must be ``≤ 1``. Quality: the run's final improvement fraction (must be ≥ 95 %).
* Double integrator: a 200×200 grid over the bounding box of ``C`` (the declared region, read from
  the run's first region certificate), the states inside ``C`` kept; from each, ``T = 30`` steps of
  ``x⁺ = A x + B (K x + φ_θ(x))``; every state row ``H_x x_t ≤ h_x`` (``t = 1…T``), input row
  ``H_u u_t ≤ h_u`` (``t = 0…T−1``) and the terminal ``x_Tᵀ P x_T ≤ γ``, with tolerance 1e-9, for
  every saved iterate. Also: ``C``'s area against the backup's exact 30-step BRS, the share of
  accepted iterates with a holding region certificate, and the final imitation ratio (≤ 60 %).

* Any sound run of a linear task in ``n`` dimensions (``--nd RUN``, e.g. the cart-pole): the same
  closed loop and rows from ``--samples`` states drawn uniformly in ``C`` (rejection from its
  bounding box, seed 0), for every ``--stride``-th saved iterate and the last one.

Prints a table per run and writes ``sound_runs.json`` (``sound_nd.json`` with ``--nd``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from scpo.runs import load_run
from scpo.training import resolve_config, train


def _flat_theta(path: Path, names: list[str]) -> np.ndarray:
    t = load_file(str(path))
    return np.concatenate([np.asarray(t[n], dtype=np.float64).ravel() for n in names])


def _mlp(theta: np.ndarray, shapes: list[tuple[int, int]], x: np.ndarray) -> np.ndarray:
    h, k = x, 0
    for j, (o, i) in enumerate(shapes):
        W = theta[k : k + o * i].reshape(o, i)
        k += o * i
        b = theta[k : k + o]
        k += o
        h = h @ W.T + b
        if j < len(shapes) - 1:
            h = np.tanh(h)
    if k != theta.size:
        raise SystemExit(f"θ has {theta.size} entries, the layer shapes {shapes} use {k}")
    return h


def _saved(run) -> list[tuple[int, Path]]:
    return sorted((it, run.paths.checkpoint(it)) for it in run.checkpoints)


def check_regression(run_dir: Path) -> dict:
    run = load_run(run_dir)
    shapes = list(run.task.structure.shapes)
    names = list(run.parameter_names)
    x = np.linspace(-3.0, 3.0, 100_000)[:, None]
    worst = []
    for it, path in _saved(run):
        f = _mlp(_flat_theta(path, names), shapes, x)[:, 0]
        worst.append((it, float(np.max(np.abs(f)))))
    last = run.records[-1]
    q = run.task.quality(run.theta(max(run.checkpoints)))
    out = {"run": str(run_dir), "saved_iterates": len(worst), "max_abs_f": max(w for _, w in worst),
           "iterates_over_1": sum(w > 1.0 for _, w in worst), "improvement_fraction": q["improvement_fraction"],
           "iterations": int(last["iteration"]), "accepted": sum(bool(r["accepted"]) for r in run.records)}
    print(f"regression {run_dir}: {out['saved_iterates']} saved iterates, max |f| on 100,000 points {out['max_abs_f']:.6f} "
          f"({out['iterates_over_1']} iterates over 1), improvement closed {100 * out['improvement_fraction']:.1f} %")
    return out


def _loop_arrays(run) -> dict:
    pb = run.task.problem
    sysm = pb.system
    out = {k: np.asarray(v, dtype=float) for k, v in (("A", sysm.A), ("B", sysm.B), ("K", pb.K), ("Hx", sysm.Hx), ("hx", sysm.hx),
                                                     ("Hu", sysm.Hu), ("hu", sysm.hu), ("P", pb.P))}
    out.update(gamma=float(pb.gamma), T=int(pb.horizon))
    return out


def _declared_region(run, run_dir: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    region_files = sorted(run.paths.certificates.glob("region_iter_*.json"))
    if not region_files:
        raise SystemExit(f"{run_dir}: no region certificates (was the run trained with --certify sound?)")
    reg = json.loads(region_files[0].read_text())["region"]
    return reg, np.asarray(reg["H"], dtype=float), np.asarray(reg["h"], dtype=float)


def _margins(run, X: np.ndarray, iterates: list[tuple[int, Path]]) -> list[tuple[int, float, float]]:
    """Per iterate: the largest state/input row and the largest terminal ``x_TᵀPx_T − γ`` over the states ``X``."""
    m = _loop_arrays(run)
    shapes = list(run.task.structure.shapes)
    names = list(run.parameter_names)
    per = []
    for it, path in iterates:
        th = _flat_theta(path, names)
        x = X.copy()
        worst = -np.inf
        for _ in range(m["T"]):
            u = x @ m["K"].T + _mlp(th, shapes, x)
            worst = max(worst, float(np.max(u @ m["Hu"].T - m["hu"])))
            x = x @ m["A"].T + u @ m["B"].T
            worst = max(worst, float(np.max(x @ m["Hx"].T - m["hx"])))
        per.append((it, worst, float(np.max(np.einsum("si,ij,sj->s", x, m["P"], x) - m["gamma"]))))
    return per


def _bounding_box(H: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.optimize import linprog

    n = H.shape[1]
    lo, hi = np.empty(n), np.empty(n)
    for i in range(n):
        for sgn, out in ((1.0, lo), (-1.0, hi)):
            c = np.zeros(n)
            c[i] = sgn
            r = linprog(c, A_ub=H, b_ub=h, bounds=[(None, None)] * n, method="highs")
            if r.status != 0:
                raise SystemExit(f"bounding box of C: LP status {r.status} ({r.message})")
            out[i] = sgn * r.fun
    return lo, hi


def _summary(run, run_dir: Path, reg: dict, X: np.ndarray, per: list[tuple[int, float, float]]) -> tuple[dict, int, list, int]:
    """The figures both closed-loop checks report (violations at tolerance 1e-9, certificates, imitation)."""
    recs = [r for r in run.records if r.get("accepted")]
    holding = sum(bool(r.get("region_holds")) for r in recs)
    q = run.task.quality(run.theta(max(run.checkpoints)))
    bad = sum(w > 1e-9 or tm > 1e-9 for _, w, tm in per)
    out = {"run": str(run_dir), "states_in_C": int(len(X)), "violating_iterates": bad, "worst_row": max(w for _, w, _ in per),
           "worst_terminal": max(tm for *_, tm in per), "accepted": len(recs), "accepted_with_holding_certificate": holding,
           "C_volume": reg.get("volume"), "imitation_ratio": q.get("imitation_loss_ratio")}
    return out, holding, recs, bad


def check_nd(run_dir: Path, samples: int = 100_000, stride: int = 10) -> dict:
    """Random states of C, every ``stride``-th saved iterate and the last (see the module docstring)."""
    run = load_run(run_dir)
    task = run.task
    reg, H, h = _declared_region(run, run_dir)
    lo, hi = _bounding_box(H, h)
    rng = np.random.default_rng(0)
    X = np.zeros((0, H.shape[1]))
    while len(X) < samples:
        Y = rng.uniform(lo, hi, size=(4 * samples, H.shape[1]))
        X = np.concatenate([X, Y[np.all(Y @ H.T <= h, axis=1)]])[:samples]
    saved = _saved(run)
    chosen = saved[::stride] + ([saved[-1]] if (len(saved) - 1) % stride else [])
    t0 = time.perf_counter()
    per = _margins(run, X, chosen)
    out, holding, recs, bad = _summary(run, run_dir, reg, X, per)
    out.update(n=int(H.shape[1]), checked_iterates=[it for it, *_ in per], time_s=time.perf_counter() - t0)
    print(f"{task.name} (n = {out['n']}) {run_dir}: {len(X)} random states of C, {len(per)} of {len(saved)} saved iterates checked "
          f"(every {stride}th and the last), {bad} violating (tolerance 1e-9); worst state/input row {out['worst_row']:.3e}, "
          f"worst terminal {out['worst_terminal']:.3e}; {holding}/{len(recs)} accepted iterates with a holding region certificate; "
          f"imitation ratio {out['imitation_ratio']:.4f}; {out['time_s']:.0f} s")
    return out


def check_double_integrator(run_dir: Path) -> dict:
    run = load_run(run_dir)
    reg, H, h = _declared_region(run, run_dir)
    lo, hi = _bounding_box(H, h)
    g = [np.linspace(lo[i], hi[i], 200) for i in range(2)]
    X = np.stack(np.meshgrid(*g, indexing="ij"), -1).reshape(-1, 2)
    X = X[np.all(X @ H.T <= h, axis=1)]
    per = _margins(run, X, _saved(run))
    out, holding, recs, bad = _summary(run, run_dir, reg, X, per)
    out.update(saved_iterates=len(per), C_share_of_backup_brs=reg["details"].get("share_of_backup_set"))
    q = {"imitation_loss_ratio": out["imitation_ratio"]}
    print(f"double integrator {run_dir}: {len(X)} states of C (200×200 grid), {len(per)} saved iterates, "
          f"{bad} violating (tolerance 1e-9); worst state/input row {out['worst_row']:.3e}, worst terminal {out['worst_terminal']:.3e}; "
          f"{holding}/{len(recs)} accepted iterates with a holding region certificate; C = {out['C_share_of_backup_brs']:.3f} of the "
          f"backup's BRS by area; imitation ratio {q['imitation_loss_ratio']:.3f}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regression", type=Path)
    ap.add_argument("--demo", type=Path)
    ap.add_argument("--nd", type=Path, help="a sound run of a linear task in any dimension: random states of C")
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--stride", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.nd is not None:
        res = check_nd(args.nd, args.samples, args.stride)
        (args.out / "sound_nd.json").write_text(json.dumps(res, indent=2))
        return 0 if res["violating_iterates"] == 0 else 1
    results = {}
    for name, given, task, its in (("regression", args.regression, "regression", 1000), ("demo", args.demo, "double-integrator", 100)):
        run_dir = given
        if run_dir is None:
            run_dir = args.out / f"sound-{name}"
            t0 = time.perf_counter()
            train(resolve_config(task, train_overrides={"iterations": its, "seed": 0}), run_dir)
            print(f"trained {run_dir} in {time.perf_counter() - t0:.0f} s", flush=True)
        results[name] = (check_regression if name == "regression" else check_double_integrator)(run_dir)
    (args.out / "sound_runs.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
