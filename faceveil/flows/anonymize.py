"""`anonymize_archive`: discover -> plan -> per chunk detect (Dask) -> per media track (-> pulse), anonymize,
encode, check (leak gate) -> media that leaked once more, denser and with the gate's detectors -> index -> run summary -> contracts,
report, MLflow. Composition only. `_process` is longer than 60 lines: one loop over the futures as
they complete (plan, detect, track, encode, join) reads best whole."""

from __future__ import annotations

import contextlib
import functools
import shutil
from datetime import datetime, timezone

from prefect import flow, get_client
from prefect.exceptions import UnfinishedRun
from prefect.futures import as_completed

from faceveil import progress
from faceveil.config import AnonymizeConfig
from faceveil.flows.handover import take, with_options
from faceveil.flows.key_refs import resolve_key
from faceveil.flows.runtime import preload_validation
from faceveil.tasks import wrappers as t
from faceveil.tasks.run import new_run_id
from faceveil.pipeline.places import run_scratch, scratch, state_of
from faceveil.pipeline.jobs import MediaItem, MediaResult, VideoPlan
from faceveil.tasks.plan import segments_of


@flow(name="anonymize_archive", log_prints=False)
def anonymize_archive(
    config: AnonymizeConfig,
    run_id: str | None = None,
    index_token: str | None = None,
    options_token: str | None = None,
    key_ref: dict | None = None,
    people_token: str | None = None,
) -> dict:
    """A reversible run's key comes as `key_ref`, a reference ({"file": PATH}, {"env": NAME} or
    {"prefect_secret": BLOCK}) resolved here, in the flow's own process, or, derived (RunKeys), from a
    caller in this process by `index_token` (run_anonymize): never as a parameter's value.
    `people_token`: the surrogates of people seen in several photos ({rel: [(box, Surrogate)]}, from
    publish_dataset)."""
    config = with_options(config, options_token)
    index_keys = _run_keys(config, index_token, key_ref)  # a wrong key stops the run here
    run_id = run_id or new_run_id()
    config = config.changed(scratch_dir=run_scratch(config, run_id))  # the run's own scratch (0700)
    try:
        return _anonymize(config, run_id, index_keys, take(people_token) if people_token else {})
    finally:  # whatever a crashed task left there (each task removes its own files on the way out)
        shutil.rmtree(config.cluster.scratch_dir, ignore_errors=True)
        t.remove_segments(config, run_id)


def _run_keys(config: AnonymizeConfig, index_token: str | None, key_ref: dict | None):
    """A reversible run's keys (tasks/vault_seals.RunKeys), from the key `key_ref` names or handed
    over under `index_token`; None without either (a throwaway key: nothing is signed or indexed)."""
    if not config.sealed:
        return None
    if key_ref is not None:
        return t.run_keys(config, resolve_key(key_ref))
    return take(index_token) if index_token else None


def _anonymize(config: AnonymizeConfig, run_id: str, index_keys, people: dict) -> dict:
    started = datetime.now(timezone.utc)
    bars = progress.current()
    if config.sealed:
        config = t.open_vault(config, index_keys)  # a wrong key stops the run here, before anything is written
    preload_validation(state_of(config), config.tracking_uri, config.mlflow_artifacts)
    items, unsupported = t.discover_task(config)
    if index_keys is not None:  # forgotten people stay forgotten: their places travel with their media
        t.mark_forgotten(config, items, index_keys)
    todo = [i for i in items if not i.done]
    bars.start(len(todo))
    kept: dict[str, list] = {}  # the first pass's detections of the media that leaked
    results = _process(config, todo, run_id, bars, people, keep=kept if config.run_recheck else None)
    leaked = {r.row["rel_path"] for r in results if r.row["status"] == "leaked"}
    if leaked and config.run_recheck:  # once more, denser, before the leak gate's verdict stands
        bars.more(len(leaked))
        families = tuple(sorted({f for r in results if r.row["status"] == "leaked" for f in r.leak_families}))
        again_config = config.for_run(second_pass=families or True)
        again = _process(
            again_config,
            [i for i in todo if i.rel in leaked],
            run_id,
            bars,
            people,
            known=kept if _finds_alike(config, again_config) else None,
        )
        redone = {r.row["rel_path"]: r for r in again}
        results = [redone.get(r.row["rel_path"], r) for r in results]
    for chunks in kept.values():
        for chunk in chunks:
            _release(chunk)
    bars.close()
    if index_keys is not None:  # the vault's key parts sealed and the templates protected here, in this process
        t.seal_vault_parts(config, results, index_keys)
        if config.sealing.index:
            t.index_archive(config, results, index_keys)
    summary = t.write_summary_task(config, run_id, started, items, results, unsupported)
    report, contracts = t.anonymize_report_task(config, summary, results, scratch(config))
    t.report_and_log_task(state_of(config), report, contracts, config.tracking_uri, config.mlflow_artifacts)
    return summary | {
        "report": {
            "html": f"reports/{run_id}.html",
            "contracts": contracts.success,
            "mlflow": report.get("mlflow"),
            "privacy": report["privacy"],
            "utility": report["utility"],
        }
    }


def _finds_alike(a: AnonymizeConfig, b: AnonymizeConfig) -> bool:
    """Whether two runs' detection finds the same faces on a frame (same detectors and settings)."""
    look = lambda s: (s.detector, s.detector_settings, s.second_look, s.extra_detectors)  # noqa: E731
    return look(a.settings) == look(b.settings)


def _process(
    config: AnonymizeConfig,
    todo: list[MediaItem],
    run_id: str,
    bars,
    people: dict,
    keep: dict | None = None,
    known: dict | None = None,
) -> list[MediaResult]:
    """plan -> detect chunks -> track -> finish, per media, on the workers; bad input is recorded and
    the archive goes on. Every task of a video is submitted at once (tracks and segments as futures:
    a segment starts the moment its tracks exist, on whichever worker is free, with no round trip
    through this process). Each future is handed back to Dask once what it gave was used (`_release`),
    so a worker lost mid-run costs only the work in flight: Dask reruns a finished task whose result
    died with a worker as long as a client holds its future (a video's chunks and tracks are held
    until its finish is in), and a finished media would be encoded, written and recorded again beside
    the rest of the run (or after it). `keep`: where the detections of the videos that leaked go
    (rel -> chunk futures, for the caller to release) instead of being released; `known`: such
    detections, reused by this pass's detect-chunk tasks."""
    results: list[MediaResult] = []
    finishing, chunk_of, held, joins_of, chunks_of = {}, {}, {}, {}, {}
    gpu = functools.partial(gpu_tasks, config)
    plans = {i.rel: t.plan_video_task.submit(config, i) for i in todo if i.kind == "video" and not i.error}
    for item in todo:
        if item.error:
            results.append(t.record_failure_task(config, item, run_id, item.error))
            bars.media_done(item.rel, False)
            continue
        if item.kind == "image":
            with gpu():
                finishing[t.anonymize_image_task.submit(config, item, run_id, people.get(item.rel))] = item
            continue
        try:
            plan = _take(plans.pop(item.rel))
        except Exception as e:  # crashed for good (KilledWorker: workers died under it again and again)
            plan = VideoPlan(error=f"internal error: {e!r}")
        if plan.error:
            results.append(t.record_failure_task(config, item, run_id, plan.error))
            bars.media_done(item.rel, False)
            continue
        bars.media_started(item.rel, plan.info.n_frames)
        before = (known or {}).get(item.rel) or []
        before = before if len(before) == len(plan.chunks) else [None] * len(plan.chunks)
        with gpu():
            detections = [
                t.detect_chunk_task.submit(config, item, plan.info, c, b) for c, b in zip(plan.chunks, before)
            ]
        chunk_of.update({f: (item.rel, c.stop - c.start) for f, c in zip(detections, plan.chunks)})
        tracked = t.track_video_task.submit(config, item, plan.info, detections)
        upstream = [*detections, tracked]
        if config.masking.pulse:  # the skin's pulse traces read and the edit planned, per track
            tracked = t.pulse_video_task.submit(config, item, plan.info, tracked)
            upstream.append(tracked)
        segments = segments_of(config, item, plan.info, plan.chunks)
        with gpu():  # one piece encoded and finished, or pieces encoded side by side, then joined
            parts = (
                [t.encode_segment_task.submit(config, item, plan.info, tracked, s, run_id) for s in segments]
                if len(segments) > 1
                else []
            )
            finish = None if parts else t.finish_video_task.submit(config, item, plan.info, tracked, run_id)
        if parts:
            finish = t.join_video_task.submit(config, item, plan.info, tracked, parts, run_id)
            joins_of[finish] = item.media_id
        finishing[finish] = item
        held[finish], chunks_of[finish] = upstream + parts, detections
    for fut in as_completed(list(chunk_of) + list(finishing)):
        if fut in chunk_of:
            bars.frames_done(*chunk_of[fut])
            continue
        item = finishing[fut]
        try:
            res = _take(fut)
        except Exception as e:  # a task that crashed for good: recorded, never silently lost
            res = t.record_failure_task(config, item, run_id, f"internal error: {failure_of(e, held.get(fut, ()))}")
        chunks = chunks_of.pop(fut, [])
        if keep is not None and res.row["status"] == "leaked" and chunks:  # for a second pass
            keep[item.rel] = chunks
        kept = keep.get(item.rel, []) if keep is not None else []
        for other in held.pop(fut, ()):
            if not any(other is c for c in kept):
                _release(other)
        if fut in joins_of:  # the join's segments, kept until its result is in
            t.remove_segments(config, run_id, joins_of.pop(fut))
        results.append(res)
        bars.media_done(item.rel, res.ok)
    return results


def gpu_tasks(config: AnonymizeConfig):
    """Around the submits of the tasks that run models or encode (detect-chunk, finish-video,
    anonymize-image, encode-segment): on a run for GPU workers (`config.cluster.gpu_workers`) they ask Dask
    for a worker resource GPU=1, so only workers started with `--resources GPU=1` take them, one at a
    time per GPU. Off by default: on a cluster without that resource they would never start."""
    if not config.cluster.gpu_workers:
        return contextlib.nullcontext()
    import dask

    return dask.annotate(resources={"GPU": 1})


def failure_of(error: Exception, upstream) -> str:
    """What went wrong: `error` itself, or, when it only says the task never ran (UnfinishedRun: a task
    it waited for failed), the first failed task of `upstream`, by name, with its own error."""
    if not isinstance(error, UnfinishedRun):
        return repr(error)
    for fut in upstream:
        try:
            state = fut.state
        except Exception:  # the Prefect API unreachable: nothing better to say
            break
        if not (state.is_failed() or state.is_crashed()):
            continue
        try:
            fut.result()
        except Exception as e:  # the upstream task's own error
            return f"{_task_name(fut)}: {e!r}"
    return repr(error)


def _task_name(fut) -> str:
    try:
        return get_client(sync_client=True).read_task_run(fut.task_run_id).name
    except Exception:
        return "a task it waited for"


def _take(fut):
    """`fut`'s result (raises as `result()` does); the future is handed back to Dask either way."""
    try:
        return fut.result()
    finally:
        _release(fut)


def _release(fut) -> None:
    """Tells Dask this flow no longer wants `fut`'s result kept: once read, or once the tasks that
    depended on it have finished (never while a task submitted with it may still be on its way to
    the scheduler)."""
    wrapped = getattr(fut, "wrapped_future", None)
    if wrapped is not None and hasattr(wrapped, "release"):
        wrapped.release()
