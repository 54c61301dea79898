"""The plain task functions wrapped as Prefect tasks (one unit of distributed work each), and the
plain functions flows call in their own process."""
from prefect import task
from prefect.cache_policies import NO_CACHE

from faceveil.tasks.discover import discover
from faceveil.tasks.image import anonymize_image
from faceveil.tasks.common import (index_archive, index_secret, open_vault, prepare_models, record_failure,
                                   remove_segments, warm_worker)
from faceveil.tasks.restore import restore_media, write_restore_report
from faceveil.tasks.run import write_summary
from faceveil.tasks.validate import anonymize_audit, publish, restore_audit
from faceveil.validation.contracts import check_restore
from faceveil.tasks.video import detect_chunk, encode_segment, finish_video, join_video, plan_video, track_video

discover_media = task(discover, name="discover-media", cache_policy=NO_CACHE)
probe_video_task = task(plan_video, name="plan-video", cache_policy=NO_CACHE, retries=1)
detect_chunk_task = task(detect_chunk, name="detect-chunk", cache_policy=NO_CACHE, retries=1,
                         task_run_name="detect {item.rel} [{chunk.start}:{chunk.stop}]")
track_video_task = task(track_video, name="track-video", cache_policy=NO_CACHE, task_run_name="track {item.rel}")
finish_video_task = task(finish_video, name="finish-video", cache_policy=NO_CACHE, retries=1,
                         task_run_name="anonymize {item.rel}")
encode_segment_task = task(encode_segment, name="encode-segment", cache_policy=NO_CACHE, retries=1,
                           task_run_name="anonymize {item.rel} [{seg.start}:{seg.stop}]")
join_video_task = task(join_video, name="join-video", cache_policy=NO_CACHE, retries=1, task_run_name="join {item.rel}")
anonymize_image_task = task(anonymize_image, name="anonymize-image", cache_policy=NO_CACHE, retries=1,
                            task_run_name="anonymize {item.rel}")
record_failure_task = task(record_failure, name="record-failure", cache_policy=NO_CACHE)
write_summary_task = task(write_summary, name="write-summary", cache_policy=NO_CACHE)
restore_media_task = task(restore_media, name="restore-media", cache_policy=NO_CACHE, retries=1,
                          task_run_name="restore {job.rel}")
validate_run_task = task(anonymize_audit, name="validate-run", cache_policy=NO_CACHE)
check_restore_task = task(check_restore, name="check-restore", cache_policy=NO_CACHE)
audit_restore_task = task(restore_audit, name="audit-restore", cache_policy=NO_CACHE)
publish_audit_task = task(publish, name="audit-report-and-mlflow", cache_policy=NO_CACHE)
write_restore_report_task = task(write_restore_report, name="write-restore-report", cache_policy=NO_CACHE)
__all__ = ["open_vault", "prepare_models", "remove_segments", "warm_worker", "index_archive", "index_secret"]  # run in the flow's process / on each worker, not as tasks
