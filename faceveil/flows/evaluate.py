"""`faceveil evaluate`: anonymization methods compared on one labelled data set with the real flow.

Each method anonymizes DATA into OUT/<method>/ with `run_anonymize` (Prefect flow on a local Dask
cluster), timed from outside. Then, per method:

* leak: faces the detector still finds at LEAK_THRESHOLD (0.3) in the decoded outputs, per face
  anonymized, from the run's own audit tables (split images / videos when DATA holds both);
* re-identification, two ways. "run": the run's check, each anonymized face against its own
  original's embedding at `threshold`. "attack": on the labelled photos (DATA/faces/<identity>/*, or
  DATA/<identity>/* when DATA itself is named `faces`), an attacker embeds each anonymized face and
  searches a gallery of every ORIGINAL labelled photo (the probe's own photo left out): rank-1 with
  the right identity at or above `threshold` counts (`identified`). The "parrot" variant (the
  published attack on blur and pixelation) anonymizes the gallery with the same method first and
  matches anonymized against anonymized; keyed methods get the attacker's own random keys. The
  reported attack figure is the larger of the two;
* utility: background PSNR/SSIM outside the masks and SSIM inside them (the audit's means);
* speed: frames (an image counts 1) per wall second of `run_anonymize`, start-up included.

One MLflow run per method (flow 'evaluate'), with the table and the JSON as artifacts; the JSON is
also written to OUT/_faceveil/evaluate.json."""
from __future__ import annotations

import json
import math
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from faceveil.storage.paths import META_DIR, Location
from faceveil.validation.privacy import LEAK_THRESHOLD

FACES_DIR = "faces"
CALIBRATION_FMR = 0.01  # as `faceveil calibrate`'s default
PROBE_IOU = 0.3  # a manifest box counts as the labelled face when it overlaps the attacker's box this much


# ---------------------------------------------------------------------------------------- inputs

def check_methods(methods: list[str]) -> list[str]:
    """The methods in order, duplicates dropped; ValueError naming the registered ones on a typo."""
    from faceveil.models.anonymizers import ANONYMIZERS

    out: list[str] = []
    for m in methods:
        m = str(m).strip()
        if m not in ANONYMIZERS.names():
            raise ValueError(f"unknown anonymization method {m!r}; choose from: {', '.join(ANONYMIZERS.names())}")
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


def labelled_photos(data: str, files: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """[(rel path, identity)] of the labelled photos: images at faces/<identity>/<file> under DATA,
    or at <identity>/<file> when DATA itself is a folder named `faces`."""
    root = Path(data).expanduser().resolve()
    prefix = () if root.name == FACES_DIR and not (root / FACES_DIR).is_dir() else (FACES_DIR,)
    out = []
    for rel, kind in files:
        parts = tuple(rel.split("/"))
        if kind == "image" and len(parts) == len(prefix) + 2 and parts[:len(prefix)] == prefix:
            out.append((rel, parts[-2]))
    return out


def _check_out(data: str, out: str, methods: list[str]) -> None:
    d, o = Path(data).expanduser().resolve(), Path(out).expanduser().resolve()
    if o == d or d in o.parents:
        raise ValueError(f"{out}: the output folder must lie outside the evaluation data {data} "
                         "(each method's outputs would be read as the next method's inputs)")
    for m in methods:
        d = Path(out).expanduser() / m
        if d.exists() and any(d.iterdir()):
            raise FileExistsError(f"{d}: not empty (an earlier evaluation?); evaluate needs a fresh output folder "
                                  "so every method's run does all the work it is timed for")


# ------------------------------------------------------------------------------------- the attack

class Gallery:
    """The attacker's gallery: every labelled photo where the attacker's detector finds a face, its
    largest face embedded from the ORIGINAL photo. `faces[i]`: all faces found in photo i (the
    parrot attacker anonymizes them all, as the flow does); `primary[i]`: the labelled face."""

    def __init__(self, data: str, photos: list[tuple[str, str]], detector, embedder):
        from faceveil.storage.media import read_image

        self.data, self.embedder = data, embedder
        self.rels, self.labels, self.faces, self.primary, vecs = [], [], [], [], []
        self.no_face: list[str] = []
        for rel, label in photos:
            rgb, _ = read_image(str(Path(data) / rel))
            dets = detector.detect(rgb)
            if not len(dets):
                self.no_face.append(rel)
                continue
            k = int(np.argmax(dets.sizes))
            self.rels.append(rel)
            self.labels.append(label)
            self.faces.append(dets)
            self.primary.append(dets[[k]])
            vecs.append(embedder.embed(rgb, dets[[k]])[0])
        self.labels = np.asarray(self.labels, dtype=object)
        self.vectors = np.asarray(vecs, np.float32).reshape(len(self.rels), -1)
        self.identities = sorted(set(label for _, label in photos))
        self.same_photo = np.eye(len(self.rels), dtype=bool)
        # a probe counts only where the gallery holds another photo of its identity (else no attack can succeed)
        others = (self.labels[:, None] == self.labels[None, :]) & ~self.same_photo
        self.eligible = others.any(1) if len(self.rels) else np.zeros(0, bool)

    def __len__(self) -> int:
        return len(self.rels)

    def rate(self, probes: np.ndarray, gallery: np.ndarray, threshold: float) -> tuple[np.ndarray, float]:
        """(re-identified per probe, rate over the eligible probes) against `gallery`."""
        from faceveil.validation.identity import identified

        hit = identified(probes, self.labels, gallery, self.labels, threshold, exclude=self.same_photo)
        n = int(self.eligible.sum())
        return hit, float(hit[self.eligible].mean()) if n else math.nan

    def answered(self, probes: np.ndarray, gallery: np.ndarray, threshold: float) -> np.ndarray:
        """Per probe: whether its best match (own photo left out) reaches `threshold`, right label or not."""
        p = probes / np.maximum(np.linalg.norm(probes, axis=1, keepdims=True), 1e-12)
        g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
        sims = np.where(self.same_photo, -np.inf, p @ g.T)
        return sims.max(1) >= threshold if len(sims) else np.zeros(0, bool)

    def parrot_gallery(self, method: str, mask) -> np.ndarray:
        """The gallery anonymized by the attacker with the same method (keyed: the attacker's own keys)."""
        from faceveil.models.anonymizers import create_anonymizer
        from faceveil.storage.media import read_image

        anon = create_anonymizer(method, mask)
        keys = (lambda j: secrets.token_bytes(32)) if anon.needs_key else None
        vecs = []
        for rel, faces, primary in zip(self.rels, self.faces, self.primary):
            rgb, _ = read_image(str(Path(self.data) / rel))
            anon.apply(rgb, faces, keys)
            vecs.append(self.embedder.embed(rgb, primary)[0])
        return np.asarray(vecs, np.float32).reshape(len(self.rels), -1)


def _probe_vectors(gallery: Gallery, dest: Location, media, detections) -> tuple[np.ndarray, dict]:
    """The attacker's probes: each labelled photo's anonymized output embedded at the manifest box
    that is the labelled face (best IoU with the attacker's box on the original); where the flow
    found no such face, or the media failed, at the attacker's box on what was written (if any)."""
    from faceveil.models.detections import Detections
    from faceveil.storage.media import read_image
    from faceveil.validation.identity import match_faces

    by_rel = {r.rel_path: r for r in media.itertuples()}
    dets_of = {mid: g for mid, g in detections.groupby("media_id")} if len(detections) else {}
    vecs, counts = [], {"probes": len(gallery), "at_manifest_box": 0, "at_attacker_box": 0, "no_output": 0}
    dim = gallery.vectors.shape[1] if len(gallery) else 0
    for rel, primary in zip(gallery.rels, gallery.primary):
        row = by_rel.get(rel)
        if row is None or row.status != "ok" or not row.output_path:
            counts["no_output"] += 1  # nothing written: nothing to attack (a failure, counted in the run)
            vecs.append(np.full(dim, np.nan, np.float32))
            continue
        rgb, _ = read_image(dest.path(row.output_path))
        box = primary
        g = dets_of.get(row.media_id)
        if g is not None and len(g):
            found = Detections(g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32), g["score"].to_numpy(np.float32),
                               np.stack(g["landmarks"].to_numpy()).astype(np.float32))
            j = int(match_faces(found, primary, PROBE_IOU)[0])
            if j >= 0:
                box = found[[j]]
        counts["at_manifest_box" if box is not primary else "at_attacker_box"] += 1
        vecs.append(gallery.embedder.embed(rgb, box)[0])
    return np.asarray(vecs, np.float32).reshape(len(gallery), dim), counts


def _attack(gallery: Gallery, method: str, mask, dest: Location, media, detections, threshold: float) -> dict:
    """Both attacks' rates over the eligible probes; `answered`: share of probes whose rank-1 match
    reaches the threshold at all (the rest of those answers name the wrong person)."""
    t0 = time.perf_counter()
    probes, counts = _probe_vectors(gallery, dest, media, detections)
    valid = ~np.isnan(probes).any(1) if len(probes) else np.zeros(0, bool)
    probes = np.nan_to_num(probes, nan=0.0)  # a missing output never counts as re-identified
    el, n = gallery.eligible, int(gallery.eligible.sum())
    rate = (lambda hit: float(hit[el].mean()) if n else math.nan)  # noqa: E731
    out = {"probes": n}
    hits = {}
    for name, against in (("direct", gallery.vectors), ("parrot", gallery.parrot_gallery(method, mask))):
        hits[name] = gallery.rate(probes, against, threshold)[0] & valid
        out[name] = rate(hits[name])
        out[f"{name}_answered"] = rate(gallery.answered(probes, against, threshold) & valid)
    out.update({"either": rate(hits["direct"] | hits["parrot"]),
                "rate": max(out["direct"], out["parrot"]) if n else math.nan,
                "parrot_keys": "attacker's own random keys" if method == "scramble" else None,
                "probe_boxes": counts, "seconds": time.perf_counter() - t0})
    return out


# ------------------------------------------------------------------------------------ per method

def _tables(dest: Location):
    from faceveil.storage.manifests import read_table

    return {t: read_table(dest, t).to_pandas() for t in ("media", "detections", "audit/frames", "audit/faces")}


def _figures(t: dict, threshold: float, frames: int, wall: float, flow_seconds: float | None) -> dict:
    """Leak, the run's re-identification check and utility from the audit tables; speed (`fps`: per
    wall second of run_anonymize; `fps_flow`: per second of the flow itself, start-up excluded)."""
    from faceveil.validation.privacy import summarize

    fr, fa = t["audit/frames"], t["audit/faces"]
    s = summarize(fr.to_dict("records"), fa.to_dict("records"), threshold)
    kinds = dict(zip(t["media"].media_id, t["media"].kind))
    out = {"leak": s["leak"], "reid_run": s["reid"], "utility": s["utility"],
           "frames": frames, "seconds": wall, "fps": frames / wall if wall > 0 else math.nan,
           "flow_seconds": flow_seconds, "fps_flow": frames / flow_seconds if flow_seconds else math.nan}
    present = sorted(set(kinds.values()))
    if len(present) > 1:
        for kind in present:
            ids = {m for m, k in kinds.items() if k == kind}
            out[f"leak_{kind}s"] = summarize(fr[fr.media_id.isin(ids)].to_dict("records"), [], threshold)["leak"]
    return out


def _run_method(method: str, data: str, dest: str, workers, check_every_s: float):
    """(run summary, wall seconds of run_anonymize, the config)."""
    from faceveil.config import AnonymizeConfig
    from faceveil.flows.anonymize import run_anonymize

    extra = {}
    if method == "scramble":  # keyed: a throwaway key, in memory only (no index, nothing restorable later)
        from faceveil.storage.keys import MasterKey, VaultLock

        extra = {"vault_lock": VaultLock.of(MasterKey.generate()), "index": False}
    config = AnonymizeConfig(src=data, dest=dest, method=method, workers=workers, check_every_s=check_every_s, **extra)
    t0 = time.perf_counter()
    summary = run_anonymize(config)
    return summary, time.perf_counter() - t0, config


def calibrated_threshold(gallery, embedder, given: float | None, target_fmr: float = CALIBRATION_FMR) -> tuple[float, str]:
    """(threshold, where it came from): the one given; else calibrated on the original labelled photos
    as `faceveil calibrate` does (at most `target_fmr` of searches return someone else); else the
    embedder's default."""
    if given is not None:
        return float(given), "given"
    if gallery is not None and len(gallery) and gallery.eligible.any() and len(gallery.identities) >= 2:
        from faceveil.ops.calibrate import search_threshold

        t = search_threshold(gallery.vectors, gallery.labels, target_fmr)["threshold"]
        return float(t), f"calibrated on the original labelled photos (search false-match rate <= {target_fmr:.0%})"
    return float(embedder.same_person_threshold), f"{embedder.name}'s default"


def run_evaluate(data: str, out: str, methods: list[str], *, workers: int | None = None, check_every_s: float = 0.5,
                 tracking_uri: str | None = None, threshold: float | None = None) -> dict:
    """Anonymizes DATA into OUT/<method>/ once per method and measures each (see the module doc).
    Returns {'methods': {method: figures}, 'threshold', 'data', 'n_identities', 'n_probe_faces', ...}."""
    methods = check_methods(methods)
    files = media_files(data)
    _check_out(data, out, methods)
    from faceveil.models.detectors import DEFAULT_DETECTOR, create_detector
    from faceveil.models.embedders import create_embedder

    embedder = create_embedder()
    detector = create_detector(DEFAULT_DETECTOR)
    photos = labelled_photos(data, files)
    gallery = Gallery(data, photos, detector, embedder) if photos else None
    threshold, source = calibrated_threshold(gallery, embedder, threshold)
    result = {
        "data": str(data), "out": str(out), "threshold": threshold, "threshold_source": source,
        "embedder": embedder.name,
        "n_media": len(files), "n_images": sum(k == "image" for _, k in files),
        "n_videos": sum(k == "video" for _, k in files),
        "n_labelled_photos": len(photos), "n_identities": len(gallery.identities) if gallery else 0,
        "n_probe_faces": int(gallery.eligible.sum()) if gallery else 0,
        "labelled_without_face": list(gallery.no_face) if gallery else [],
        "chance_rank1": 1 / len(gallery.identities) if gallery and gallery.identities else math.nan,
        "methods": {},
    }
    if gallery is not None and len(gallery):
        result["attack_on_originals"] = gallery.rate(gallery.vectors, gallery.vectors, threshold)[1]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for method in methods:
        dest = str(Path(out).expanduser() / method)
        summary, wall, config = _run_method(method, data, dest, workers, check_every_s)
        loc = Location(dest)
        t = _tables(loc)
        fig = _figures(t, threshold, int(summary.get("frames") or 0), wall, summary.get("seconds"))
        fig.update({"run_id": summary["run_id"], "media": summary["media"], "ok": summary["ok"],
                    "failed": summary["failed"], "faces": summary["faces"],
                    "failures": summary.get("failures", [])})
        if gallery is not None and len(gallery):
            fig["reid_attack"] = _attack(gallery, method, config.mask_settings(), loc, t["media"], t["detections"],
                                         threshold)
        fig["evaluate_run_id"] = f"evaluate-{method}-{stamp}"
        result["methods"][method] = fig
    _log(result, out, tracking_uri, detector, embedder)
    Path(out, META_DIR).mkdir(parents=True, exist_ok=True)
    Path(out, META_DIR, "evaluate.json").write_text(json.dumps(_plain(result), indent=2))
    return result


# ------------------------------------------------------------------------------------- reporting

def _plain(v):
    """JSON-safe: NaN -> None, infinities -> 'inf' / '-inf', numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _finite(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _log(result: dict, out: str, uri: str | None, detector, embedder) -> None:
    """One MLflow run per method; each carries the whole table and JSON as artifacts."""
    from faceveil.validation.mlflow_log import log_run, store_for

    uri, artifacts_at = store_for(Location(str(Path(out).expanduser())), uri)
    table = format_table(result).encode()
    models = [{"role": "detector", "name": detector.name, "weights": detector.weights_id},
              {"role": "embedder", "name": embedder.name, "weights": embedder.weights_id}]
    for method, f in result["methods"].items():
        attack = f.get("reid_attack") or {}
        privacy = {"leak_rate": f["leak"]["rate"], "leak_threshold": f["leak"]["threshold"],
                   "reid_run_rate": f["reid_run"]["rate"], "reid_run_mean_cosine": f["reid_run"]["mean_cosine"],
                   "reid_attack_rate": attack.get("rate"), "reid_attack_direct_rate": attack.get("direct"),
                   "reid_attack_parrot_rate": attack.get("parrot"), "threshold": result["threshold"]}
        for kind in ("images", "videos"):
            if f"leak_{kind}" in f:
                privacy[f"leak_{kind}_rate"] = f[f"leak_{kind}"]["rate"]
        audit = {
            "run_id": f["evaluate_run_id"], "flow": "evaluate", "status": "ok" if not f["failed"] else "failed",
            "src": result["data"], "dest": str(Path(out) / method),
            "settings": {"method": method, "data": result["data"], "threshold": result["threshold"],
                         "anonymize_run_id": f["run_id"]},
            "models": models,
            "counts": {"media": f["media"], "ok": f["ok"], "failed": f["failed"], "frames": f["frames"],
                       "faces": f["faces"], "identities": result["n_identities"], "probe_faces": result["n_probe_faces"],
                       "frames_checked": f["leak"]["frames_checked"], "faces_checked": f["reid_run"]["faces_checked"]},
            "privacy": {k: _finite(v) for k, v in privacy.items()},
            "utility": {k: _finite(v) for k, v in {**f["utility"], "fps": f["fps"]}.items()},
            "seconds": f["seconds"],
            "contracts": {"success": not f["failed"], "results": []},
        }
        logged = log_run(audit, {"evaluate.md": table, "evaluate.json": json.dumps(_plain(result), indent=2).encode()},
                         uri, artifacts_at)
        f["mlflow_run_id"] = logged["run_id"]
    result["mlflow"] = {"tracking_uri": uri, "experiment": "faceveil"}


def _num(v, fmt: str, scale: float = 1.0) -> str:
    """A number as text: '—' when missing or NaN, 'inf' when infinite."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        return "—"
    return ("inf" if v > 0 else "-inf") if math.isinf(v) else format(scale * v, fmt)


def _pct(v) -> str:
    return _num(v, ".1f", 100.0)


def format_table(result: dict) -> str:
    """An aligned text table, one row per method, with the threshold, chance level and notes."""
    cols = ["method", "leak %", "reid %", "parrot reid %", "reid run %", "bg PSNR dB", "bg SSIM", "face SSIM", "fps"]
    rows = []
    for m, f in result["methods"].items():
        u, a = f["utility"], f.get("reid_attack") or {}
        rows.append([m, _pct(f["leak"]["rate"]), _pct(a.get("direct")), _pct(a.get("parrot")), _pct(f["reid_run"]["rate"]),
                     _num(u["background_psnr"], ".1f"), _num(u["background_ssim"], ".3f"), _num(u["face_ssim"], ".3f"),
                     _num(f["fps"], ".1f")])
    width = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda r: "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(r, width)))  # noqa: E731
    n_img, n_vid = result.get("n_images", 0), result.get("n_videos", 0)
    out = [f"data: {result['data']} ({n_img} images, {n_vid} videos); re-identification threshold: cosine >= "
           f"{result['threshold']:.3f} ({result.get('embedder', 'embedder')}, {result.get('threshold_source', 'given')}); "
           f"leak: faces found at detector score >= {LEAK_THRESHOLD} in the outputs, per face anonymized",
           "reid: an attacker's rank-1 search of each anonymized face among the original labelled photos (its own left "
           "out), right identity at or above the threshold; parrot: the same against a gallery anonymized the same way "
           "(context such as hair, clothes and framing survives any face mask); reid run: the run's own check "
           "(still found as a face and matching its original)"]
    if result.get("n_probe_faces"):
        out.append(f"attack: {result['n_probe_faces']} labelled faces of {result['n_identities']} identities; "
                   f"rank-1 chance 1/{result['n_identities']} = {100 * result['chance_rank1']:.1f} %; the same attack "
                   f"on the unanonymized photos: {_pct(result.get('attack_on_originals'))} %")
    out += [line(cols), line(["-" * w for w in width])] + [line(r) for r in rows]
    notes = []
    for m, f in result["methods"].items():
        a = f.get("reid_attack")
        if a:
            notes.append(f"{m}: attack direct {_pct(a['direct'])} % (rank-1 at or above the threshold for "
                         f"{_pct(a['direct_answered'])} % of probes, right or wrong), parrot {_pct(a['parrot'])} % "
                         f"({_pct(a['parrot_answered'])} %)"
                         + (f"; parrot gallery scrambled with the {a['parrot_keys']}" if a.get("parrot_keys") else ""))
        split = [f"{k[5:]} {_pct(f[k]['rate'])} % ({f[k]['faces_found']}/{f[k]['faces_anonymized']})"
                 for k in ("leak_images", "leak_videos") if k in f]
        leak = f["leak"]
        notes.append(f"{m}: leak {leak['faces_found']} faces found / {leak['faces_anonymized']} anonymized in "
                     f"{leak['frames_checked']} checked frames" + (f" ({', '.join(split)})" if split else "")
                     + f"; run re-id check on {f['reid_run']['faces_checked']} faces; {f['frames']} frames in "
                     f"{f['seconds']:.1f} s" + (f"; {f['failed']} media FAILED" if f.get("failed") else ""))
    if notes:
        out += [""] + notes
    return "\n".join(out)
