"""The per-face fallback chain of identity replacement. A face whose replacement still shows its person
to dlib (identity cosine to the original, measured in the whole frame as put back, at or above
`id_margin - id_guard`, ReplaceSettings) gets the next method of FALLBACKS, down to one that needs no identity judgement:

- "replace": the search of models/replace.py (paired pool face, colour steps, black-box search);
- "replace-strong": that search with stronger settings (`strong_settings`: 3x the evaluations, 1.5x the
  step size, a target one guard lower (passing 2 guards below the margin), faces of any size searched): from the person's surrogate
  where the face has one (so a person keeps one fake identity where the stronger search can), else from
  the next partner (the first step's pool face left out) with a seed of its own;
- "generated": the pool face farthest in identity from this person and everyone seen with them, put
  back as it was generated (no attribute pairing, no colour steps, no landmark warp: its own face's
  geometry, aligned by a similarity only);
- "solid": the face's mask region filled with its own mean colour (the Solid anonymizer's fill).

A face smaller than MIN_JUDGED_SIZE goes straight to "solid": dlib cannot judge it. Measured on the
42 faces of two photos each of ../shared/data/faces's 21 people, downscaled (Detections.sizes, the
geometric mean of the box's sides): another person's face is within the margin (cosine >= 0.85) of
80 % of the faces at 16 px, 68 % at 20, 56 % at 24, 47 % at 28 and 30 % at full size, so below 24 px a
search rarely finds a surrogate below the margin and dlib's verdict on one means little; the leak
gate's own identity check skips faces under 24 px too (CheckSettings.identity_min_size). Solid, not a
heavy blur: it hides everything with no judgement needed, and a blur is attackable (deblurring, or a
detector still finding a face for the gate to weigh).

Pure compute: the Replacer (and its models) is handed in."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from faceveil.models.replace import Replacer, ReplaceSettings, Surrogate, track_seed

FALLBACKS = ("replace", "replace-strong", "generated", "solid")
MIN_JUDGED_SIZE = 24.0  # px (Detections.sizes): smaller faces go straight to "solid" (module docstring)


def strong_settings(s: ReplaceSettings) -> ReplaceSettings:
    """The second search's settings: more evaluations, larger steps, a lower target, every face searched."""
    return replace(
        s, es_evals=3 * s.es_evals, es_sigma=1.5 * s.es_sigma, id_margin=s.id_margin - s.id_guard, min_search_size=0.0
    )


def passes(cosine: float, s: ReplaceSettings) -> bool:
    """Whether a face whose identity cosine to the original is `cosine` keeps its method."""
    return bool(cosine < s.id_margin - s.id_guard)


def next_method(method: str) -> str:
    """The step after `method` ("solid" is the last)."""
    return FALLBACKS[min(FALLBACKS.index(method) + 1, len(FALLBACKS) - 1)]


def solid(seed: int) -> Surrogate:
    """The last step: no face put back; the region is filled (models/anonymizers.Replace)."""
    return Surrogate(None, None, None, -1, seed, method="solid", judged=True)


@dataclass
class Face:
    """One face to handle: the frame (as it was), its landmarks and box, its seed, its identity
    vector, everyone else's seen with it (`others`), the pool faces not to give it, the region the
    face may change, and the surrogate of its person from another photo (`start`, replace only)."""

    rgb: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray
    seed: int
    identity: np.ndarray
    others: np.ndarray
    avoid: set
    limit: object = None
    start: Surrogate | None = None


class Chain:
    """The steps of FALLBACKS over one Replacer (its models and pool shared with the stronger search's)."""

    def __init__(self, replacer: Replacer):
        self.replacer = replacer
        self._strong: Replacer | None = None
        self._person: Replacer | None = None

    @property
    def strong(self) -> Replacer:
        if self._strong is None:
            r = self.replacer
            self._strong = Replacer(r.generator, r.detector, r.embedder, strong_settings(r.settings))
            self._strong._pool = r.pool
        return self._strong

    @property
    def person(self) -> Replacer:
        """The search that makes a person's surrogate (shared by every photo of them): the first step's
        settings with the stronger search's target, so it passes on their other photos as well."""
        if self._person is None:
            r = self.replacer
            self._person = Replacer(
                r.generator,
                r.detector,
                r.embedder,
                replace(r.settings, id_margin=strong_settings(r.settings).id_margin),
            )
            self._person._pool = r.pool
        return self._person

    def step(self, method: str, face: Face) -> Surrogate:
        """The surrogate `method` makes for `face`, its method and seconds recorded."""
        t0 = time.perf_counter()
        if method == "replace":
            s = self.replacer.surrogate(
                face.rgb,
                face.landmarks,
                face.box,
                face.seed,
                others=face.others,
                avoid=face.avoid,
                original_id=face.identity,
                limit=face.limit,
                start=face.start,
            )
        elif method == "replace-strong":
            s = self.strong.surrogate(
                face.rgb,
                face.landmarks,
                face.box,
                track_seed(face.seed, method),
                others=face.others,
                avoid=face.avoid,
                original_id=face.identity,
                limit=face.limit,
                start=face.start,
            )
        elif method == "generated":
            s = self.generated(face)
        else:
            s = solid(face.seed)
        s.method, s.seconds = method, time.perf_counter() - t0
        return s

    def generated(self, face: Face) -> Surrogate:
        """The pool face farthest in identity from `face` and `others` (those in `avoid` left out
        unless every one is), as generated."""
        pool = self.replacer.pool
        ids = np.stack([f.identity for f in pool])
        reals = np.vstack([face.identity[None], np.asarray(face.others, np.float32).reshape(-1, ids.shape[1])])
        sims = (ids @ reals.T).max(1)
        free = np.array([i not in face.avoid for i in range(len(pool))])
        sims[~free if free.any() else np.zeros(len(pool), bool)] = np.inf
        idx = int(np.argmin(sims))
        f = pool[idx]
        return Surrogate(
            f.latent,
            f.image,
            f.landmarks,
            idx,
            track_seed(face.seed, "generated"),
            cosine_start=float(f.identity @ face.identity),
        )


PUBLISHED_QUALITY = 95  # storage/media/images.write_image's JPEG quality (4:2:0), the lossiest output it writes


def as_published(rgb: np.ndarray) -> np.ndarray:
    """`rgb` after a round trip through the lossiest encoding a photo is published in (JPEG at
    PUBLISHED_QUALITY): a face is judged as it will be measured in the published file (the encoding
    moves dlib's identity cosine by up to about 0.03 on a replaced face)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, PUBLISHED_QUALITY])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] if ok else rgb


def judge(
    anon,
    rgb: np.ndarray,
    original: np.ndarray,
    dets,
    regions,
    chosen: dict,
    media: str,
    published=as_published,
    identities: dict | None = None,
) -> None:
    """The new surrogates of a frame (`chosen`: {detection: Surrogate} of the Replace anonymizer `anon`,
    put back in `rgb`) judged in the whole frame as published (`as_published`): identity cosine to the
    original (dlib, as the publication measures it); a face that does not pass gets the next method and
    the frame is made again from `original`, and every new face is judged again in it (a neighbour's
    new face or fill may cover part of one that had passed), until all pass or are filled. `identities`:
    {detection: dlib vector of the original face} already computed (the anonymizer's `surrogate` runs
    dlib on the same box of the same `original`), filled in here where missing and handed to each step."""
    new = [j for j, s in chosen.items() if not s.judged]
    if not new:
        return
    embed = anon.replacer.embedder.embed
    identities = {} if identities is None else identities
    missing = [j for j in new if identities.get(j) is None]
    if missing:
        identities.update(zip(missing, embed(original, dets[missing])))
    before = {j: identities[j] for j in new}
    for _ in range(len(FALLBACKS) * len(new)):  # each round moves at least one face a step down the chain
        shown = [j for j in new if chosen[j].method != "solid"]
        if not shown:
            return
        failed = []
        for j, v in zip(shown, embed(published(rgb), dets[shown])):
            s = chosen[j]
            s.cosine = float(v @ before[j])
            s.judged = passes(s.cosine, anon.settings)
            if not s.judged:
                failed.append(j)
        if not failed:
            return
        for j in failed:
            chosen[j] = anon.surrogate(
                original,
                dets,
                j,
                media,
                regions[j],
                method=next_method(chosen[j].method),
                before=chosen[j],
                identities=identities,
            )
        rgb[:] = original
        anon.render(rgb, dets, regions, chosen)
