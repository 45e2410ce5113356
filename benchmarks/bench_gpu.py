"""The CUDA paths measured against the CPU in one short run: rollouts, constraint rows, bounds, region, demo.

    python benchmarks/bench_gpu.py [--device cuda] [--parts rollout constraints bounds region demo] [--out bench-out]

Prepared for a session with a GPU (about 3 minutes there with ``--parts rollout constraints bounds
region``, plus two demo runs); where CUDA is unavailable it says so and prints the CPU figures
alone. ``--device cpu`` runs every comparison with the CPU standing in for the device (a check of
this script, not of a GPU).

Parts (float64 unless stated; the CPU side uses one torch thread):

* ``rollout``: 2,500 initial states × T = 50 through a 2-64-64-1 ``tanh`` residual and the LQR
  backup of the double integrator (:func:`scpo.systems.rollout`, as ``bench_double_integrator.py
  --part rollout``), float64 and float32; target **under 20 ms** on the GPU. Agreement: the
  float64 states within ``1e-10 (1 + |x|)`` of the CPU's.
* ``constraints``: ``g(θ)`` of the double-integrator task (50×50 grid, 266,070 rows per θ) for 16
  parameter vectors, with the task built on the device (``device="cuda"`` in its config).
  Agreement: ``|Δg| ≤ 1e-10 |g| + 1e-12`` (as ``tests/tasks/test_double_integrator.py``).
* ``bounds``: :func:`scpo.certify.bound_rollout` (IBP and CROWN) over the 1,470 boxes of the
  double integrator's current cover, on the device through :func:`scpo.certify.parallel.placement`
  (every tensor the bounds create is placed there). Agreement: every upper bound within
  ``1e-11 (1 + |b|)`` of the CPU's, a hundred times inside the margin (relative ``1e-9``), which is
  applied on the device exactly as on the CPU: float64 additions and multiplications are IEEE
  round-to-nearest on both, and the margin's rule covers any summation order. Soundness on the
  device: the rows of CPU rollouts from 64 random states of every box stay below the device's
  bounds.
* ``region``: the double integrator's region certificate (``min_width`` 0.01) with its bounding on
  the device (:func:`scpo.certify.parallel.rows_bounder` standing in for ``box_rows_upper``):
  time, and whether the certified and failed boxes are the CPU's.
* ``demo``: the sound-gated demo's run (``scpo train double-integrator``, 100 iterations, seed 0,
  as ``scpo demo``) with the task on the device (``--config`` with ``task_config.device``), wall
  time, final objective and violating iterates next to the CPU run.

Writes ``gpu.csv`` and prints one line per measurement.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

PARTS = ("rollout", "constraints", "bounds", "region", "demo")
ROWS: list[dict[str, Any]] = []
SIDES: list[tuple[str, str]] = [("cpu", "cpu")]
"""(side, device) pairs each part runs on: the CPU reference, then the device when there is one."""


def report(part: str, what: str, value: Any, unit: str = "", note: str = "") -> None:
    ROWS.append({"part": part, "what": what, "value": value, "unit": unit, "note": note})
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    print(f"  {part:<11} {what:<62} {shown:>12} {unit:<8} {note}", flush=True)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, device: str, repeats: int = 7) -> tuple[float, Any]:
    out = fn()  # warm-up (kernels, caches)
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def worst_relative(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a − b| / (1 + |b|)`` (NaN where the two disagree on NaN counts as infinite)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return float("inf")
    same_nan = np.isnan(a) == np.isnan(b)
    d = np.where(np.isnan(a) | np.isnan(b), 0.0, np.abs(a - b) / (1 + np.abs(b)))
    return float(d.max(initial=0.0)) if same_nan.all() else float("inf")


def verdict(ok: bool) -> str:
    return "ok" if ok else "FAILED"


# ----------------------------------------------------------------------------- parts
def part_rollout() -> None:
    import torch

    from scpo.systems import rollout
    from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask

    task = DoubleIntegratorTask(DoubleIntegratorConfig(hidden=(64, 64), horizon=50, n_samples=16), seed=0)
    rng = np.random.default_rng(0)
    theta = task.theta0 + 0.05 * rng.normal(size=task.dim)
    x0 = rng.uniform(-1, 1, size=(2500, 2))
    structure = task.structure
    states = {}
    for side, dev in SIDES:
        for dtype in (torch.float64, torch.float32):
            th = torch.as_tensor(theta[None], dtype=dtype, device=dev)
            xs = torch.as_tensor(x0, dtype=dtype, device=dev)
            K = torch.as_tensor(np.array(task.problem.K), dtype=dtype, device=dev)
            params = structure.unflatten(th)

            def pol(x, K=K, params=params):
                return x @ K.T + structure.forward_batched(params, x)

            with torch.no_grad():
                dt, ro = median_time(lambda: rollout(task.problem, pol, xs[None], 50), dev)
            name = str(dtype).replace("torch.", "")
            states[(side, name)] = ro.states.cpu().numpy()
            note = ("target < 20 ms: " + ("met" if dt < 0.020 else "NOT met")) if side == "device" else "1 thread"
            report("rollout", f"2500 states × T=50, 2-64-64-1 tanh, {name}, {dev}", 1e3 * dt, "ms", note)
    if len(SIDES) > 1:
        err = worst_relative(states[("device", "float64")], states[("cpu", "float64")])
        report("rollout", f"float64 states {SIDES[-1][1]} vs cpu: max |Δx| / (1 + |x|)", err, "", verdict(err <= 1e-10) + " (tolerance 1e-10)")


def part_constraints() -> None:
    from scpo.tasks import DoubleIntegratorConfig, DoubleIntegratorTask

    g, thetas = {}, None
    for side, dev in SIDES:
        task = DoubleIntegratorTask(DoubleIntegratorConfig(device=dev), seed=0)
        if thetas is None:
            thetas = task.theta0[None] + 0.05 * np.random.default_rng(1).standard_normal((16, task.dim))
        dt, g[side] = median_time(lambda: task.constraints(thetas), dev, repeats=3)
        report("constraints", f"g(θ) for 16 θ × {g[side].shape[1]} rows, {dev}", 1e3 * dt, "ms")
    if len(SIDES) > 1:
        a, b = g["device"], g["cpu"]
        ok = bool(np.all(np.abs(a - b) <= 1e-10 * np.abs(b) + 1e-12))
        report("constraints", f"{SIDES[-1][1]} vs cpu: max |Δg| / (1 + |g|)", worst_relative(a, b), "", verdict(ok) + " (|Δg| ≤ 1e-10|g| + 1e-12)")


def _region():
    import torch

    from scpo.certify import closed_loop, safety_region_cover
    from scpo.tasks import make_task

    torch.set_num_threads(1)
    task = make_task("double-integrator")
    grid, _ = task.safety_grid()
    lo, hi, info = safety_region_cover(task.problem, grid, task.safety_states)
    theta = task.theta0 + 0.02 * np.random.default_rng(0).standard_normal(task.dim)
    return task, closed_loop(task.problem, task.structure, theta), lo, hi, info


def part_bounds() -> None:
    import torch

    from scpo.certify import as_boxes, bound_rollout
    from scpo.certify.parallel import placement
    from scpo.systems import constraint_rows, rollout

    task, loop, lo, hi, _ = _region()
    p = task.problem
    T = p.horizon
    for method in ("ibp", "crown"):
        ub = {}
        for side, dev in SIDES:
            def run(dev=dev):
                with placement(1, dev):
                    return bound_rollout(loop, as_boxes(lo, hi), T, method=method, state_rows=p.Hx, input_rows=p.Hu, terminal_P=p.P)

            dt, rb = median_time(run, dev, repeats=3)
            ub[side] = np.concatenate([rb.state_rows.upper[:, 1:].reshape(len(lo), -1).cpu().numpy(),
                                      rb.input_rows.upper.reshape(len(lo), -1).cpu().numpy(), rb.terminal_upper.cpu().numpy()[:, None]], axis=1)
            report("bounds", f"bound_rollout {method}, {len(lo)} boxes, T={T}, {dev}", len(lo) / dt, "boxes/s", f"{dt:.3f} s")
        if len(SIDES) > 1:
            err = worst_relative(ub["device"], ub["cpu"])
            report("bounds", f"{method} upper bounds {SIDES[-1][1]} vs cpu: max |Δb| / (1 + |b|)", err, "", verdict(err <= 1e-11) + " (tolerance 1e-11)")
        # Soundness of the device's bounds: CPU rollouts from random states of each box stay below them.
        rng = np.random.default_rng(2)
        x0 = lo[:, None, :] + (hi - lo)[:, None, :] * rng.uniform(size=(len(lo), 64, p.n))
        with torch.no_grad():
            ro = rollout(p, loop.policy(), torch.as_tensor(x0.reshape(-1, p.n)), T)
            rows = constraint_rows(p, ro)[0].numpy().reshape(len(lo), 64, -1)
        sampled = np.concatenate([rows[..., :-1] + np.concatenate([np.tile(p.hx, T), np.tile(p.hu, T)]), rows[..., -1:] + p.gamma], axis=2)
        excess = float(np.max(sampled - ub[SIDES[-1][0]][:, None, :]))
        report("bounds", f"{method} on {SIDES[-1][1]}: max (sampled row − bound), 64 states per box", excess, "", verdict(excess <= 0) + " (sound: ≤ 0)")


def part_region() -> None:
    import torch

    from scpo.certify import RegionConfig, certify_boxes
    from scpo.certify import region as region_module
    from scpo.certify.parallel import rows_bounder

    task, loop, lo, hi, info = _region()
    cfg = RegionConfig(min_width=0.01, threads=1)
    original = region_module.box_rows_upper
    res = {}
    for side, dev in SIDES:
        region_module.box_rows_upper = rows_bounder(device=dev)
        try:
            t0 = time.perf_counter()
            res[side] = certify_boxes(loop, task.problem, lo, hi, cfg, region_info=info)
            dt = time.perf_counter() - t0
        except Exception as exc:  # the device path of box_rows_upper: say what stopped it
            report("region", f"region certificate, bounding on {dev}", "error", "", f"{type(exc).__name__}: {exc}"[:300])
            continue
        finally:
            region_module.box_rows_upper = original
        torch.set_num_threads(1)
        s = res[side].summary
        report("region", f"region certificate, bounding on {dev}: wall time", dt, "s",
               f"{100 * s['certified_fraction']:.3f}% certified, {s['failed_boxes']} failed, bounding {s['time_ibp_s'] + s['time_crown_s']:.2f} s")
    if "device" in res and "cpu" in res:
        a, b = res["device"], res["cpu"]
        same = (np.array_equal(a.certified_lower, b.certified_lower) and np.array_equal(a.failed_lower, b.failed_lower))
        report("region", f"certified and failed boxes on {SIDES[-1][1]} equal the cpu's", str(same), "", verdict(same))


def _train(device: str, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "scpo.cli", "train", "double-integrator", "--out", str(out), "--iterations", "100", "--seed", "0", "--quiet"]
    help_text = subprocess.run([sys.executable, "-m", "scpo.cli", "train", "--help"], capture_output=True, text=True).stdout
    if "--certify" in help_text:
        cmd += ["--certify", "sound"]
    if device != "cpu":
        cfg = out.parent / f"config-{device.replace(':', '-')}.json"
        cfg.write_text(json.dumps({"task_config": {"device": device}}))
        cmd += ["--config", str(cfg)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out_info: dict[str, Any] = {"wall": wall, "code": proc.returncode, "gated": "--certify" in cmd, "tail": (proc.stdout + proc.stderr)[-400:]}
    if proc.returncode == 0:
        from scpo.runs import load_run

        recs = load_run(out).records
        acc = [r for r in recs if r["accepted"]]
        out_info["objective"] = float(acc[-1]["objective"]) if acc else float("nan")
        out_info["violations"] = sum(1 for r in acc if not float(r["max_constraint"]) <= 0)
    return out_info


def part_demo() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for side, dev in SIDES:
            r = _train(dev, Path(tmp) / f"demo-{side}")
            gate = "sound gate" if r["gated"] else "no --certify option: grid rows only"
            if r["code"] != 0:
                report("demo", f"train double-integrator, 100 iterations ({gate}), {dev}", "error", "", f"exit {r['code']}: {r['tail']}")
                continue
            report("demo", f"train double-integrator, 100 iterations ({gate}), {dev}", r["wall"], "s",
                   f"final objective {r['objective']:.4f}, violating iterates {r['violations']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda, cuda:K, or cpu (a self-check); default cuda when available")
    ap.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    import torch

    from scpo.distributed import check_device

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device is None and device == "cpu":
        print(f"CUDA is unavailable here (torch {torch.__version__}, CUDA build {torch.version.cuda}, "
              "torch.cuda.is_available() False): CPU figures only; run this script on a machine with a GPU for the device figures")
    check_device(device)
    if device != "cpu" or args.device == "cpu":
        SIDES.append(("device", device))
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    print(f"device: {device} ({name}); CPU: {os.cpu_count()} cores, torch {torch.__version__}, 1 thread on the CPU side")
    for part in args.parts:
        print(f"\n== {part}")
        try:
            globals()[f"part_{part}"]()
        except Exception as exc:  # one broken part must not hide the others' figures
            traceback.print_exc()
            report(part, "part stopped", "error", "", f"{type(exc).__name__}: {exc}"[:300])
        torch.set_num_threads(1)
    failed = [r for r in ROWS if r["value"] == "error" or r["note"].startswith("FAILED")]
    with open(args.out / "gpu.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["part", "what", "value", "unit", "note"])
        w.writeheader()
        w.writerows(ROWS)
    print(f"\nwrote {args.out / 'gpu.csv'}; {len(failed)} check(s) failed or stopped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
