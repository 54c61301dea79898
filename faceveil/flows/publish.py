"""`publish_dataset`: a face dataset published by identity replacement. [A Parquet table: plan-table ->
unpack-rows per row group (each row's image staged as a file)] -> the anonymize flow with method
"replace" (a subflow on the same cluster: resumable and idempotent as any anonymize run), after
[identify-faces per photo -> the faces grouped into people -> person-surrogate per person seen in
more than one photo, so each of them keeps one fake identity across the dataset] ->
measure-faces per photo (original against output at the recorded boxes) -> [assemble-table: the
output table] -> write-publication (faces.parquet, contract, datasheet, MLflow). Composition only."""

from __future__ import annotations

import functools
from dataclasses import replace

from prefect import flow
from prefect.context import FlowRunContext

from faceveil.config import AnonymizeConfig
from faceveil.flows.anonymize import anonymize_archive
from faceveil.flows.handover import handed_over
from faceveil.flows.preflight import move_legacy_state
from faceveil.flows.runtime import flow_runtime
from faceveil.pipeline.places import state_of
from faceveil.storage import manifests
from faceveil.storage.image_tables import ImageTable, TableError, check_table, is_table
from faceveil.tasks import wrappers as t
from faceveil.tasks.run import new_run_id
from faceveil.validation.datasheet import REFERENCE_FACES

CROPS = 6  # faces on the datasheet's contact sheet


@flow(name="publish_dataset", log_prints=False)
def publish_dataset(
    config: AnonymizeConfig, max_over_margin: float = 0.0, table: ImageTable | None = None, per_person: bool = True
) -> dict:
    """`table`: SRC is this Parquet table; `config` then runs on its staged rows (`staged_config`).
    `per_person`: one surrogate per person seen in several photos (else one per face)."""
    run_id = new_run_id()
    runner = FlowRunContext.get().task_runner.duplicate()
    if table is not None:
        plan = t.plan_table_task(table)
        for unpacked in [t.unpack_rows_task.submit(table, plan, g) for g in plan["todo"]]:
            unpacked.result()
    with handed_over(_people(config) if per_person else {}) as people:
        summary = anonymize_archive.with_options(task_runner=runner)(config, people_token=people)
    media = manifests.read_table(state_of(config), "media").to_pandas()
    photos = media[(media.kind == "image") & (media.status == "ok")].sort_values("rel_path")
    faceless = photos[photos.n_faces == 0].rel_path.tolist()
    with_faces = photos[photos.n_faces > 0]
    before = (with_faces.n_faces.cumsum() - with_faces.n_faces).tolist()  # faces in the photos before each
    refs = min(REFERENCE_FACES, int(with_faces.n_faces.sum()) // 2)  # realism's test faces; the others its reference
    futures = [
        t.measure_faces_task.submit(
            config, r.rel_path, r.media_id, float(r.seconds), CROPS if i < CROPS else 0, max(0, refs - int(before[i]))
        )
        for i, r in enumerate(with_faces.itertuples())
    ]
    measured = [f.result() for f in futures]
    assembled = t.assemble_table_task(table, plan, config) if table is not None else None
    return {
        "anonymize": summary,
        **t.write_publication_task(config, run_id, summary, measured, faceless, max_over_margin, assembled),
    }


def _people(config: AnonymizeConfig) -> dict:
    """{rel: [(box, Surrogate)]}: the faces of the photos still to do whose person (models/people) is
    in more than one of them, each with that person's one surrogate, made from their best face."""
    import numpy as np

    from faceveil.models.embedders import EMBEDDERS
    from faceveil.models.people import shared_people
    from faceveil.models.replace import track_seed

    items, _ = t.discover_task(config)
    todo = [i for i in items if i.kind == "image" and not i.done and not i.error]
    faces = [f for fut in [t.identify_faces_task.submit(config, i) for i in todo] for f in fut.result()]
    if len(faces) < 2:
        return {}
    vectors, quality = np.stack([f["vector"] for f in faces]), np.array([f["quality"] for f in faces])
    labels, means, best = shared_people(vectors, quality, EMBEDDERS.get("dlib-resnet").same_person_threshold)
    seed = dict(config.masking.replace_options).get("pool_seed", 0)
    made = {
        p: t.person_surrogate_task.submit(
            config,
            faces[i],
            means,
            track_seed(seed, "person", faces[i]["rel"], *np.round(faces[i]["box"]).astype(int).tolist()),
        )
        for p, i in best.items()
    }
    book: dict[str, list] = {}
    for p, fut in made.items():
        surrogate = fut.result()
        if surrogate is not None:
            for i in np.flatnonzero(labels == p):
                book.setdefault(faces[i]["rel"], []).append((faces[i]["box"], surrogate))
    return book


def staged_config(table: ImageTable, config: AnonymizeConfig) -> AnonymizeConfig:
    """The run over a table's staged rows, in the publication's state root: SRC table/in, DEST
    table/out (its own state beside it), its MLflow runs in the publication's store."""
    from faceveil.validation.mlflow_log import store_for

    uri, artifacts = store_for(table.state_root(), config.tracking_uri, config.mlflow_artifacts)
    return replace(
        config,
        src=table.work_url("in"),
        dest=table.work_url("out"),
        state=None,
        tracking_uri=uri,
        mlflow_artifacts=artifacts,
    )


def run_publish(
    src: str,
    dest: str,
    *,
    generator: str = "dcgan-digiface",
    checkpoint: str | None = None,
    checkpoint_sha256: str | None = None,
    id_margin: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    tracking_uri: str | None = None,
    max_over_margin: float = 0.0,
    image_column: str | None = None,
    per_person: bool = True,
    **settings,
) -> dict:
    """Runs `publish_dataset` on a local Dask cluster with a Prefect API. `max_over_margin`: the share
    of faces the contract lets keep an identity cosine at or above the margin (default none). SRC a
    `.parquet` file (local or s3://): a table of images (`image_column`, default the one column of
    image bytes), published as DEST/<its name>."""
    options = {
        "generator": generator,
        "checkpoint": checkpoint,
        "checkpoint_sha256": checkpoint_sha256,
        "id_margin": id_margin,
        "pool_seed": seed,
    }
    config = AnonymizeConfig.of(
        src=src,
        dest=dest,
        method="replace",
        workers=workers,
        tracking_uri=tracking_uri,
        replace_options={k: v for k, v in options.items() if v is not None and v != ""},
        **settings,
    )
    move_legacy_state(config)
    table = None
    if is_table(src):
        table = ImageTable(src, dest, image_column, dict(config.storage_options), config.state)
        check_table(table)  # a usage error before anything starts
        config = staged_config(table, config)
    elif image_column:
        raise TableError(f"--image-column is for a Parquet table; {src} is a folder")
    t.prepare_models(config)
    warm = functools.partial(t.warm_worker, config)
    with flow_runtime(
        config.cluster.n_workers,
        config.cluster.threads_per_worker,
        config.cluster.dask_address,
        warm,
        config.cluster.dask_tls,
    ) as runner:
        return publish_dataset.with_options(task_runner=runner)(replace(config), max_over_margin, table, per_person)
