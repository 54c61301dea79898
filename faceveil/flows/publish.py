"""`publish_dataset`: a face dataset published by identity replacement. The anonymize flow with
method "replace" (a subflow on the same cluster: resumable and idempotent as any anonymize run) ->
measure-faces per photo (original against output at the recorded boxes) -> write-publication
(faces.parquet, contract, datasheet, MLflow). Composition only."""
from __future__ import annotations

import functools
from dataclasses import replace

from prefect import flow
from prefect.context import FlowRunContext

from faceveil.config import AnonymizeConfig
from faceveil.flows.anonymize import anonymize_archive
from faceveil.flows.runtime import flow_runtime
from faceveil.pipeline.places import locations
from faceveil.storage import manifests
from faceveil.tasks import wrappers as t
from faceveil.tasks.run import new_run_id

CROPS = 6  # faces on the datasheet's contact sheet


@flow(name="publish_dataset", log_prints=False)
def publish_dataset(config: AnonymizeConfig, max_over_margin: float = 0.0) -> dict:
    run_id = new_run_id()
    runner = FlowRunContext.get().task_runner.duplicate()
    summary = anonymize_archive.with_options(task_runner=runner)(config)
    media = manifests.read_table(locations(config)[1], "media").to_pandas()
    photos = media[(media.kind == "image") & (media.status == "ok")].sort_values("rel_path")
    faceless = photos[photos.n_faces == 0].rel_path.tolist()
    with_faces = photos[photos.n_faces > 0]
    futures = [t.measure_faces_task.submit(config, r.rel_path, r.media_id, float(r.seconds), CROPS if i < CROPS else 0)
               for i, r in enumerate(with_faces.itertuples())]
    measured = [f.result() for f in futures]
    return {"anonymize": summary, **t.write_publication_task(config, run_id, summary, measured, faceless, max_over_margin)}


def run_publish(src: str, dest: str, *, generator: str = "dcgan-digiface", checkpoint: str | None = None,
                checkpoint_sha256: str | None = None, id_margin: float | None = None, seed: int | None = None,
                workers: int | None = None, tracking_uri: str | None = None, max_over_margin: float = 0.0,
                **settings) -> dict:
    """Runs `publish_dataset` on a local Dask cluster with a Prefect API. `max_over_margin`: the share
    of faces the contract lets keep an identity cosine at or above the margin (default none)."""
    options = {"generator": generator, "checkpoint": checkpoint, "checkpoint_sha256": checkpoint_sha256,
               "id_margin": id_margin, "pool_seed": seed}
    config = AnonymizeConfig(src=src, dest=dest, method="replace", workers=workers, tracking_uri=tracking_uri,
                             replace_options={k: v for k, v in options.items() if v is not None and v != ""}, **settings)
    t.prepare_models(config)
    warm = functools.partial(t.warm_worker, config)
    with flow_runtime(config.n_workers, config.threads_per_worker, config.dask_address, warm, config.dask_tls) as runner:
        return publish_dataset.with_options(task_runner=runner)(replace(config), max_over_margin)
