"""Certificate reports: files, summary.json, levels of evidence, the induction text, and the HTML
page loaded in headless Chromium (skipped with a reason where Chromium is absent).

References: counts and objectives against the run's own records; the improvement fraction
against the closed-form losses of ``regression_reference``; embedded figures against the PNG
files beside the page; levels against the claims the run recorded.
"""

import base64
import csv
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import scpo
from scpo.reports import build_report
from scpo.reports.collect import selected_rows
from scpo.runs import load_run
from scpo.tasks import RegressionConfig, regression_reference
from scpo.training import resolve_config, train

REG = {"hidden": [8], "n_train": 40, "n_grid": 60}
DI = {"grid": 12, "n_samples": 32, "hidden": [8]}
REQUIRED_SUMMARY = {"task", "iterations", "accepted", "rejected", "violations", "objective_initial", "objective_final",
                    "certificates", "scpo_version", "quality", "induction"}


@pytest.fixture(scope="module")
def reg_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "reg"
    cfg = resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 6, "log_every": 1, "certify": "grid"})
    train(cfg, out)
    return out, build_report(out)


@pytest.fixture(scope="module")
def di_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "di"
    cfg = resolve_config("double-integrator", task_overrides=DI, train_overrides={"iterations": 4, "certify": "grid"})
    train(cfg, out)
    return out, build_report(out)


@pytest.fixture(scope="module")
def sound_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "sound"
    cfg = resolve_config("regression", task_overrides=REG, projector_overrides={"lr": 0.05},
                         train_overrides={"iterations": 6, "certify": "sound"})
    train(cfg, out)
    return out, build_report(out)


def test_sound_run_states_the_induction_over_C_at_level_sound(sound_report):
    run_dir, res = sound_report
    s = json.loads((run_dir / "report" / "summary.json").read_text())
    ind = s["induction"]
    assert s["certify"] == "sound" and res.ok
    assert ind["level"] == "sound" and ind["holds"] and ind["weaker_links"] == []
    assert ind["statement"].startswith("for every x_0 ∈ C, every rollout of every iterate")
    links = {link["name"]: link["level"] for link in ind["links"]}
    assert links["region_chain"] == "sound" and links["base_case"] == "exact" and "steps" not in links
    md = (run_dir / "report" / "report.md").read_text()
    assert "C is the whole input interval [-3, 3]" in md and "not relied on" in md


def test_regression_report_files_and_summary(reg_report):
    run_dir, res = reg_report
    rep = run_dir / "report"
    for name in ("index.html", "report.md", "summary.json", "iterations.csv", "training_curves.png", "regression_fit.png"):
        assert (rep / name).is_file(), name
    assert res.ok
    s = json.loads((rep / "summary.json").read_text())
    assert REQUIRED_SUMMARY <= set(s)
    run = load_run(run_dir)
    recs = run.records
    assert s["task"] == "regression" and s["scpo_version"] == scpo.__version__
    assert s["iterations"] == len(recs) == 6
    assert s["accepted"] == sum(r["accepted"] for r in recs) and s["rejected"] == 6 - s["accepted"]
    assert s["violations"] == 0
    assert s["objective_initial"] == recs[0]["objective_before"] and s["objective_final"] == recs[-1]["objective"]
    # improvement fraction against the closed-form reference losses (DESIGN §5)
    ref = regression_reference(RegressionConfig(**{**REG, "hidden": tuple(REG["hidden"])}))
    f_last = run.task.objective(run.theta())
    assert s["improvement_fraction"] == pytest.approx((ref["f0"] - f_last) / (ref["f0"] - ref["f_star"]), rel=1e-12)
    levels = {c["name"]: (c["level"], c["holds"]) for c in s["certificates"]}
    assert levels["base_case"] == ("exact", True) and levels["steps"] == ("evaluated", True)
    assert s["induction"]["level"] == "evaluated" and s["induction"]["holds"] is True
    assert s["audit"]["verdict"] == "verified" and s["audit"]["ok"] is True
    with open(rep / "iterations.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == [r["iteration"] for r in recs]
    np.testing.assert_array_equal([float(r["max_constraint"]) for r in rows], [r["max_constraint"] for r in recs])


def test_html_is_self_contained_and_embeds_the_figures(di_report):
    _, res = di_report
    page = res.index_html.read_text()
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page), "a network reference"
    imgs = re.findall(r'<img src="data:image/png;base64,([^"]+)"[^>]*data-file="([^"]+)"', page)
    assert sorted(f for _, f in imgs) == sorted(p.name for p in res.figures) == ["reach_avoid_margins.png", "state_box.png", "training_curves.png"]
    for data, name in imgs:  # the embedded bytes are the PNG beside the page
        assert base64.b64decode(data) == (res.directory / name).read_bytes()
    md = res.markdown.read_text()
    for p in res.figures:
        assert f"]({p.name})" in md


def test_levels_are_shown_as_recorded_and_never_upgraded(di_report, tmp_path):
    run_dir, _ = di_report
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    last = load_run(run).records[-1]
    (run / "certificates" / f"region_iter_{last['iteration']:06d}.json").write_text(json.dumps({
        "schema_version": 1, "iteration": last["iteration"], "theta_sha256": last["theta_sha256"],
        "claims": [
            {"name": "region_safe", "statement": "every rollout from 90% of S stays safe", "level": "sound", "holds": False,
             "details": {"certified_fraction": 0.9}},
            {"name": "L_lower_bound", "statement": "L ≥ 3.1 observed", "level": "estimated", "holds": True, "details": {}},
        ]}))
    region_png = run / "figures" / f"region_iter_{last['iteration']:06d}.png"
    shutil.copyfile(run / "figures" / "state_box.png", region_png)  # stands in for the region command's figure
    res = build_report(run)
    assert (res.directory / region_png.name).read_bytes() == region_png.read_bytes()
    assert f'data-file="{region_png.name}"' in res.index_html.read_text()
    recorded = {c["name"]: c["level"] for c in json.loads((run / "base_certificate.json").read_text())["claims"]}
    recorded |= {c["name"]: c["level"] for c in json.loads((run / "certificates" / "final.json").read_text())["claims"]}
    recorded |= {"region_safe": "sound", "L_lower_bound": "estimated"}
    shown = {c["name"]: c["level"] for c in res.summary["certificates"]}
    for name, level in recorded.items():
        assert shown[name] == level, name
    # the verdict table row of each claim carries the same level badge
    page = res.index_html.read_text()
    table = re.search(r'<table id="verdicts">(.*?)</table>', page, re.S).group(1)
    for name, level in recorded.items():
        row = re.search(rf"<tr><td>{re.escape(name)}</td><td><span class=\"lv lv-(\w+)\"", table)
        assert row and row.group(1) == level, name
    # a sound region claim that does not hold does not upgrade (or break) the grid induction
    assert res.summary["induction"]["level"] == "evaluated" and res.summary["induction"]["holds"]
    assert not res.ok  # a required claim (region_safe) fails, so the report says so


def test_demo_style_report_states_the_induction_in_order(di_report):
    """The double-integrator report (what `scpo demo` trains) read as a reviewer would."""
    run_dir, res = di_report
    md = res.markdown.read_text()
    section = md.split("## The induction chain", 1)[1].split("\n## ", 1)[0]
    steps = [line for line in section.splitlines() if re.match(r"\d+\. ", line)]
    heads = ["Base case **[exact]** holds", "Backup certificate **[exact]**", "Induction step **[evaluated]** per iteration holds",
             "Region certificates **[sound]**", "Smoothness constants L", "Conclusion **[evaluated]** holds", "Independent audit"]
    assert len(steps) == len(heads)
    for line, head in zip(steps, heads):
        assert line[line.index(" ") + 1 :].startswith(head), (head, line[:80])
    run = load_run(run_dir)
    base = json.loads((run_dir / "base_certificate.json").read_text())
    assert base["theta_sha256"][:12] in steps[0] and "0 + 0 non-zero entries" in steps[0]
    for c in base["claims"]:
        if c["level"] == "exact" and c["name"] != "base_case":
            assert c["statement"] in steps[1]
    n, acc = len(run.records), sum(r["accepted"] for r in run.records)
    assert f"In this run: {n} iterations, {acc} accepted" in steps[2]
    assert run.records[-1]["theta_sha256"][:12] in steps[2]
    assert "Safety between grid points is **not claimed**" in steps[3]
    assert "reach-avoid **[evaluated]** holds" in steps[5] and "Not claimed" in steps[5]
    assert "verified" in steps[6]


def test_report_of_a_run_with_an_unsafe_accepted_iterate(reg_report, tmp_path):
    run_dir, _ = reg_report
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    recs = [json.loads(x) for x in (run / "certificates.jsonl").read_text().splitlines()]
    k = next(r["iteration"] for r in recs if r["accepted"])
    for r in recs:
        if r["iteration"] == k:
            r["max_constraint"], r["violation"] = 0.05, True
    (run / "certificates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = build_report(run)
    assert not res.ok  # the report is written and says what fails
    s = json.loads((run / "report" / "summary.json").read_text())
    assert s == res.summary
    assert s["violations"] == 1 and s["induction"]["holds"] is False
    assert next(c for c in s["certificates"] if c["name"] == "steps")["holds"] is False
    assert s["audit"]["verdict"] == "failed"  # the audit re-evaluates g at iteration k and disagrees with the record
    md = (run / "report" / "report.md").read_text()
    assert "**VIOLATION**" in md and "Conclusion **[evaluated]** **FAILS**" in md


def test_missing_run_directory_writes_nothing(tmp_path):
    from scpo.errors import RunDirectoryError

    with pytest.raises(RunDirectoryError, match="expected a run directory"):
        build_report(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


def test_long_runs_are_summarised(reg_report):
    run_dir, _ = reg_report
    base = load_run(run_dir).records
    rows, summarised = selected_rows([{**base[i % len(base)], "iteration": i + 1} for i in range(200)])
    its = [r["iteration"] for r in rows]
    assert summarised and its[:10] == list(range(1, 11)) and its[-10:] == list(range(191, 201))
    assert set(range(1, 201, 10)) <= set(its) and len(its) < 60
    short, cut = selected_rows(base)
    assert short == base and not cut


def test_the_task_speaks_for_itself(reg_report, di_report):
    """The task's own paragraphs and the meaning of g are on the page, for either task."""
    for run_dir, res in (reg_report, di_report):
        task = load_run(run_dir).task
        md = res.markdown.read_text()
        for paragraph in task.report_paragraphs():
            assert paragraph in md
        assert task.meaning_of_g() in md
        for line in task.quality_summary(task.quality(task.theta0), task.quality(load_run(run_dir).theta())):
            assert line in md


# ------------------------------------------------------------------------------- headless Chromium


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    return None


needs_chromium = pytest.mark.skipif(
    _chromium() is None,
    reason="headless Chromium not installed (.ci/run installs Debian's `chromium`; locally: apt-get install -y chromium)",
)


def load_in_chromium(page: Path, tmp_path: Path, timeout: float = 60.0) -> dict:
    """Open ``page`` in headless Chromium through the DevTools protocol over a pipe (no network,
    no extra package) and return console errors, exceptions, requests and image/table facts."""
    r_cmd, w_cmd = os.pipe()
    r_out, w_out = os.pipe()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
    with open(tmp_path / "chromium.log", "wb") as log:
        proc = subprocess.Popen(["bash", "-c", f'exec "$0" "$@" 3<&{r_cmd} 4>&{w_out}', *args], pass_fds=(r_cmd, w_out),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    os.close(r_cmd)
    os.close(w_out)
    buf, events, next_id = b"", [], [0]
    end = time.monotonic() + timeout

    def wait(pred):
        nonlocal buf
        while True:
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "method" in msg:
                    events.append(msg)
                if pred(msg):
                    return msg
            ready, _, _ = select.select([r_out], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(r_out, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            buf += chunk

    def send(method, params=None, session=None):
        next_id[0] += 1
        msg = {"id": next_id[0], "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(w_cmd, json.dumps(msg).encode() + b"\0")
        reply = wait(lambda m: m.get("id") == next_id[0])
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    try:
        pages = [t for t in send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        target = pages[0]["targetId"] if pages else send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            send(f"{domain}.enable", session=sid)
        send("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
        wait(lambda m: m.get("method") == "Page.loadEventFired")
        expr = (
            "Promise.all([...document.images].map(i => i.decode().then(() => ({file: i.dataset.file || i.src.slice(0, 60), "
            "w: i.naturalWidth, h: i.naturalHeight}), e => ({file: i.dataset.file || i.src.slice(0, 60), w: 0, h: 0, error: String(e)}))))"
            ".then(images => JSON.stringify({images, verdicts: [...document.querySelectorAll('#verdicts tbody tr')].map("
            "tr => [...tr.cells].map(td => td.textContent)), levels: [...document.querySelectorAll('#verdicts tbody tr td:nth-child(2) .lv')]"
            ".map(s => s.textContent)}))"
        )
        facts = json.loads(send("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                                session=sid)["result"]["value"])
        try:
            send("Browser.close")
        except (EOFError, TimeoutError, RuntimeError):
            pass
    finally:
        os.close(w_cmd)
        os.close(r_out)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    p = lambda e: e.get("params", {})  # noqa: E731
    facts["console_errors"] = [p(e) for e in events if e["method"] == "Runtime.consoleAPICalled" and p(e).get("type") in ("error", "assert")]
    facts["exceptions"] = [p(e) for e in events if e["method"] == "Runtime.exceptionThrown"]
    facts["log_errors"] = [p(e)["entry"] for e in events if e["method"] == "Log.entryAdded" and p(e)["entry"].get("level") == "error"]
    facts["requests"] = [p(e)["request"]["url"][:80] for e in events if e["method"] == "Network.requestWillBeSent"]
    facts["failed_requests"] = [p(e) for e in events if e["method"] == "Network.loadingFailed"]
    return facts


@needs_chromium
def test_html_report_opens_in_headless_chromium(di_report, tmp_path):
    _, res = di_report
    facts = load_in_chromium(res.index_html, tmp_path)
    assert facts["console_errors"] == [] and facts["exceptions"] == [] and facts["log_errors"] == [], facts
    assert facts["failed_requests"] == []
    assert all(u.startswith(("file:", "data:")) for u in facts["requests"]), facts["requests"]
    # every figure present and decoded: the pixel size of each image is that of its PNG file (IHDR)
    assert sorted(i["file"] for i in facts["images"]) == sorted(p.name for p in res.figures)
    for img in facts["images"]:
        ihdr = (res.directory / img["file"]).read_bytes()[16:24]
        assert (img["w"], img["h"]) == (int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:], "big")), img
    # the verdict table: one row per claim of summary.json plus one per audit check name
    s = res.summary
    n_audit = len(s["audit"]["counts"])
    assert len(facts["verdicts"]) == len(s["certificates"]) + n_audit
    assert set(facts["levels"]) <= {"exact", "sound", "evaluated", "estimated"} and len(facts["levels"]) == len(facts["verdicts"])
    by_name = {row[0]: row for row in facts["verdicts"]}
    assert by_name["base_case"][1:3] == ["exact", "holds"]
    assert by_name["reach_avoid"][1:3] == ["evaluated", "holds"]
    assert by_name["value_decrease"][2] == "holds (report only)"


@needs_chromium
def test_chromium_harness_detects_errors_and_broken_images(tmp_path):
    """Negative control: the harness must see a console error, an exception and a broken image."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><table id="verdicts"><tbody><tr><td>x</td></tr></tbody></table>'
                    '<img src="missing.png" data-file="missing.png"><script>console.error("boom"); undefined_fn();</script>'
                    "</body></html>")
    facts = load_in_chromium(page, tmp_path)
    assert any("boom" in json.dumps(e) for e in facts["console_errors"])
    assert facts["exceptions"] and "undefined_fn" in json.dumps(facts["exceptions"])
    assert facts["images"] == [{"file": "missing.png", "w": 0, "h": 0, "error": facts["images"][0]["error"]}]
    assert facts["failed_requests"] or facts["log_errors"]


def test_value_decrease_is_reported_not_required_and_other_certificates_are_a_table(reg_report, tmp_path):
    """issue 15, item 9: a failing region_value_decrease (whose statement says reach-avoid does not need
    it) does not fail the report; other certificate files are one readable row each, digests shortened."""
    run_dir, _ = reg_report
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    last = [json.loads(x) for x in (run / "certificates.jsonl").read_text().splitlines()][-1]
    cert = {
        "schema_version": 1, "kind": "scpo.region_certificate", "iteration": last["iteration"], "theta_sha256": last["theta_sha256"],
        "summary": {"boxes": 12, "certified_fraction": 1.0, "region_sha256": "c" * 64},
        "claims": [
            {"name": "region_reach_avoid", "statement": "every state of the boxes reaches X_f", "level": "sound", "holds": True, "details": {}},
            {"name": "region_value_decrease", "statement": "V decreases outside X_f (reported; the reach-avoid certificate does not need it)",
             "level": "sound", "holds": False, "details": {"boxes_without_certified_decrease": 3}},
        ],
    }
    (run / "certificates").mkdir(exist_ok=True)
    (run / "certificates" / "extra_iter.json").write_text(json.dumps(cert))
    res = build_report(run)
    assert res.ok, res.summary["certificates"]
    row = next(c for c in res.summary["certificates"] if c["name"] == "region_value_decrease")
    assert row["required"] is False and row["holds"] is False
    md = (run / "report" / "report.md").read_text()
    section = md.split("## Other certificates", 1)[1]
    assert "1 of 2 hold; fails: region_value_decrease (not required)" in section
    assert "c" * 64 not in section and "cccccccccccc…" in section and last["theta_sha256"][:12] + "…" in section
    assert " = " not in section.split("\n\n", 2)[1]  # no raw key = value wall
