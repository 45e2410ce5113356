"""Methods on the same tasks and the same budget of constraint evaluations: what SCPO costs and buys.

    python benchmarks/bench_methods.py [--quick] [--seeds 0 1 2 3 4] [--out bench-out]
        [--tasks regression double-integrator] [--methods scpo plain-bank ...]
        [--budget-regression 3000] [--budget-double-integrator 450]
        [--workers N | --ray-address ADDRESS]

Methods (every one starts from the task's θ₀, the zero-final-layer residual, i.e. the backup):

* ``scpo``: the projector with the task's defaults (block-gradient probes, bank 16, Adam);
* ``scpo-sound``: the same with the sound gate (``certify="sound"``: every iterate certified on the region C);
* ``scpo-certified-L``: the projector with ``L_mode="subspace"``: every iteration sets ``L`` to the
  sound curvature bound on the bank's span over the ball of radius ``CERTIFIED_RADIUS[task]``
  (the step is kept in it), so (★) is a sound bound; its ``rejected for safety`` column must be 0.
  It costs one subspace certificate per iteration (about 20–40 s on the double integrator on one
  loaded core), so it is the slowest method here by far;
* ``plain-bank``: the paper's bank of raw steps (``block_probes=0, probe_radius=None``);
* ``unconstrained``: the same Adam raw steps, always taken (``projection=False``);
* ``penalty``: augmented Lagrangian (PHR), Adam with the same learning rate, constraint
  gradients by the zeroth-order two-point estimator (same information as SCPO);
* ``penalty-autograd``: the same with exact constraint gradients by automatic differentiation
  (a *stronger oracle* than the other methods get; reported separately);
* ``lbsgd``: LB-SGD (Usmanova et al., JMLR 2024) with zeroth-order constraint gradients.

Every method runs until it has evaluated ``g`` at ``budget`` parameter vectors (the last
iteration may overshoot by its own cost) or hits ``max_iterations``. Per run the script records
the final objective, the accepted iterates that violate on the training grid, the same on a 4×
finer grid (nested: it contains the training grid, so iterates that already violate on the
training grid are counted without re-evaluation; the others are evaluated there; for the final
iterate also the number of violated fine rows and the backup's slack at the worst one), and the
constraint evaluations and wall time needed to reach 90 % of the run's own final improvement
``f₀ − f_final`` (left empty when that improvement is below 1 % of ``f₀``).
Wall times exclude the fine-grid checks.

Every (task, method, seed) is an independent unit (:func:`run_unit`). With ``--workers N`` (a
local Ray instance with N CPUs) or ``--ray-address`` (a cluster) the units run as Ray tasks
through :func:`scpo.distributed.map_tasks` (needs ``pip install -e ".[ray]"``); the rows are
merged in the in-process order and every number except the wall times is the in-process run's
(units running side by side share the cores, so their wall times are not one core's).

Writes ``methods_runs.csv`` (one row per task, method and seed), ``methods_summary.csv``
(median and [min, max] over seeds) and ``methods.png`` (objective and max g on the training
grid against constraint evaluations), and prints the summary table.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("scpo", "scpo-sound", "scpo-certified-L", "plain-bank", "unconstrained", "penalty", "penalty-autograd", "lbsgd")
TASKS = ("regression", "double-integrator")

PROJECTOR_VARIANTS = {
    "scpo": {},
    "scpo-sound": {},
    "scpo-certified-L": {"L_mode": "subspace"},  # certified_radius per task: CERTIFIED_RADIUS
    "plain-bank": {"block_probes": 0, "probe_radius": None},
    "unconstrained": {"projection": False},
}

# Budgets of constraint evaluations (full runs): about 330 SCPO iterations on the regression
# task and 50 on the double integrator (SCPO spends about 9 evaluations per iteration), enough for
# SCPO to pass 90 % of its improvement on both while keeping the 5-seed run under an hour on 2 cores.
BUDGETS = {"regression": 3000, "double-integrator": 450}
# Radius of the ball of the certified subspace L (scpo-certified-L): the cap of every step and
# offset. 0.03 on the double integrator is the step length adaptive SCPO takes in its first
# iterations (0.03–0.05 on seed 0); 0.05 on the regression task.
CERTIFIED_RADIUS = {"regression": 0.05, "double-integrator": 0.03}
QUICK_BUDGETS = {"regression": 270, "double-integrator": 45}
MAX_ITERATIONS = {"regression": 20000, "double-integrator": 4000}
# Below this relative improvement a run has no "time to 90 % of its improvement" (it is noise).
MIN_IMPROVEMENT = 0.01

# LB-SGD constants per task. L is a Lipschitz constant of every constraint row: the largest
# row-gradient norm measured by autograd at θ₀ and at a random point 0.05 away was 3.5 and 4.5
# (regression) and 2.5 (double integrator, 60 states of S), rounded up to 5. M (constraint
# smoothness) is SCPO's starting L. η₀ and M₀ were picked on the held-out seed 100 at a budget of
# 300 LB-SGD iterations: on the regression task η₀ ∈ {1e-2, 1e-3, 1e-4, 1e-5, 1e-6} gave 1 %, 8 %,
# 15 %, 44 % and 49 % of the achievable improvement (M₀ ∈ {1, 10} made no difference: the safe
# step bound was the binding one); on the double integrator every η₀ tried (1e-3, 1e-5) left the
# objective unchanged (a slack of 1.6e-4 at θ₀ caps the step near 1e-5).
LBSGD_SETTINGS = {
    "regression": dict(eta=1e-5, eta_decay=0.5, stage_iterations=200, M0=1.0, M=1.0, lipschitz=5.0, nu=1e-4),
    "double-integrator": dict(eta=1e-5, eta_decay=0.5, stage_iterations=50, M0=1.0, M=1.0, lipschitz=5.0, nu=1e-5),
}
# Augmented Lagrangian with a fixed ρ and multiplier updates every 50 iterations. Picked on the
# held-out seed 100 with the autograd oracle (regression budget 2,700, double integrator 270)
# as the lowest final objective among settings whose final iterate was feasible: growing ρ
# (×2 at each update while the violation did not fall 4×) made the objective jump back up
# (regression: final 1.16 with growth vs 0.17 without, at ρ₀ = 1; the quadratic penalty was no
# better); ρ = 1 on the regression task, ρ = 10 on the double integrator (ρ = 1 ended infeasible there).
PENALTY_SETTINGS = {
    "regression": dict(method="augmented-lagrangian", rho=1.0, rho_growth=1.0, update_every=50, n_directions=8, nu=1e-4),
    "double-integrator": dict(method="augmented-lagrangian", rho=10.0, rho_growth=1.0, update_every=50, n_directions=8, nu=1e-5),
}


# ---------------------------------------------------------------------------------------- tasks
def fine_task_config(task_name: str, task_config: dict[str, Any]) -> dict[str, Any]:
    """Task settings of the nested grid with 4× finer spacing (every row aggregated by its maximum)."""
    if task_name == "regression":
        return {**task_config, "n_grid": 4 * (task_config["n_grid"] - 1) + 1}
    return {**task_config, "grid": 4 * (task_config["grid"] - 1) + 1, "rows": "max"}


def differentiable_constraints(task):
    """``θ (d,) tensor -> g(θ) (N,) tensor`` built from the task's public protocol (its rollout, its
    rows and their aggregation), checked against ``task.constraints``."""
    import torch

    from scpo.systems import aggregate_rows

    def fn(theta):
        rows = task.rollout_rows(task.rollout(theta[None], task.constraint_states))
        return aggregate_rows(rows, task.rows, task.lse_temperature)[0]

    probe = task.theta0 + 1e-2 * np.random.default_rng(0).standard_normal(task.dim)
    with torch.no_grad():
        mine = fn(torch.as_tensor(probe)).cpu().numpy()
    theirs = task.constraints(probe[None])[0]
    if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=1e-10, atol=1e-12):
        raise RuntimeError(f"differentiable constraints of {task.name!r} disagree with task.constraints; update this benchmark")
    return fn


def build_method(name: str, task_name: str, seed: int, *, task_overrides=None, projector_overrides=None):
    """The task and a method object with ``step()``, ``theta``, ``evaluations``, ``objective_value``."""
    from scpo.baselines import LBSGD, LBSGDConfig, Penalty, PenaltyConfig
    from scpo.tasks import make_task
    from scpo.training import build_projector, resolve_config

    from scpo.training import setup_task

    proj = {**PROJECTOR_VARIANTS.get(name, {}), **(projector_overrides or {})}
    if name == "scpo-certified-L":
        proj.setdefault("certified_radius", CERTIFIED_RADIUS[task_name])
    certify = "sound" if name == "scpo-sound" else "grid"
    cfg = resolve_config(task_name, task_overrides=task_overrides or {}, projector_overrides=proj,
                         train_overrides={"seed": seed, "certify": certify})
    cfg, task, gate = setup_task(cfg)
    if name in PROJECTOR_VARIANTS:
        return task, cfg, build_projector(task, cfg.projector, task.theta0, gate=gate)
    common = dict(theta0=task.theta0, objective=task.objective, objective_and_grad=task.objective_and_grad,
                  constraints=task.constraints)
    if name in ("penalty", "penalty-autograd"):
        pc = PenaltyConfig(**PENALTY_SETTINGS[task_name], gradient="autograd" if name == "penalty-autograd" else "zeroth-order",
                           lr=cfg.projector.lr, direction=cfg.projector.direction, seed=seed)
        diff = differentiable_constraints(task) if name == "penalty-autograd" else None
        return task, cfg, Penalty(**common, config=pc, differentiable_constraints=diff)
    if name == "lbsgd":
        return task, cfg, LBSGD(**common, config=LBSGDConfig(**LBSGD_SETTINGS[task_name], seed=seed))
    raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {name!r}")


# ---------------------------------------------------------------------------------------- runs
@dataclass
class FineChecker:
    """Evaluates parameter vectors on a finer grid (max over rows ≤ 0 is safe), in batches."""

    task: Any
    nested: bool
    batch: int = 16
    cache: dict = field(default_factory=dict)

    def max_constraint(self, thetas: np.ndarray) -> np.ndarray:
        out = []
        for k in range(0, thetas.shape[0], self.batch):
            out.append(np.max(self.task.constraints(thetas[k:k + self.batch]), axis=1))
        return np.concatenate(out) if out else np.zeros(0)

    def diagnose(self, theta: np.ndarray) -> dict[str, Any]:
        """Fine-grid rows violated at ``theta`` and the backup's slack at the worst one.

        The backup (``θ₀``, zero final layer, the same policy for every seed) satisfies every
        fine row; a small slack there means the violation is at a state where the backup itself
        is nearly active.
        """
        if "g0" not in self.cache:
            self.cache["g0"] = self.task.constraints(self.task.theta0[None])[0]
        g = self.task.constraints(theta[None])[0]
        worst = int(np.argmax(np.where(np.isnan(g), np.inf, g)))
        return {
            "final_fine_violating_rows": int(np.sum(~(g <= 0))),
            "final_fine_max_g": float(g[worst]),
            "final_fine_worst_row_backup_slack": float(-self.cache["g0"][worst]),
        }


_FINE_TASKS: dict[tuple, Any] = {}


def fine_checker(task_name: str, task_config: dict[str, Any], *, config: dict[str, Any] | None = None, nested: bool = True) -> FineChecker:
    """A cached checker on ``fine_task_config`` (or on ``config`` when given)."""
    from scpo.tasks import make_task

    cfg = config if config is not None else fine_task_config(task_name, task_config)
    cfg = {k: (0.0 if k == "row_margin" else False if k == "rows_in_region" else v) if v is None else v for k, v in cfg.items()}
    key = (task_name, tuple(sorted((k, str(v)) for k, v in cfg.items())))
    if key not in _FINE_TASKS:
        _FINE_TASKS[key] = make_task(task_name, cfg, seed=0)
    return FineChecker(_FINE_TASKS[key], nested=nested, batch=64 if task_name == "regression" else 8)


def _violates(v: float) -> bool:
    return not v <= 0  # NaN counts as a violation


def run_method(task_name: str, method: str, seed: int, budget: int, *, max_iterations: int, checker: FineChecker | None,
               task_overrides=None, projector_overrides=None, label: str | None = None) -> dict[str, Any]:
    """Run one method on one task and seed until the evaluation budget is spent; return the row and curves."""
    task, cfg, m = build_method(method, task_name, seed, task_overrides=task_overrides, projector_overrides=projector_overrides)
    f0 = m.objective_value
    curve_evals, curve_wall, curve_f, curve_g = [m.evaluations], [0.0], [f0], [float(np.max(m.g))]
    accepted_thetas, accepted_iters, accepted_train_bad = [], [], []
    it = accepted = rejected = violations = 0
    first_violation = None
    wall = eval_s = grad_s = proj_s = 0.0
    prediction_failures = safety_rejections = 0
    rows_added = gate_rejections = 0
    gate_s = 0.0
    best_feasible = f0 if not _violates(float(np.max(m.g))) else math.inf
    reasons: dict[str, int] = {}
    while m.evaluations < budget and it < max_iterations:
        t0 = time.perf_counter()
        rec = m.step()
        wall += time.perf_counter() - t0
        it += 1
        eval_s += rec.evaluation_time_s
        grad_s += rec.gradient_time_s
        proj_s += rec.solve_time_s + rec.setup_time_s
        prediction_failures += getattr(rec, "prediction_failures", 0)
        safety_rejections += getattr(rec, "safety_rejections", 0)
        rows_added += getattr(rec, "rows_added", 0)
        gate_rejections += getattr(rec, "gate_rejections", 0)
        gate_s += getattr(rec, "gate_time_s", 0.0)
        reasons[rec.reason] = reasons.get(rec.reason, 0) + 1
        if rec.accepted:
            accepted += 1
            bad = _violates(rec.max_constraint)
            if bad:
                violations += 1
                first_violation = first_violation or it
            elif rec.objective < best_feasible:
                best_feasible = rec.objective
            if checker is not None:
                accepted_thetas.append(m.theta)
                accepted_iters.append(it)
                accepted_train_bad.append(bad)
        else:
            rejected += 1
        curve_evals.append(m.evaluations)
        curve_wall.append(wall)
        curve_f.append(rec.objective)
        curve_g.append(rec.max_constraint)
        if getattr(m, "stopped", None):
            break

    f_final = m.objective_value
    evals90 = wall90 = None
    if f0 - f_final > MIN_IMPROVEMENT * abs(f0):
        target = f_final + 0.1 * (f0 - f_final)
        for e, w, f in zip(curve_evals, curve_wall, curve_f):
            if f <= target:
                evals90, wall90 = e, w
                break

    fine_bad = fine_checked = 0
    fine_first = None
    fine_worst = -math.inf
    if checker is not None and accepted_thetas:
        bad_train = np.array(accepted_train_bad)
        todo = np.flatnonzero(~bad_train) if checker.nested else np.arange(len(accepted_thetas))
        worst = np.full(len(accepted_thetas), np.nan)
        if todo.size:
            worst[todo] = checker.max_constraint(np.stack([accepted_thetas[k] for k in todo]))
        fine_checked = int(todo.size)
        bad_fine = np.where(np.isnan(worst), bad_train, ~(worst <= 0)) if checker.nested else ~(worst <= 0)
        fine_bad = int(np.sum(bad_fine))
        if fine_bad:
            fine_first = accepted_iters[int(np.flatnonzero(bad_fine)[0])]
        finite = worst[np.isfinite(worst)]
        fine_worst = float(np.max(finite)) if finite.size else -math.inf

    diagnosis = checker.diagnose(m.theta) if checker is not None else {}
    quality = task.quality(m.theta)
    qkey = "improvement_fraction" if "improvement_fraction" in quality else "imitation_loss_ratio"
    row = {
        "task": task_name,
        "method": label or method,
        "seed": seed,
        "d": task.dim,
        "N": int(np.asarray(m.g).size),
        "budget": budget,
        "iterations": it,
        "accepted": accepted,
        "rejected": rejected,
        "evaluations": m.evaluations,
        "objective_initial": f0,
        "objective_final": f_final,
        "quality": quality[qkey],
        "quality_name": qkey,
        "best_feasible_objective": best_feasible,
        "final_feasible": not _violates(float(np.max(m.g))),
        "violating_iterates_train": violations,
        "first_violation_train": first_violation,
        "violating_iterates_fine": fine_bad if checker is not None else None,
        "fine_checked_iterates": fine_checked if checker is not None else None,
        "first_violation_fine": fine_first,
        "max_g_fine_train_feasible_iterates": fine_worst if checker is not None else None,
        **diagnosis,
        "evaluations_to_90pct": evals90,
        "wall_s_to_90pct": wall90,
        "wall_s": wall,
        "evaluation_s": eval_s,
        "gradient_s": grad_s,
        "projection_s": proj_s,
        "prediction_failures": prediction_failures,
        "safety_rejections": safety_rejections,
        "rows_added": rows_added,
        "gate_rejections": gate_rejections,
        "gate_s": gate_s,
        "ms_per_iteration": 1e3 * wall / max(it, 1),
        "stop_reason": getattr(m, "stopped", None) or ("budget" if m.evaluations >= budget else "max_iterations"),
        "step_reasons": ";".join(f"{k}:{v}" for k, v in sorted(reasons.items())),
        "L_max_final": float(np.max(m.L)) if hasattr(m, "L") and getattr(m, "L") is not None and np.ndim(m.L) else None,
        "curve": (np.array(curve_evals), np.array(curve_wall), np.array(curve_f), np.array(curve_g)),
    }
    return row


# ---------------------------------------------------------------------------------------- output
def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows without their curves; columns in first-seen order."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k != "curve" and k not in fields]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the finite values (NaN when none)."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return (math.nan, math.nan, math.nan)
    return (statistics.median(v), min(v), max(v))


def summarise(rows: list[dict[str, Any]], keys=("task", "method")) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        s = dict(zip(keys, key))
        s["seeds"] = len(rs)
        for col in ("objective_final", "quality", "best_feasible_objective", "evaluations_to_90pct", "wall_s_to_90pct", "wall_s",
                    "iterations", "evaluations", "ms_per_iteration", "rows_added", "gate_rejections"):
            med, lo, hi = spread([r[col] for r in rs])
            s[f"{col}_median"], s[f"{col}_min"], s[f"{col}_max"] = med, lo, hi
        s["violating_iterates_train_total"] = sum(r["violating_iterates_train"] for r in rs)
        s["safety_rejections_total"] = sum(r.get("safety_rejections", 0) for r in rs)
        s["runs_violating_train"] = sum(r["violating_iterates_train"] > 0 for r in rs)
        fine = [r["violating_iterates_fine"] for r in rs if r["violating_iterates_fine"] is not None]
        s["violating_iterates_fine_total"] = sum(fine) if fine else None
        s["runs_violating_fine"] = sum(v > 0 for v in fine) if fine else None
        s["runs_reaching_90pct"] = sum(r["evaluations_to_90pct"] is not None for r in rs)
        out.append(s)
    return out


def fmt(med: float, lo: float, hi: float, spec: str = ".4f") -> str:
    if not math.isfinite(med):
        return "-"
    if lo == hi:
        return f"{med:{spec}}"
    return f"{med:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def print_summary(summary: list[dict[str, Any]]) -> None:
    head = (f"{'task':>17} {'method':>16} {'final objective':>28} {'quality':>24} {'viol. train':>11} {'viol. fine':>10} "
            f"{'evals→90%':>22} {'wall→90%':>20} {'iters':>16} {'ms/it':>16} {'rows added':>14} {'rej. safety':>11}")
    print(head)
    for s in summary:
        fine = "-" if s["violating_iterates_fine_total"] is None else f"{s['violating_iterates_fine_total']} ({s['runs_violating_fine']})"
        print(
            f"{s['task']:>17} {s['method']:>16} "
            f"{fmt(s['objective_final_median'], s['objective_final_min'], s['objective_final_max']):>28} "
            f"{fmt(s['quality_median'], s['quality_min'], s['quality_max'], '.3f'):>24} "
            f"{str(s['violating_iterates_train_total']) + ' (' + str(s['runs_violating_train']) + ')':>11} {fine:>10} "
            f"{fmt(s['evaluations_to_90pct_median'], s['evaluations_to_90pct_min'], s['evaluations_to_90pct_max'], '.0f'):>22} "
            f"{fmt(s['wall_s_to_90pct_median'], s['wall_s_to_90pct_min'], s['wall_s_to_90pct_max'], '.1f'):>20} "
            f"{fmt(s['iterations_median'], s['iterations_min'], s['iterations_max'], '.0f'):>16} "
            f"{fmt(s['ms_per_iteration_median'], s['ms_per_iteration_min'], s['ms_per_iteration_max'], '.0f'):>16} "
            f"{fmt(s['rows_added_median'], s['rows_added_min'], s['rows_added_max'], '.0f'):>14} "
            f"{s['safety_rejections_total']:>11}",
            flush=True,
        )
    print("viol. train / fine: accepted iterates with max g > 0 summed over seeds (runs with any); "
          "→90%: to 90 % of the run's own final improvement, median [min, max] over runs that got there; "
          "rej. safety: candidates rejected because an evaluated row was > 0, summed over seeds (0 by the theorem for scpo-certified-L)")


COLORS = {"scpo": "tab:blue", "scpo-sound": "navy", "scpo-certified-L": "tab:cyan", "plain-bank": "tab:orange", "unconstrained": "tab:red",
          "penalty": "tab:purple", "penalty-autograd": "tab:pink", "lbsgd": "tab:green"}


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig = Figure(figsize=(6.5 * len(tasks), 7.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(tasks), squeeze=False)
    for j, task in enumerate(tasks):
        seen = set()
        for r in rows:
            if r["task"] != task:
                continue
            e, _, f, g = r["curve"]
            c = COLORS.get(r["method"], None)
            lab = None if r["method"] in seen else r["method"]
            seen.add(r["method"])
            axes[0, j].plot(e, f, color=c, alpha=0.7, lw=1, label=lab)
            axes[1, j].plot(e, g, color=c, alpha=0.7, lw=1)
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"{task}: objective")
        axes[1, j].axhline(0.0, color="k", lw=0.8)
        axes[1, j].set_yscale("symlog", linthresh=1e-3)
        axes[1, j].set_title(f"{task}: max g on the training grid (> 0 violates)")
        axes[1, j].set_xlabel("constraint evaluations")
        axes[0, j].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def setup(out: Path) -> None:
    quiet()
    out.mkdir(parents=True, exist_ok=True)


def quiet() -> None:
    """One torch thread and no warnings: the settings every unit runs with (in this process or a Ray worker)."""
    import torch

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)


def run_unit(unit: tuple[str, str, int, int, bool]) -> dict[str, Any]:
    """One (task, method, seed, budget, fine-grid check) unit: the row of :func:`run_method` (a Ray task's function)."""
    task_name, method, seed, budget, fine = unit
    from scpo.training import resolve_config

    quiet()
    base = resolve_config(task_name).task_config
    extra = {"rows_in_region": True} if method == "scpo-sound" and "rows_in_region" in base else {}
    # the sound method certifies the declared region C: its finer grid is the finer grid of S inside C
    checker = fine_checker(task_name, {**base, **extra}) if fine else None
    return run_method(task_name, method, seed, budget, max_iterations=MAX_ITERATIONS[task_name], checker=checker)


def print_unit(_index: int, r: dict[str, Any]) -> None:
    print(f"{r['task']:>17} {r['method']:>16} seed {r['seed']}: f {r['objective_final']:.4f}  viol. train {r['violating_iterates_train']}"
          f"  fine {r['violating_iterates_fine']}  iters {r['iterations']}  evals {r['evaluations']}  {r['wall_s']:.1f}s"
          f"  ({r['stop_reason']})", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets and one seed (a smoke test, not results)")
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="default: 0 1 2 3 4 (quick: 0)")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=METHODS)
    ap.add_argument("--budget-regression", type=int, default=None)
    ap.add_argument("--budget-double-integrator", type=int, default=None)
    ap.add_argument("--no-fine", action="store_true", help="skip the 4× finer grid check")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--workers", type=int, default=None, help="run the units as Ray tasks on a local instance with N CPUs")
    ap.add_argument("--ray-address", default=None, help="run the units as Ray tasks on this Ray cluster")
    args = ap.parse_args(argv)
    setup(args.out)
    seeds = args.seeds if args.seeds else ([0] if args.quick else [0, 1, 2, 3, 4])
    budgets = dict(QUICK_BUDGETS if args.quick else BUDGETS)
    if args.budget_regression:
        budgets["regression"] = args.budget_regression
    if args.budget_double_integrator:
        budgets["double-integrator"] = args.budget_double_integrator
    from scpo.distributed import map_tasks

    units = [(task_name, method, seed, budgets[task_name], not args.no_fine)
             for task_name in args.tasks for method in args.methods for seed in seeds]
    rows = map_tasks(run_unit, units, workers=args.workers, ray_address=args.ray_address, on_result=print_unit)
    summary = summarise(rows)
    print()
    print_summary(summary)
    write_csv(args.out / "methods_runs.csv", rows)
    write_csv(args.out / "methods_summary.csv", summary)
    plot_curves(rows, args.out / "methods.png",
                f"same budget of g evaluations ({', '.join(f'{k}: {v}' for k, v in budgets.items() if k in args.tasks)})\n"
                f"seeds {', '.join(map(str, seeds))}")
    print(f"wrote {args.out / 'methods_runs.csv'}, {args.out / 'methods_summary.csv'} and {args.out / 'methods.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
