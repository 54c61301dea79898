"""Identity replacement as an anonymizer (`--method replace`): one surrogate per track, judged in the
whole frame (the fallback chain: models/fallback); the face generator and search are models/replace."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from faceveil.models.anonymizers.base import ANONYMIZERS, Anonymizer, MaskSettings
from faceveil.models.anonymizers.masks import Solid
from faceveil.models.detections import Detections


REPLACER_DETECTOR_THREADS = 1  # CenterFace on one thread in the search: its inputs (a generated face on a
# 256 px canvas, a crop around one face) are too small to split, and on a busy 2-core machine onnxruntime's
# second spinning thread took 0.08-0.09 CPU s per 400 px crop against 0.05 on one (wall alike)


@dataclass
class _MediaFaces:
    """One media's people under `replace`: each track's surrogate, the original identities seen (no
    one's surrogate may resemble any of them) and the pool faces already given to someone."""

    surrogates: dict = field(default_factory=dict)
    identities: list = field(default_factory=list)
    used: set = field(default_factory=set)
    starts: list = field(default_factory=list)  # (box, Surrogate): the person's surrogate from another photo


@ANONYMIZERS.register("replace")
class Replace(Anonymizer):
    """Identity replacement (models/replace.py): each face is replaced by a generated face of another
    identity that keeps its pose, expression, skin colour and blur, blended inside a landmark ellipse
    (nothing outside it changes). One surrogate per track: the first frame a track is seen in makes its
    surrogate (seeded by pool seed, media and track, so a re-run makes the same one), later frames put
    the same face back at the track's landmarks. Within a media, no two tracks get the same pool face
    and no surrogate comes within the identity margin of anyone seen there. Faces without a track are
    made one by one; `preview` (the second look) puts the paired pool face back without optimising.
    Each new surrogate is judged in the whole frame once every face is in: a face still within the
    margin of its person gets the next method of the fallback chain (models/fallback: stronger search,
    a generated face, the region filled), and a face too small to judge is filled straight away.

    `generator`/`generator_kwargs`: models/generators (default the DCGAN that ships in
    gan-face-generate: non-commercial research only, see `licence`); `settings`: ReplaceSettings."""

    name = "replace"
    shows_faces = True

    def __init__(
        self,
        mask: MaskSettings = MaskSettings(),
        settings=None,
        generator: str = "dcgan-digiface",
        generator_kwargs: dict | None = None,
        keep_media: int = 8,
    ):
        from faceveil.models.replace import ReplaceSettings

        super().__init__(mask)
        self.settings = settings or ReplaceSettings()
        self.generator_name, self.generator_kwargs = generator, dict(generator_kwargs or {})
        self.keep_media = keep_media
        self._replacer = self._chain = None
        self._media: OrderedDict[str, _MediaFaces] = OrderedDict()
        self._lock = threading.RLock()

    def _replace(self, roi, face_size, key):
        raise NotImplementedError("replace works on whole frames: use apply")

    def __getstate__(self):  # models load again where the anonymizer is unpickled; surrogates stay behind
        return {**self.__dict__, "_replacer": None, "_chain": None, "_media": OrderedDict(), "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.RLock())

    @property
    def replacer(self):
        with self._lock:
            if self._replacer is None:
                from faceveil.models.detectors import DetectorSettings, create_detector
                from faceveil.models.embedders import create_embedder
                from faceveil.models.generators import create_generator
                from faceveil.models.replace import Replacer

                self._replacer = Replacer(
                    create_generator(self.generator_name, **self.generator_kwargs),
                    create_detector("centerface", DetectorSettings(threads=REPLACER_DETECTOR_THREADS)),
                    create_embedder("dlib-resnet"),
                    self.settings,
                )
            return self._replacer

    @property
    def licence(self) -> str:
        return self.replacer.generator.licence

    def load(self) -> None:
        """Loads the models and builds the pool of generated faces now (otherwise on first use)."""
        _ = self.replacer.pool

    def _faces_of(self, media: str) -> _MediaFaces:
        faces = self._media.pop(media, None) or _MediaFaces()
        self._media[media] = faces  # most recent last
        while len(self._media) > self.keep_media:
            self._media.popitem(last=False)
        return faces

    def expect(self, media: str, people: list) -> None:
        """A photo's look starts afresh (its surrogates of an earlier look dropped: the second pass numbers
        its faces anew). `people`: its faces that belong to a person who already has a surrogate (made
        from another photo of them), (box, Surrogate) pairs; a face found at such a box starts from that
        surrogate, so one person keeps one fake identity across a dataset (Replacer.surrogate's `start`)."""
        with self._lock:
            self._media.pop(media, None)
            self._faces_of(media).starts = list(people)

    def person_surrogate(self, rgb: np.ndarray, box, landmarks, identity: np.ndarray, others: np.ndarray, seed: int):
        """The one surrogate of a person, made from their best face (`box`, `landmarks`, its identity
        vector) in `rgb`, kept away from `others` (every person of the dataset): for `expect`."""
        box = np.asarray(box, np.float32)
        dets = Detections(box[None], [1.0], np.asarray(landmarks, np.float32)[None])
        region = self.regions(dets, rgb.shape[1], rgb.shape[0])[0]
        return self.chain.person.surrogate(
            rgb, _landmarks(dets, 0), box, seed, others=others, original_id=identity, limit=region
        )

    def _start(self, faces: _MediaFaces, box: np.ndarray):
        from faceveil.models.detections import iou_matrix

        if not faces.starts:
            return None
        iou = iou_matrix(np.asarray(box, np.float32)[None], np.array([b for b, _ in faces.starts], np.float32))[0]
        k = int(np.argmax(iou))
        return faces.starts[k][1] if iou[k] >= 0.5 else None

    def surrogates(self, media: str = "") -> dict:
        """{track: Surrogate} made so far for this media (of the last `keep_media` media)."""
        with self._lock:
            return dict(self._media[media].surrogates) if media in self._media else {}

    @property
    def chain(self):
        """The fallback chain's steps (models/fallback) over this anonymizer's replacer."""
        with self._lock:
            if self._chain is None:
                from faceveil.models.fallback import Chain

                self._chain = Chain(self.replacer)
            return self._chain

    def _seed(self, media: str, dets: Detections, j: int) -> int:
        from faceveil.models.replace import track_seed

        track = int(dets.track_ids[j])
        key = track if track >= 0 else ("untracked", *np.round(dets.boxes[j]).astype(int).tolist())
        return track_seed(self.settings.pool_seed, media, key)

    def surrogate(
        self,
        rgb: np.ndarray,
        dets: Detections,
        j: int,
        media: str = "",
        region=None,
        preview: bool = False,
        method: str = "replace",
        before=None,
        identities: dict | None = None,
    ):
        """Detection j's surrogate: its track's (made now if new), or one made for this face alone, by
        `method` of the fallback chain (`before`: the surrogate it replaces, whose pool face it avoids);
        "solid" for a face too small to judge. `identities`: {detection: original identity vector} of
        this frame, read and filled here (one dlib run per face however many steps it takes, and
        `judge` reuses them)."""
        from faceveil.models.face_attributes import face_attributes
        from faceveil.models.fallback import MIN_JUDGED_SIZE, Face, solid
        from faceveil.models.replace import Surrogate

        rep = self.replacer
        lm = _landmarks(dets, j)
        track = int(dets.track_ids[j])
        small = float(dets.sizes[j]) < MIN_JUDGED_SIZE
        with self._lock:
            if preview:
                if track >= 0 and media in self._media and track in self._media[media].surrogates:
                    return self._media[media].surrogates[track]
                if small:
                    return solid(0)
                idx = rep.pair(face_attributes(rgb, lm), np.zeros((0, 128), np.float32))
                face = rep.pool[idx]
                return Surrogate(face.latent, face.image, face.landmarks, idx, 0)
            faces = self._faces_of(media)
            if before is None and track >= 0 and track in faces.surrogates:
                return faces.surrogates[track]
            box = dets.boxes[j]
            if small:
                s = solid(self._seed(media, dets, j))
            else:
                ident = None if identities is None else identities.get(j)
                if ident is None:
                    ident = rep.embedder.embed(rgb, Detections(box[None], [1.0]))[0]
                    if identities is not None:
                        identities[j] = ident
                others = np.array(faces.identities, np.float32).reshape(-1, ident.shape[0])
                avoid = faces.used | ({before.pool_index} if before is not None else set())
                start = self._start(faces, box) if method in ("replace", "replace-strong") else None
                s = self.chain.step(
                    method, Face(rgb, lm, box, self._seed(media, dets, j), ident, others, avoid, region, start)
                )
                if before is None:
                    faces.identities.append(ident)
                else:
                    s.seconds += before.seconds
            if track >= 0:
                faces.surrogates[track] = s
                faces.used.add(s.pool_index)
            return s

    def apply(
        self, rgb: np.ndarray, dets: Detections, region_key=None, *, media: str = "", preview: bool = False
    ) -> np.ndarray:
        h, w = rgb.shape[:2]
        regions = self.regions(dets, w, h)
        original = rgb.copy() if len(dets) else rgb  # each face is judged as it was, not after a neighbour's change
        identities: dict = {}  # the original faces' dlib vectors, each computed once (surrogate, judge)
        chosen = {
            j: self.surrogate(original, dets, j, media, regions[j], preview, identities=identities)
            for j, (x1, y1, x2, y2) in enumerate(regions)
            if x2 > x1 and y2 > y1
        }
        self.render(rgb, dets, regions, chosen)
        if not preview:
            from faceveil.models.fallback import judge

            judge(self, rgb, original, dets, regions, chosen, media, identities=identities)
        return rgb

    def render(self, rgb: np.ndarray, dets: Detections, regions: np.ndarray, chosen: dict) -> None:
        """Puts each chosen surrogate back; then fills the regions of the "solid" ones (over any
        neighbour's face put back there)."""
        for j, s in chosen.items():
            if s.method != "solid":
                self.replacer.render(rgb, _landmarks(dets, j), s, limit=regions[j])
        filled = [j for j, s in chosen.items() if s.method == "solid"]
        if filled:
            Solid(self.mask).apply(rgb, dets[filled])


def _landmarks(dets: Detections, j: int) -> np.ndarray:
    """Detection j's 5 landmarks; where the detector gave none, a frontal face's in its box."""
    from faceveil.models.face_attributes import landmarks_from_box

    lm = dets.landmarks[j]
    return landmarks_from_box(dets.boxes[j]) if np.isnan(lm).any() else lm
