"""`restore_archive`: key check and track choice (in this process) -> per media, open the vault and
paste the chosen originals back (Dask) -> restore report. Keys and storage credentials never become
flow parameters."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from prefect import flow

from faceveil.flows.handover import handed_over, options_handed_over, take, with_options
from faceveil.flows.runtime import flow_runtime, preload_validation
from faceveil.storage.keys import MasterKey
from faceveil.tasks import wrappers as t
from faceveil.tasks.run import new_run_id
from faceveil.tasks.restore_media import RestoreConfig, RestoreJob, plan_restore


@flow(name="restore_archive", log_prints=False)
def restore_archive(
    config: RestoreConfig, jobs_token: str, key_fingerprint: str, options_token: str | None = None
) -> dict:
    config = with_options(config, options_token)
    jobs: list[RestoreJob] = take(jobs_token)
    run_id, started = new_run_id(), datetime.now(timezone.utc)
    preload_validation(config.state_location(), config.tracking_uri, config.mlflow_artifacts)
    futures = [t.restore_media_task.submit(config, job) for job in jobs]
    results = []
    for job, fut in zip(jobs, futures):
        try:
            results.append(fut.result())
        except Exception as e:  # recorded, never silently lost
            results.append({"path": job.rel, "status": "failed", "reason": f"internal error: {e!r}"})
    report = {
        "run_id": run_id,
        "archive": config.archive,
        "out": config.out,
        "key_fingerprint": key_fingerprint,
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "media": results,
        "ok": sum(r["status"] == "ok" for r in results),
        "partial": sum(r["status"] == "partial" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
    }
    report["started_at"], report["seconds"] = (
        started.isoformat(),
        (datetime.now(timezone.utc) - started).total_seconds(),
    )
    t.write_restore_report_task(config, run_id, json.dumps(report, indent=2))
    contracts = t.check_restore_task(results)
    run_report = t.restore_report_task(config, report, contracts)
    report["mlflow"] = t.report_and_log_task(
        config.state_location(), run_report, contracts, config.tracking_uri, config.mlflow_artifacts
    ).get("mlflow")
    return report


def run_restore(config: RestoreConfig, master: MasterKey) -> dict:
    """Checks the key and the choice, then runs the flow on a Dask cluster with a Prefect API."""
    jobs = plan_restore(config, master)
    if not jobs:
        raise ValueError(f"nothing to restore in {config.archive}")
    preload_validation(config.state_location(), config.tracking_uri, config.mlflow_artifacts)  # while the runtime boots
    with (
        handed_over(jobs) as token,
        options_handed_over(config) as (public, options),
        flow_runtime(
            min(config.cluster.n_workers, len(jobs)),
            config.cluster.threads_per_worker,
            config.cluster.dask_address,
            tls=config.cluster.dask_tls,
        ) as runner,
    ):
        return restore_archive.with_options(task_runner=runner)(public, token, master.fingerprint, options)
