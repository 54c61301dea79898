"""The flows Prefect deployments run (deployments/prefect.yaml): each takes the path of an archive's
config file (faceveil/config_file.py) and nothing secret. The key is named in the file's [key] table
and resolved here, in the flow run's own process (flows/key_refs.py); the anonymize run takes the
reference along and resolves it again itself. Composition only: the work is run_anonymize's,
run_restore's, the report's and the deep check's (ops/deep_check; it needs no key).
`scheduled_restore` is over 60 lines: the refusals before the key is read, the key, and the logged
restore, in this order in one place (as `faceveil restore`)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from faceveil.config_file import ConfigFile, ConfigFileError, load_config_file
from faceveil.flows.key_refs import describe, resolve_key, withholding


@flow(name="scheduled_anonymize", log_prints=False)
def scheduled_anonymize(config_path: str) -> dict:
    """Anonymizes the archive the config file names; incremental, as every run: only media that are
    new or changed (or whose settings changed) are done. Fails when a media failed or was withheld
    (as the command's exit status 1), after the summary and report are written."""
    from faceveil.flows.launch import run_anonymize
    from faceveil.storage.keys import VaultLock

    file = _load(config_path)
    log = get_run_logger()
    with withholding(file.key_ref):
        lock = None
        if file.needs_key:
            lock = VaultLock.of(_key(file))  # only the public part travels on (the flow parameter `config`)
        config = file.anonymize_config(vault_lock=lock)
        log.info("anonymizing %s -> %s (key: %s)", config.src, config.dest, describe(file.key_ref))
        summary = run_anonymize(config, key_ref=file.key_ref if file.needs_key else None)
    log.info(
        "%d of %d media anonymized (%d already done, %d failed), %.1f s; report %s/%s",
        summary["ok"],
        summary["media"],
        summary["already_done"],
        summary["failed"],
        summary["seconds"],
        config.state.rstrip("/"),
        summary["report"]["html"],
    )
    if summary["failed"]:
        why = "; ".join(f"{f['path']}: {f['reason']}" for f in summary["failures"][:5])
        raise RuntimeError(f"{summary['failed']} of {summary['media']} media failed or were withheld: {why}")
    return _public(summary)


@flow(name="scheduled_restore", log_prints=False)
def scheduled_restore(
    config_path: str,
    out: str,
    reason: str,
    tracks: list[str] | None = None,
    media: list[str] | None = None,
    restore_all: bool = False,
) -> dict:
    """Restores chosen faces of the archive the config file names into `out` (as `faceveil restore`),
    logged in the archive's access log before it acts, with `reason`. Only when the file's [restore]
    table allows it (deploy = true) and `out` lies inside one of its roots, apart from DEST and the
    state root: refused otherwise before the key is read, anything logged or written."""
    from faceveil.flows.restore import run_restore
    from faceveil.ops.logged import logged, restore_outcome
    from faceveil.storage.state import check_allowed_out, check_restore_out, find_state
    from faceveil.storage.vault import check_master
    from faceveil.tasks.restore_media import RestoreConfig

    file = _load(config_path)
    if not file.restore_deploy:
        raise ConfigFileError(
            f"{file.path}: restores by deployment are off for this archive "
            "([restore] deploy = true and roots = [...] turn them on)"
        )
    if not reason.strip():
        raise ValueError("a restore needs a reason (it is recorded in the access log)")
    dest = file.settings["dest"]
    check_allowed_out(out, file.restore_roots)
    archive = find_state(dest, file.settings.get("state"))
    check_restore_out(out, dest, archive.url)
    restore = RestoreConfig.of(
        dest,
        out,
        tracks=list(tracks or []),
        media=list(media or []),
        all=restore_all,
        workers=file.settings.get("workers"),
        dask_address=file.settings.get("dask_address"),
        state=archive.url,
        **{k: file.settings.get(k) for k in ("dask_tls_ca", "dask_tls_cert", "dask_tls_key")},
    )
    with withholding(file.key_ref):
        master = _key(file)
        check_master(archive, master)  # a wrong key is refused before anything is logged
        with logged(
            archive,
            master,
            "restore",
            reason,
            targets=restore.tracks,
            details={"out": out, "media": restore.media, "all": restore_all, "via": "prefect"},
        ) as outcome:
            report = run_restore(restore, master)
            restore_outcome(report, outcome)
    get_run_logger().info(
        "%d restored, %d partial, %d failed into %s: %s",
        report["ok"],
        report["partial"],
        report["failed"],
        out.rstrip("/"),
        archive.display(f"restore/{report['run_id']}.json"),
    )
    if outcome.error:
        raise RuntimeError(outcome.error)
    return {k: report[k] for k in ("run_id", "ok", "partial", "failed")}


@flow(name="scheduled_report", log_prints=False)
def scheduled_report(config_path: str, run: str | None = None) -> str:
    """Renders a run's report again (default: the latest run) from its stored report JSON."""
    from faceveil.storage.state import find_state
    from faceveil.validation.deep_check import report_rows
    from faceveil.validation.report import load_report, write_report

    file = _load(config_path)
    state = find_state(file.settings["dest"], file.settings.get("state"))
    report = load_report(state, run)
    report["deep_check"] = report_rows(state)  # the latest deep check (check-nightly), when there is one
    paths = write_report(state, report, latest=run is None)
    page = state.display(paths["html"])
    get_run_logger().info("report: %s", page)
    return page


@flow(name="scheduled_check", log_prints=False)
def scheduled_check(config_path: str, frames: int = 300) -> dict:
    """The deep leak check of the archive the config file names (as `faceveil check`): every published
    or released media whose output changed since its last check, `frames` frames each; results in the
    state root's checks/deep.parquet. Fails naming the media when a leak was found (now or before, in an
    output not changed since) or an output could not be checked."""
    from faceveil.ops.deep_check import line, run_check, total_line
    from faceveil.storage.paths import Location
    from faceveil.storage.state import find_state

    file = _load(config_path)
    log = get_run_logger()
    dest = file.settings["dest"]
    state = find_state(dest, file.settings.get("state"))
    result = run_check(Location(dest), state, frames, say=log.info)
    log.info("%s; %d checked now in %.1f s", total_line(result), result["checked"], result["seconds"])
    bad = [line(r) for r in result["rows"] if r["leaks"] or r.get("error")]
    if bad:
        raise RuntimeError(f"deep check: {len(bad)} media with a leak or not checked: " + "; ".join(bad[:5]))
    return {k: result[k] for k in ("media", "checked", "frames_checked", "faces_checked", "leaks", "upper_95")}


def _load(config_path: str) -> ConfigFile:
    if not config_path or "{{" in config_path:
        raise ConfigFileError(
            f"no config file given ({config_path!r}): deploy with FACEVEIL_CONFIG set, "
            "or `faceveil serve --config FILE`"
        )
    file = load_config_file(config_path)
    if not file.settings.get("dest"):
        raise ConfigFileError(f"{config_path}: 'dest' is not set")
    return file


def _key(file: ConfigFile):
    if file.key_ref is None:
        raise ConfigFileError(
            f"{file.path}: this run needs the key: name it in a [key] table "
            "(file = PATH, env = NAME or prefect_secret = BLOCK)"
        )
    return resolve_key(file.key_ref)


def _public(summary: dict) -> dict:
    """The summary less per-file lists (a flow run's result stays small)."""
    return {k: v for k, v in summary.items() if k not in ("outputs", "manifests", "settings")}
