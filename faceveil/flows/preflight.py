"""What an anonymize run does in the caller's process before a Dask cluster or a Prefect API starts,
without importing Prefect, Dask or the tasks' Prefect wrappers: an old archive's state moved, the key
checked and the vault opened, the detector's derived weights built (prepare_run), and a run with
nothing new done right here (nothing_new). So `faceveil anonymize` on an unchanged archive never loads
Prefect or Dask; flows/launch.run_anonymize runs the same two steps before its flow."""

from __future__ import annotations

from datetime import datetime, timezone

from faceveil.config import AnonymizeConfig
from faceveil.flows.key_refs import resolve_key
from faceveil.pipeline.places import scratch, state_of
from faceveil.pipeline.sealed_index import index_view
from faceveil.storage.keys import MasterKey
from faceveil.tasks.detect import prepare_models
from faceveil.tasks.discover import discover
from faceveil.tasks.run import new_run_id, write_summary
from faceveil.tasks.validate import anonymize_report, report_and_log
from faceveil.tasks.vault_seals import RunKeys, open_vault, run_keys


def prepare_run(
    config: AnonymizeConfig, key: MasterKey | None = None, key_ref: dict | None = None
) -> tuple[AnonymizeConfig, RunKeys | None]:
    """(the run's config, its keys): an old archive's private files in DEST/_faceveil/ moved to the
    state root; the master key (`key`, or the reference `key_ref` resolved) turned into the run's keys;
    for a reversible run the vault checked (a wrong key, or a tampered keyinfo, stops here: before
    anything else is read or written); the index's template view; the derived weights built."""
    move_legacy_state(config)
    secret = run_keys(config, key if key_ref is None else resolve_key(key_ref))
    if config.sealed:
        config = open_vault(config, secret)
    if config.sealing.index:  # templates are embedded the way the archive's index already holds them
        config = config.for_run(template_view=index_view(state_of(config), secret.control))
    prepare_models(config)
    return config, secret


def nothing_new(config: AnonymizeConfig, keys=None) -> tuple[dict | None, list]:
    """(the summary of a run with nothing to do, or None when there is work; the media found). A run with
    nothing to do (every media finished with these settings, version and weights, unchanged) is done
    without starting a cluster or a Prefect server: a scheduled rerun of an unchanged archive takes
    seconds. It still proves what it did: the archive's contracts are checked (a broken one fails the
    run), the report written and the MLflow run logged."""
    if config.sealed:
        config = open_vault(config, keys)  # the key is still checked: a wrong one is refused
    started = datetime.now(timezone.utc)
    items, unsupported = discover(config)
    if not items or not all(i.done for i in items):
        return None, items
    summary = write_summary(config, new_run_id(), started, items, [], unsupported)
    report, contracts = anonymize_report(config, summary, [], scratch(config))
    report_and_log(
        state_of(config), report, contracts, config.tracking_uri, config.mlflow_artifacts
    )  # raises on a broken contract
    return summary | {
        "report": {
            "html": f"reports/{summary['run_id']}.html",
            "contracts": contracts.success,
            "mlflow": report.get("mlflow"),
            "privacy": report["privacy"],
            "utility": report["utility"],
            "nothing_new": True,
        }
    }, items


def local_workers(config: AnonymizeConfig, items: list | None) -> int:
    """How many workers the run's own local cluster starts: one per CPU (or --workers), but no more than
    the work found can use (each image to do is one task; a video's chunks and segments spread over all),
    so a run of one photo does not start and warm a worker that would wait. A Dask address: as given."""
    n = config.cluster.n_workers
    if config.cluster.dask_address or items is None:
        return n
    todo = _to_do(items)
    return n if any(i.kind == "video" for i in todo) else max(1, min(n, len(todo)))


def in_this_process(config: AnonymizeConfig, items: list | None) -> bool:
    """Whether the run's tasks run in this process, without a Dask cluster: with no cluster named
    (GPU workers need one) and at most one image to do (and no video). Its start (about 1 s here),
    its worker's imports (seconds of CPU) and the round trips would only slow that run down."""
    if config.cluster.dask_address or items is None:
        return False
    todo = _to_do(items)
    return len(todo) <= 1 and all(i.kind == "image" for i in todo)


def _to_do(items: list) -> list:
    """The media found that this run will process (not done, readable)."""
    return [i for i in items if not i.done and not i.error]


def move_legacy_state(config: AnonymizeConfig) -> None:
    """Moves an old archive's DEST/_faceveil/ to the run's state root (saying so on stderr)."""
    import sys

    from faceveil.storage.state import migrate

    if (moved := migrate(config.dest, config.state, config.storage_options)) is not None:
        print(f"faceveil: {moved}", file=sys.stderr)
