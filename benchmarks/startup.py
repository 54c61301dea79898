"""Start-up and fixed costs of the `faceveil` command (issue 26 item 5, "fast start").

Wall time (and CPU time, steadier on a loaded machine), each as a subprocess of this venv's `faceveil` with
PREFECT_HOME in a temp folder (shared by the runs, as a user's would be) and no PREFECT_API_URL /
FACEVEIL_MLFLOW_URI, median of --runs interleaved rounds:
  help    `faceveil --help`
  photo   `faceveil anonymize SRC DEST --quiet`: one photo (skimage.data.astronaut) end to end, fresh DEST
          each round (so a new state root and MLflow store too)
  no-op   the same SRC and DEST again (nothing new)
Where the time goes:
  * from what each run leaves behind (no instrumentation): the summary's started_at / finished_at
    (DEST.faceveil-private/summary.json) and the MLflow run's start / end (mlflow/mlflow.db)
  * phases of one more photo run per round, this script's --probe: the same CLI in-process, with timers
    wrapped around flow_runtime (Prefect API server + Dask local cluster + worker warm-up), the flow body,
    its tasks, MLflow's store and logging, and the teardown
  * `python -X importtime`: what `import faceveil.cli`, `faceveil anonymize --help`,
    the no-op run and `import faceveil.flows.anonymize` import (top cumulative), and which heavy
    packages (torch, prefect, dask, mlflow, ...) each one loads
Targets: one photo <= 10 s, no-op <= 3 s. The machine may be loaded (other benchmarks on the same cores):
compare figures from one session only; --code BEFORE,AFTER measures two checkouts (git worktrees, each put
first on PYTHONPATH) in the same interleaved rounds.

    .venv/bin/python benchmarks/startup.py [--runs 3] [--top 12] [--no-probe] [--no-importtime] [--code DIR,DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BIN = Path(sys.executable).parent
HEAVY = (
    "torch",
    "prefect",
    "prefect_dask",
    "dask",
    "distributed",
    "mlflow",
    "lancedb",
    "great_expectations",
    "pandas",
    "pyarrow",
    "cv2",
    "onnxruntime",
    "openvino",
    "av",
    "scipy",
    "matplotlib",
    "sqlalchemy",
)


def env(prefect_home: str, code: str = "") -> dict:
    """The environment of a measured process: `code` (a checkout, e.g. a git worktree) first on PYTHONPATH."""
    e = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "FACEVEIL_MLFLOW_URI", "PYTHONPATH")}
    return {**e, "PREFECT_HOME": prefect_home, **({"PYTHONPATH": code} if code else {})}


def timed_run(cmd: list[str], prefect_home: str, code: str = "") -> tuple[float, float, float, float]:
    """(seconds, start, end, CPU seconds of it and every process it waited for: server, workers) of `cmd`
    as a subprocess (its output kept only when it fails). CPU time is the steadier figure on a loaded machine."""
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    p = subprocess.run(cmd, env=env(prefect_home, code), capture_output=True, text=True)
    t1, r1 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return t1 - t0, t0, t1, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def run_marks(dest: Path, t0: float, t1: float) -> dict[str, float]:
    """A finished run's own timestamps, as seconds from its process start `t0` to its end `t1`."""
    state = Path(f"{dest}.faceveil-private")
    summary = json.loads((state / "summary.json").read_text())
    started = datetime.fromisoformat(summary["started_at"]).timestamp()
    finished = datetime.fromisoformat(summary["finished_at"]).timestamp()
    with contextlib.closing(sqlite3.connect(state / "mlflow" / "mlflow.db")) as db:
        ms = db.execute("select start_time, end_time from runs where name = ?", (summary["run_id"],)).fetchone()
    m0, m1 = (ms[0] / 1000, ms[1] / 1000) if ms else (finished, finished)
    return {
        "start -> summary.started_at (imports, key, models; full run: + Prefect API, Dask cluster, warm-up)": started
        - t0,
        "summary.started_at -> finished_at (discover, work, summary)": finished - started,
        "summary -> MLflow run created (contracts, checks, MLflow store)": m0 - finished,
        "MLflow run (params, report, plots, artifacts)": m1 - m0,
        "MLflow run end -> exit (teardown: Prefect, Dask, process)": t1 - m1,
    }


def probe(out: str, argv: list[str]) -> None:
    """Runs the CLI in this process with timers around the phases; writes [(label, start, end)] to `out`."""
    start = time.time()
    events: list[tuple[str, float, float]] = []

    def wrap(owner, name, label):
        fn = getattr(owner, name)

        def timed(*a, **k):
            s = time.time()
            try:
                return fn(*a, **k)
            finally:
                lab = label(a) if callable(label) else label
                events.append((lab, s, time.time()))

        setattr(owner, name, timed)

    import importlib

    import faceveil.flows.anonymize as an
    from faceveil.flows import runtime
    from faceveil.tasks import wrappers as t
    from faceveil.validation import mlflow_log

    events.append(("python start + import faceveil.flows.anonymize (prefect, tasks)", start, time.time()))
    try:  # where the run's runtime is entered (flows/launch.py, or, before it, flows/anonymize.py)
        launch = importlib.import_module("faceveil.flows.launch")
    except ImportError:
        launch = an
    real_runtime = launch.flow_runtime

    @contextlib.contextmanager
    def flow_runtime(*a, **k):
        s = time.time()
        with real_runtime(*a, **k) as runner:
            events.append(("flow_runtime up: Prefect API + Dask cluster + warm-up (in parallel)", s, time.time()))
            yield runner
            s = time.time()
        events.append(("flow_runtime teardown (Prefect drain + stop, cluster close)", s, time.time()))

    launch.flow_runtime = flow_runtime
    try:  # where the CLI finds the steps before the flow (flows/preflight.py, or, before it, flows/anonymize.py)
        pre = importlib.import_module("faceveil.flows.preflight")
    except ImportError:
        pre = an
    for owner, name, label in [
        (pre, "nothing_new", "  nothing-new check (discover)"),
        (pre if hasattr(pre, "prepare_models") else t, "prepare_models", "  prepare models"),
        (runtime.LocalPrefectServer, "wait_ready", "  Prefect API server boot (wait_ready)"),
        (runtime, "local_cluster", "  Dask local cluster start"),
        (
            runtime,
            "_quietly",
            lambda a: (
                "  workers warm-up (imports, models; in this process for one photo)"
                if getattr(a[0], "__name__", getattr(getattr(a[0], "func", None), "__name__", ""))
                in ("run", "warm_worker")
                else "  Dask cluster close"
            ),
        ),
        (runtime, "_drain_prefect", "  Prefect events/logs drain"),
        (runtime.LocalPrefectServer, "stop", "  Prefect server stop"),
        (an, "_anonymize", "flow body (_anonymize)"),
        (an, "_process", "  media work (_process)"),
        (t, "write_summary_task", "  write-summary task"),
        (t, "anonymize_report_task", "  anonymize-report task (contracts, checks)"),
        (t, "report_and_log_task", "  report-and-log task"),
        (mlflow_log, "open_store", "  MLflow store open/create (also preloaded in a thread)"),
        (mlflow_log, "log_run", "  MLflow log_run (report, plots, artifacts)"),
    ]:
        wrap(owner, name, label)
    from faceveil.cli import main

    rc = main(argv)
    Path(out).write_text(json.dumps(events))
    sys.stdout.flush()
    os._exit(rc)


def importtime(args: list[str], prefect_home: str, code: str) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, name with its nesting) of every import `python -X importtime ARGS` makes."""
    p = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", *args], env=env(prefect_home, code), capture_output=True, text=True
    )
    rows = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            s, c, name = line[len("import time:") :].split("|", 2)
            rows.append((int(s), int(c), name.rstrip()))
    return rows


def show_imports(title: str, rows, top: int) -> None:
    names = {n.strip() for _, _, n in rows}
    heavy = [h for h in HEAVY if h in names]
    total = sum(s for s, _, _ in rows) / 1e6
    print(f"\n{title}: {len(rows)} modules, {total:.2f} s of imports; heavy: {', '.join(heavy) or 'none'}")
    for _, c, name in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"  {c / 1e6:7.2f} s  {name}")


def table(title: str, per_round: list[dict[str, float]]) -> None:
    print(f"\n{title} (median s over {len(per_round)} runs)")
    for k in per_round[0]:
        print(f"  {statistics.median(r.get(k, 0.0) for r in per_round):7.2f}  {k}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument(
        "--code",
        default="",
        help="checkouts to compare (DIR,DIR: e.g. git worktrees before and after a "
        "change), each put first on PYTHONPATH, measured in the same interleaved rounds; default: the installed one",
    )
    ap.add_argument("--no-probe", action="store_true", help="skip the instrumented photo run of each round")
    ap.add_argument("--no-importtime", action="store_true")
    args = ap.parse_args()
    import cv2
    import skimage.data

    faceveil = str(BIN / "faceveil")
    trees = [str(Path(c).resolve()) for c in args.code.split(",") if c] or [""]
    root = Path(tempfile.mkdtemp(prefix="faceveil-startup-"))
    home = str(root / "prefect-home")
    (src := root / "src").mkdir()
    cv2.imwrite(
        str(src / "astronaut.jpg"),
        cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 95],
    )
    print(
        f"faceveil start-up benchmark in {root}; NOTE: the machine may be loaded (shared cores), so figures are "
        f"medians of {args.runs} interleaved rounds; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    times = {c: {"help": [], "photo": [], "no-op": []} for c in trees}
    marks = {c: {"photo": [], "no-op": []} for c in trees}
    phases: dict[str, list[dict[str, float]]] = {c: [] for c in trees}
    for i in range(args.runs):
        for n, code in enumerate(trees):
            secs, _, _, cpu = timed_run([faceveil, "--help"], home, code)
            times[code]["help"].append((secs, cpu))
            dest = root / f"dest{i}-{n}"
            cmd = [faceveil, "anonymize", str(src), str(dest), "--quiet"]
            for what in ("photo", "no-op"):
                secs, t0, t1, cpu = timed_run(cmd, home, code)
                times[code][what].append((secs, cpu))
                marks[code][what].append(run_marks(dest, t0, t1))
            if not args.no_probe:
                out = root / f"probe{i}-{n}.json"
                t0 = time.time()
                timed_run(
                    [
                        sys.executable,
                        __file__,
                        "--probe",
                        str(out),
                        "anonymize",
                        str(src),
                        str(root / f"probe{i}-{n}"),
                        "--quiet",
                    ],
                    home,
                    code,
                )
                row: dict[str, float] = {}
                for label, s, e in json.loads(out.read_text()):
                    row[label] = row.get(label, 0.0) + e - s  # a phase run more than once: its calls summed
                    row[f"{label} @"] = min(row.get(f"{label} @", 1e9), s - t0)
                phases[code].append(row)
            last = ", ".join(f"{k} {v[-1][0]:.2f} s (CPU {v[-1][1]:.1f} s)" for k, v in times[code].items())
            print(f"round {i + 1} {code or 'installed'}: {last}, load {os.getloadavg()[0]:.1f}", flush=True)
    for code in trees:
        report(code, times[code], marks[code], phases[code])
        if not args.no_importtime:
            dest = str(root / f"dest0-{trees.index(code)}")
            for title, a in (
                ("import faceveil.cli", ["-c", "import faceveil.cli"]),
                ("faceveil anonymize --help", ["-m", "faceveil.cli", "anonymize", "--help"]),
                (
                    "faceveil anonymize, no-op run (its main process)",
                    ["-m", "faceveil.cli", "anonymize", str(src), dest, "--quiet"],
                ),
                ("import faceveil.flows.anonymize (a run with work)", ["-c", "import faceveil.flows.anonymize"]),
            ):
                show_imports(title, importtime(a, home, code), args.top)
    shutil.rmtree(root, ignore_errors=True)


def report(code: str, times: dict, marks: dict, phases: list[dict]) -> None:
    med = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    print(
        f"\n=== code: {code or 'installed'}\n{'command':<42}{'median s':>9}  {'runs (s)':<20}{'CPU s':>6}  {'target':<10}result"
    )
    for what, cmd, target in (
        ("help", "faceveil --help", None),
        ("photo", "faceveil anonymize (1 photo, new DEST)", 10.0),
        ("no-op", "faceveil anonymize (same, nothing new)", 3.0),
    ):
        runs = ", ".join(f"{w:.1f}" for w, _ in times[what])
        cpu = statistics.median(c for _, c in times[what])
        verdict = "-" if target is None else ("met" if med[what] <= target else f"MISSED by {med[what] - target:.1f} s")
        print(
            f"{cmd:<42}{med[what]:>9.2f}  {runs:<20}{cpu:>6.1f}  {'<= %g s' % target if target else '-':<10}{verdict}"
        )
    table("photo run, from its own timestamps", marks["photo"])
    table("no-op run, from its own timestamps", marks["no-op"])
    if phases:
        labels = [k for k in phases[0] if not k.endswith(" @")]
        print(
            f"\nphases of an instrumented photo run (--probe; median over {len(phases)} runs; indented: inside the line above; "
            "the Prefect server boots while the cluster starts)\n  {:>7}  {:>7}".format("from s", "took s")
        )
        for k in sorted(labels, key=lambda k: statistics.median(r.get(f"{k} @", 0) for r in phases)):
            at = statistics.median(r.get(f"{k} @", 0) for r in phases)
            print(f"  {at:7.2f}  {statistics.median(r.get(k, 0) for r in phases):7.2f}  {k}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--probe":
        probe(sys.argv[2], sys.argv[3:])
    else:
        main()
