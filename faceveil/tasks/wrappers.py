"""The task functions wrapped as Prefect tasks (one unit of distributed work each), and the plain
functions flows run in their own process or once on each worker. The one module that imports the
other task modules."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from faceveil.config import AnonymizeConfig
from faceveil.pipeline.places import state_of
from faceveil.pipeline.records import record_failure
from faceveil.pipeline.toolkit import toolkit
from faceveil.tasks.detect import detect_chunk, prepare_models, track_video
from faceveil.tasks.discover import discover
from faceveil.tasks.finish_video import encode_segment, finish_video, join_video
from faceveil.tasks.image import anonymize_image
from faceveil.tasks.index_media import index_archive
from faceveil.tasks.vault_seals import RunKeys, mark_forgotten, open_vault, run_keys, seal_vault_parts
from faceveil.tasks.people import identify_faces, person_surrogate
from faceveil.tasks.plan import plan_video, segments_of
from faceveil.tasks.pulse import pulse_video
from faceveil.tasks.publish_faces import measure_faces, write_publication
from faceveil.tasks.publish_table import assemble_table, plan_table, unpack_rows
from faceveil.tasks.restore_media import RestoreConfig, RestoreJob, plan_restore, restore_media, write_restore_report
from faceveil.tasks.run import new_run_id, write_summary
from faceveil.tasks.validate import anonymize_report, report_and_log, restore_report
from faceveil.validation.contracts import check_restore


def _task(fn, **options):
    """`fn` as a Prefect task named after it (plan_video -> "plan-video", wrapped as `plan_video_task`):
    one name per step, in the code, the Prefect UI and the logs."""
    return task(fn, name=fn.__name__.replace("_", "-"), cache_policy=NO_CACHE, **options)


discover_task = _task(discover)
plan_video_task = _task(plan_video, retries=1)
detect_chunk_task = _task(detect_chunk, retries=1, task_run_name="detect {item.rel} [{chunk.start}:{chunk.stop}]")
track_video_task = _task(track_video, task_run_name="track {item.rel}")
pulse_video_task = _task(pulse_video, retries=1, task_run_name="pulse {item.rel}")
finish_video_task = _task(finish_video, retries=1, task_run_name="anonymize {item.rel}")
encode_segment_task = _task(encode_segment, retries=1, task_run_name="anonymize {item.rel} [{seg.start}:{seg.stop}]")
join_video_task = _task(join_video, retries=1, task_run_name="join {item.rel}")
anonymize_image_task = _task(anonymize_image, retries=1, task_run_name="anonymize {item.rel}")
record_failure_task = _task(record_failure)
write_summary_task = _task(write_summary)
restore_media_task = _task(restore_media, retries=1, task_run_name="restore {job.rel}")
anonymize_report_task = _task(anonymize_report)
check_restore_task = _task(check_restore)
restore_report_task = _task(restore_report)
report_and_log_task = _task(report_and_log)
identify_faces_task = _task(identify_faces, retries=1, task_run_name="identify {item.rel}")
person_surrogate_task = _task(person_surrogate, retries=1)
measure_faces_task = _task(measure_faces, retries=1, task_run_name="measure {rel}")
write_publication_task = _task(write_publication)
plan_table_task = _task(plan_table)
unpack_rows_task = _task(unpack_rows, retries=1, task_run_name="unpack row group {row_group}")
assemble_table_task = _task(assemble_table, retries=1)
write_restore_report_task = _task(write_restore_report)


def remove_segments(config: AnonymizeConfig, run_id: str, media_id: str | None = None) -> None:
    """Takes away the run's video segments in the state root's segments/: one media's, once its join
    is done (the flow's call: a join run again after its worker died still finds them), or all the
    run's, whatever crashed tasks left."""
    dest = state_of(config)
    folder = dest.path(f"segments/{run_id}")
    try:
        if media_id is not None:
            for path in dest.fs.glob(f"{folder}/{media_id}-*"):
                dest.fs.rm(path)
        elif dest.fs.exists(folder):
            dest.fs.rm(folder, recursive=True)
    except OSError:
        pass


def warm_worker(config: AnonymizeConfig) -> None:
    """Run once on each worker before work arrives: the task modules imported (this one), the run's
    toolkit built and its models loaded."""
    toolkit(config.settings).warm()


__all__ = [
    "open_vault",
    "prepare_models",
    "remove_segments",
    "warm_worker",
    "index_archive",
    "run_keys",
    "seal_vault_parts",
    "mark_forgotten",
    "RunKeys",
    "segments_of",
    "new_run_id",
    "RestoreConfig",
    "RestoreJob",
    "plan_restore",
]
