"""`evaluate`: anonymization methods compared on one labelled data set with the real flow. Composition
only; the figures come from `validation.attack`, `validation.evaluation` and `evaluation_table`.

One Dask cluster and Prefect API (`flow_runtime`) serve the whole evaluation:

1. the attacker's gallery: one task per labelled photo (DATA/faces/<identity>/*, or DATA/<identity>/*
   when DATA itself is named `faces`) embeds its largest face on the workers; the identity-match
   threshold is the one given, else calibrated on those photos, else the embedder's default;
2. per method, one after the other: the `anonymize_archive` flow (as a subflow, on the same cluster)
   anonymizes DATA into OUT/<method>/, timed from outside;
3. per method, side by side: a figures task (leak at LEAK_THRESHOLD, the run's own re-identification
   check, utility, from the run's checks tables) and an attack task (each anonymized labelled face
   searched among the original photos, "direct", and among photos the attacker anonymized the same
   way, "parrot"; the reported figure is the larger);
4. one MLflow run per method (flow 'evaluate') with the table and the JSON as artifacts; the JSON
   is also written to OUT/evaluate.json.

Speed: frames (an image counts 1) per wall second of the method's anonymize run on the already
started cluster.
Over 300 lines: the flow's steps 1-4 above and the tasks and input checks only it uses."""

from __future__ import annotations

import functools
import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from faceveil.config import AnonymizeConfig
from faceveil.flows.anonymize import anonymize_archive
from faceveil.flows.runtime import flow_runtime
from faceveil.storage.paths import META_DIR, Location
from faceveil.storage.state import state_location
from faceveil.validation import attack as attacks
from faceveil.validation.evaluation import log_evaluation, method_figures, plain, run_tables
from faceveil.validation.evaluation_table import format_table

CALIBRATION_FMR = 0.01  # as `faceveil calibrate`'s default


# ---------------------------------------------------------------------------------------- inputs


def split_method(spec: str) -> tuple[str, str]:
    """(method, scope) of a method spec: "mosaic" or "mosaic@head" (models/scope)."""
    method, _, scope = str(spec).strip().partition("@")
    return method, scope or "face"


def method_folder(spec: str) -> str:
    """OUT's folder of one method spec ("mosaic", "mosaic-head")."""
    method, scope = split_method(spec)
    return method if scope == "face" else f"{method}-{scope}"


def check_methods(methods: list[str]) -> list[str]:
    """The method specs in order ("METHOD" or "METHOD@SCOPE"), duplicates dropped; ValueError naming
    the registered methods or scopes on a typo, or a scope given to a method that takes none."""
    from faceveil.models.anonymizers import ANONYMIZERS
    from faceveil.models.scope import SCOPES

    out: list[str] = []
    for m in methods:
        m = str(m).strip()
        method, scope = split_method(m)
        if method not in ANONYMIZERS.names():
            raise ValueError(f"unknown anonymization method {method!r}; choose from: {', '.join(ANONYMIZERS.names())}")
        if scope not in SCOPES:
            raise ValueError(f"{m}: unknown scope {scope!r}; choose from: {', '.join(SCOPES)}")
        if scope != "face" and not ANONYMIZERS.get(method).scoped:
            raise ValueError(f"{m}: a scope works with the masking methods (solid, blur, mosaic)")
        m = method if scope == "face" else f"{method}@{scope}"
        if m not in out:
            out.append(m)
    if not out:
        raise ValueError(f"no method given; choose from: {', '.join(ANONYMIZERS.names())}")
    return out


def media_files(data: str) -> list[tuple[str, str]]:
    """[(rel path, 'image'|'video')] of DATA (a local folder); clear errors when missing or empty."""
    from faceveil.pipeline.jobs import media_kind

    root = Path(data).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{data}: evaluation data does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{data}: evaluation data must be a folder")
    files = [(rel, media_kind(rel)) for rel in Location(str(root)).list_files() if rel.split("/")[0] != META_DIR]
    files = [(rel, kind) for rel, kind in files if kind is not None]
    if not files:
        raise ValueError(f"{data}: no images or videos to evaluate (empty, or no supported media)")
    return files


def check_inputs(data: str, out: str, methods: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(methods, media files) once DATA, OUT and the methods are fit for an evaluation."""
    methods = check_methods(methods)
    files = media_files(data)
    d, o = Path(data).expanduser().resolve(), Path(out).expanduser().resolve()
    if o == d or d in o.parents:
        raise ValueError(
            f"{out}: the output folder must lie outside the evaluation data {data} "
            "(each method's outputs would be read as the next method's inputs)"
        )
    for m in methods:
        d = Path(out).expanduser() / method_folder(m)
        if d.exists() and any(d.iterdir()):
            raise FileExistsError(
                f"{d}: not empty (an earlier evaluation?); evaluate needs a fresh output folder "
                "so every method's run does all the work it is timed for"
            )
    return methods, files


def method_config(spec: str, data: str, out: str, workers: int | None, check_every_s: float) -> AnonymizeConfig:
    """The anonymize settings of one method spec's run into OUT/<method_folder>/ (the defaults otherwise)."""
    method, scope = split_method(spec)
    extra = {"scope": scope} if scope != "face" else {}
    if method == "scramble":  # keyed: a throwaway key, in memory only (no index, nothing restorable later)
        from faceveil.storage.keys import MasterKey, VaultLock

        extra = {"vault_lock": VaultLock.of(MasterKey.generate()), "index": False}
    return AnonymizeConfig.of(
        src=data,
        dest=str(Path(out).expanduser() / method_folder(spec)),
        method=method,
        workers=workers,
        check_every_s=check_every_s,
        **extra,
    )


def calibrated_threshold(
    gallery, embedder: dict, given: float | None, target_fmr: float = CALIBRATION_FMR
) -> tuple[float, str]:
    """(threshold, where it came from): the one given; else calibrated on the original labelled photos
    (at most `target_fmr` of their searches return someone else: the attacker's own threshold, with no
    margin for unseen people as `faceveil calibrate` adds, the cautious side for a privacy figure);
    else the embedder's default (`embedder`: its 'name' and 'same_person_threshold')."""
    if given is not None:
        return float(given), "given"
    if gallery is not None and len(gallery) and gallery.eligible.any() and len(gallery.identities) >= 2:
        from faceveil.ops.calibrate import empirical_threshold

        t = empirical_threshold(gallery.vectors, gallery.labels, target_fmr)
        return float(t), f"calibrated on the original labelled photos (search false-match rate <= {target_fmr:.0%})"
    return float(embedder["same_person_threshold"]), f"{embedder['name']}'s default"


# ----------------------------------------------------------------- units of work (on the workers)


def _attacker_models(embedder_name: str | None = None):
    """The attacker's detector and embedder, loaded once per worker process."""
    from faceveil.models.detectors import DEFAULT_DETECTOR, DetectorSettings
    from faceveil.models.embedders import DEFAULT_EMBEDDER
    from faceveil.pipeline.toolkit import loaded_detector, loaded_embedder

    return loaded_detector(DEFAULT_DETECTOR, DetectorSettings()), loaded_embedder(embedder_name or DEFAULT_EMBEDDER)


def model_info() -> dict:
    """The attacker's models by role: name, weights and (embedder) the same-person threshold."""
    det, emb = _attacker_models()
    return {
        "detector": {"name": det.name, "weights": det.weights_id},
        "embedder": {"name": emb.name, "weights": emb.weights_id, "same_person_threshold": emb.same_person_threshold},
    }


def embed_photo(data: str, rel: str, label: str) -> attacks.LabelledFace | None:
    """One labelled photo for the attacker's gallery (None: no face found)."""
    return attacks.embed_labelled(data, rel, label, *_attacker_models())


def figures(state: str, threshold: float, frames: int, wall: float, flow_seconds: float | None) -> dict:
    """Leak, the run's re-identification check, utility and speed of the run whose state root is `state`."""
    return method_figures(
        run_tables(state_location(state), ("media", "checks/frames", "checks/faces")),
        threshold,
        frames,
        wall,
        flow_seconds,
    )


def attack(
    gallery: attacks.Gallery, method: str, mask, dest: str, state: str, threshold: float, embedder_name: str
) -> dict:
    """The direct and parrot attacks on the outputs of `method`'s run into `dest` (its manifests in `state`)."""
    t = run_tables(state_location(state), ("media", "detections"))
    _, emb = _attacker_models(embedder_name)
    return attacks.attack(gallery, method, mask, Location(dest), t["media"], t["detections"], threshold, emb)


def _warm(configs: list[AnonymizeConfig]) -> None:
    """On each worker before work arrives: every method's models, and the attacker's."""
    from faceveil.tasks.wrappers import warm_worker

    for config in configs:
        warm_worker(config)
    _attacker_models()


model_info_task = task(model_info, name="attacker-models", cache_policy=NO_CACHE)
embed_photo_task = task(
    embed_photo, name="attacker-gallery", cache_policy=NO_CACHE, retries=1, task_run_name="gallery {rel}"
)
figures_task = task(figures, name="method-figures", cache_policy=NO_CACHE, task_run_name="figures {state}")
attack_task = task(attack, name="reid-attack", cache_policy=NO_CACHE, task_run_name="attack {method}")
log_task = task(log_evaluation, name="evaluate-mlflow", cache_policy=NO_CACHE)


# ------------------------------------------------------------------------------------------ flow


@flow(name="evaluate", log_prints=False)
def evaluate_methods(
    data: str,
    out: str,
    methods: list[str],
    workers: int | None = None,
    check_every_s: float = 0.5,
    tracking_uri: str | None = None,
    threshold: float | None = None,
) -> dict:
    """Anonymizes DATA into OUT/<method>/ (OUT/<method>-<scope>/ for "METHOD@SCOPE") once per method and measures each (see the module doc).
    Returns {'methods': {method: figures}, 'threshold', 'data', 'n_identities', 'n_probe_faces', ...}."""
    methods, files = check_inputs(data, out, methods)
    info = model_info_task.submit()
    gallery = _gallery(data, files)
    models = info.result()
    threshold, source = calibrated_threshold(gallery, models["embedder"], threshold)
    result = _head(data, out, files, gallery, threshold, source, models["embedder"]["name"])
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs = {m: _anonymize(method_config(m, data, out, workers, check_every_s)) for m in methods}  # one at a time
    result["methods"] = _measure(runs, gallery, threshold, result["embedder"], stamp)
    logged = log_task(
        result,
        out,
        tracking_uri,
        [{"role": r, **{k: models[r][k] for k in ("name", "weights")}} for r in ("detector", "embedder")],
        format_table(result),
    )
    for m, run_id in logged["runs"].items():
        result["methods"][m]["mlflow_run_id"] = run_id
    result["mlflow"] = {"tracking_uri": logged["tracking_uri"], "experiment": logged["experiment"]}
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, "evaluate.json").write_text(json.dumps(plain(result), indent=2))
    return result


def _gallery(data: str, files: list[tuple[str, str]]) -> attacks.Gallery | None:
    """The attacker's gallery, its photos embedded side by side (None without labelled photos)."""
    photos = attacks.labelled_photos(data, files)
    if not photos:
        return None
    entries = [f.result() for f in [embed_photo_task.submit(data, rel, label) for rel, label in photos]]
    return attacks.Gallery(
        data,
        [e for e in entries if e is not None],
        [rel for (rel, _), e in zip(photos, entries) if e is None],
        {label for _, label in photos},
    )


def _head(data: str, out: str, files, gallery, threshold: float, source: str, embedder: str) -> dict:
    """The result's data-set part (before any method ran)."""
    n_ids = len(gallery.identities) if gallery else 0
    result = {
        "data": str(data),
        "out": str(out),
        "threshold": threshold,
        "threshold_source": source,
        "embedder": embedder,
        "n_media": len(files),
        "n_images": sum(k == "image" for _, k in files),
        "n_videos": sum(k == "video" for _, k in files),
        "n_labelled_photos": len(gallery.rels) + len(gallery.no_face) if gallery else 0,
        "n_identities": n_ids,
        "n_probe_faces": int(gallery.eligible.sum()) if gallery else 0,
        "labelled_without_face": list(gallery.no_face) if gallery else [],
        "chance_rank1": 1 / n_ids if n_ids else math.nan,
        "methods": {},
    }
    if gallery is not None and len(gallery):
        result["attack_on_originals"] = gallery.rate(gallery.vectors, gallery.vectors, threshold)[1]
    return result


def _anonymize(config: AnonymizeConfig) -> tuple[dict, float, AnonymizeConfig]:
    """(run summary, wall seconds, config) of one method's anonymize_archive subflow, on a copy of
    this flow's task runner (the same cluster; a copy not yet started: the flow goes with its tasks)."""
    runner = FlowRunContext.get().task_runner.duplicate()
    t0 = time.perf_counter()
    summary = anonymize_archive.with_options(task_runner=runner)(config)
    return summary, time.perf_counter() - t0, config


def _measure(runs: dict, gallery, threshold: float, embedder: str, stamp: str) -> dict:
    """{method: figures}: every method's figures and attack tasks side by side."""
    figs = {
        m: figures_task.submit(c.state, threshold, int(s.get("frames") or 0), wall, s.get("seconds"))
        for m, (s, wall, c) in runs.items()
    }
    hits = (
        {
            m: attack_task.submit(gallery, c.masking.method, c.mask_settings(), c.dest, c.state, threshold, embedder)
            for m, (s, wall, c) in runs.items()
        }
        if gallery is not None and len(gallery)
        else {}
    )
    out = {}
    for m, (summary, _, _) in runs.items():
        fig = figs[m].result()
        fig.update({k: summary[k] for k in ("run_id", "media", "ok", "failed", "faces")})
        fig["failures"] = summary.get("failures", [])
        if m in hits:
            fig["reid_attack"] = hits[m].result()
        fig["evaluate_run_id"] = f"evaluate-{m}-{stamp}"
        out[m] = fig
    return out


def run_evaluate(
    data: str,
    out: str,
    methods: list[str],
    *,
    workers: int | None = None,
    check_every_s: float = 0.5,
    tracking_uri: str | None = None,
    threshold: float | None = None,
) -> dict:
    """Checks the inputs, then runs the `evaluate` flow on a local Dask cluster with a Prefect API
    (`flow_runtime`, as `run_anonymize` does). Returns the flow's result (see `evaluate_methods`)."""
    from faceveil.tasks.wrappers import prepare_models

    methods, _ = check_inputs(data, out, methods)
    configs = [method_config(m, data, out, workers, check_every_s) for m in methods]
    for config in configs:
        prepare_models(config)
    with flow_runtime(
        configs[0].cluster.n_workers, configs[0].cluster.threads_per_worker, None, functools.partial(_warm, configs)
    ) as runner:
        return evaluate_methods.with_options(task_runner=runner)(
            data, out, methods, workers, check_every_s, tracking_uri, threshold
        )
