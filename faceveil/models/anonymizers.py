"""Anonymizers behind one interface: masks (solid, blur, mosaic) with box or ellipse masks, keyed
scrambling, identity replacement (replace: a generated face of another identity, one per track), and
keep (faces left as they are: a run that only removes physiological signals, `--pulse`).

Strength scales with face size; the masked region grows with face size and motion so a moving
head stays covered between detections.
Over 300 lines: one registry with each method's class beside the others (replace's fallback chain
is in models/fallback.py).
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from faceveil.models.detections import Detections
from faceveil.models.registry import Registry


@dataclass(frozen=True)
class MaskSettings:
    """shape: 'box' (default: an oval patch reads as a head to detectors, so they keep finding
    "faces" in anonymized video) or 'ellipse'; pad: extra margin as a fraction of face size on each
    side; motion_pad: extra margin per pixel/frame of head motion."""

    shape: str = "box"
    pad: float = 0.4
    motion_pad: float = 1.5
    scope: str = "face"  # face | head | person: what the masking methods cover around each face (models/scope)

    def __post_init__(self):
        from faceveil.models.scope import check_scope

        if self.shape not in ("ellipse", "box"):
            raise ValueError(f"mask shape must be 'ellipse' or 'box', got {self.shape!r}")
        check_scope(self.scope)


SCOPE_SIZE = {"head": 2.0, "person": 3.0}  # a scope's size over the face's: blur and mosaic strength follow it


def mask_regions(dets: Detections, width: int, height: int, mask: MaskSettings) -> np.ndarray:
    """Integer xyxy regions to anonymize: boxes grown by size and motion, clipped to the frame.
    An ellipse inscribed in the region still covers the face box (factor sqrt(2) on the half-axes)."""
    if not len(dets):
        return np.zeros((0, 4), np.int32)
    c = (dets.boxes[:, :2] + dets.boxes[:, 2:]) / 2
    half = (dets.boxes[:, 2:] - dets.boxes[:, :2]) / 2
    half = half + mask.pad * dets.sizes[:, None] + mask.motion_pad * np.abs(dets.motion)
    if mask.shape == "ellipse":
        half = half * np.float32(np.sqrt(2) * 0.85)
    r = np.concatenate([np.floor(c - half), np.ceil(c + half)], 1)
    r[:, [0, 2]] = r[:, [0, 2]].clip(0, width)
    r[:, [1, 3]] = r[:, [1, 3]].clip(0, height)
    return r.astype(np.int32)


class Anonymizer(ABC):
    """Replaces every face region of an RGB uint8 frame (in place) and returns the frame. Keyed
    methods (`needs_key`) take `region_key(j)`: the secret key of the j-th detection's region."""

    name: str = ""
    needs_key: bool = False
    scoped: bool = False  # covers a head or person scope (models/scope): the masking methods
    shows_faces: bool = False  # its output shows a face where the original was (replace)

    def __init__(self, mask: MaskSettings = MaskSettings()):
        if mask.scope != "face" and not self.scoped:
            raise ValueError(f"--scope {mask.scope} works with the masking methods (solid, blur, mosaic), "
                             f"not with {self.name or type(self).__name__}")
        self.mask = mask

    @abstractmethod
    def _replace(self, roi: np.ndarray, face_size: float, key: bytes | None) -> np.ndarray:
        """The anonymized version of `roi` (same shape)."""

    def regions(self, dets: Detections, width: int, height: int) -> np.ndarray:
        """The integer xyxy regions `apply` may change, one per detection (a head or person scope's
        extent around the face region)."""
        from faceveil.models.scope import scope_regions

        faces = mask_regions(dets, width, height, self.mask)
        return scope_regions(dets.boxes, dets.sizes, faces, self.mask.scope, width, height)

    def face_regions(self, dets: Detections, width: int, height: int) -> np.ndarray:
        """The face part of each region (the whole region under the face scope)."""
        return mask_regions(dets, width, height, self.mask)

    def _masks(self, rgb: np.ndarray, dets: Detections, regions: np.ndarray) -> list:
        """Per detection, the bool mask of its region's pixels to change (None: all of them; an ellipse
        mask takes its inscribed ellipse), from the frame before any change."""
        if self.mask.scope != "face":
            from faceveil.models.scope import scope_mask

            faces = mask_regions(dets, rgb.shape[1], rgb.shape[0], self.mask)
            return [scope_mask(rgb, dets.boxes[j], float(dets.sizes[j]), faces[j], regions[j], self.mask.scope)
                    for j in range(len(dets))]
        if self.mask.shape != "ellipse":
            return [None] * len(dets)
        masks = []
        for x1, y1, x2, y2 in regions:
            rh, rw = max(0, int(y2 - y1)), max(0, int(x2 - x1))
            m = np.zeros((rh, rw), np.uint8)
            cv2.ellipse(m, (((rw - 1) / 2, (rh - 1) / 2), (rw, rh), 0), 1, -1)
            masks.append(m.astype(bool))
        return masks

    def apply(self, rgb: np.ndarray, dets: Detections, region_key: Callable[[int], bytes] | None = None, *,
              media: str = "", preview: bool = False) -> np.ndarray:
        """`media`: the media the frame belongs to (methods that keep one surrogate per track scope
        their tracks by it); `preview`: a look at the frame as it will be (the second look), where
        such methods may take a cheaper path. Masks ignore both."""
        if self.needs_key and region_key is None:
            raise ValueError(f"the {self.name} method needs a key")
        h, w = rgb.shape[:2]
        regions = self.regions(dets, w, h)
        masks = self._masks(rgb, dets, regions)
        for j, ((x1, y1, x2, y2), size) in enumerate(zip(regions, dets.sizes)):
            if x2 <= x1 or y2 <= y1:
                continue
            roi = rgb[y1:y2, x1:x2]
            if self.mask.scope != "face":
                new = self._scoped(roi, masks[j], float(size) * SCOPE_SIZE[self.mask.scope])
            else:
                new = self._replace(roi, float(size), region_key(j) if self.needs_key else None)
            if masks[j] is None:
                roi[:] = new
            else:
                roi[masks[j]] = new[masks[j]]
        return rgb

    def _scoped(self, roi: np.ndarray, mask: np.ndarray, size: float) -> np.ndarray:
        """The anonymized `roi` under a head or person scope (`mask`: its pixels to change; `size`: the
        scope's size, so that strength follows the head or person, not the face alone)."""
        return self._replace(roi, size, None)


ANONYMIZERS: Registry[Anonymizer] = Registry("anonymization method")


@ANONYMIZERS.register("solid")
class Solid(Anonymizer):
    """A flat fill: the region's own mean colour by default (a black oval reads as a head to
    detectors and eyes alike), or a fixed colour."""

    name = "solid"
    scoped = True

    def __init__(self, mask: MaskSettings = MaskSettings(), colour: tuple[int, int, int] | None = None):
        super().__init__(mask)
        self.colour = None if colour is None else np.array(colour, np.uint8)

    def _replace(self, roi, face_size, key):
        colour = roi.reshape(-1, 3).mean(0).round().astype(np.uint8) if self.colour is None else self.colour
        return np.broadcast_to(colour, roi.shape)

    def _scoped(self, roi, mask, size):
        """Filled with the colour around the head or person (the region's pixels outside `mask`), so the
        fill carries none of their skin, hair or clothes."""
        around = roi[~mask]
        if self.colour is not None or not len(around):
            return self._replace(roi, size, None)
        return np.broadcast_to(around.mean(0).round().astype(np.uint8), roi.shape)


@ANONYMIZERS.register("blur")
class Blur(Anonymizer):
    """Gaussian blur with sigma proportional to face size (blur alone is attackable: see the report)."""

    name = "blur"
    scoped = True

    def __init__(self, mask: MaskSettings = MaskSettings(), strength: float = 0.25):
        super().__init__(mask)
        self.strength = strength

    def _replace(self, roi, face_size, key):
        sigma = max(2.0, self.strength * face_size)
        f = int(sigma // 8)  # a wide blur is the same at lower resolution, and far cheaper there
        if f < 2:
            return cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / f, sigmaY=sigma / f, borderType=cv2.BORDER_REPLICATE)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@ANONYMIZERS.register("mosaic")
class Mosaic(Anonymizer):
    """Pixelation with at most `blocks` blocks across the face, blocks of at least `min_block`
    pixels, and block contrast scaled by `contrast` around the region's mean: finer or full-contrast
    mosaics keep enough of a head's layout (dark hair over lighter skin) for a detector to find a
    face in them again."""

    name = "mosaic"
    scoped = True

    def __init__(self, mask: MaskSettings = MaskSettings(), blocks: int = 3, min_block: int = 10,
                 contrast: float = 0.45):
        super().__init__(mask)
        self.blocks, self.min_block, self.contrast = blocks, min_block, contrast

    def _replace(self, roi, face_size, key):
        block = max(self.min_block, int(round(face_size / self.blocks)))
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA).astype(np.float32)
        mean = small.reshape(-1, 3).mean(0)
        small = np.clip(mean + self.contrast * (small - mean) + 0.5, 0, 255).astype(np.uint8)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


@ANONYMIZERS.register("scramble")
class Scramble(Anonymizer):
    """Keyed block scrambling (see models/scramble.py): reveals no face without the key, inverts
    exactly with it on lossless output. Box masks only (an ellipse would cut blocks apart)."""

    name = "scramble"
    needs_key = True

    def __init__(self, mask: MaskSettings = MaskSettings(), block: int = 8):
        if mask.shape != "box":
            raise ValueError("the scramble method needs box masks")
        super().__init__(mask)
        self.block = block

    def _replace(self, roi, face_size, key):
        from faceveil.models.scramble import scramble

        return scramble(roi, key, self.block)


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

    def __init__(self, mask: MaskSettings = MaskSettings(), settings=None, generator: str = "dcgan-digiface",
                 generator_kwargs: dict | None = None, keep_media: int = 8):
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
                from faceveil.models.detectors import create_detector
                from faceveil.models.embedders import create_embedder
                from faceveil.models.generators import create_generator
                from faceveil.models.replace import Replacer

                self._replacer = Replacer(create_generator(self.generator_name, **self.generator_kwargs),
                                          create_detector("centerface"), create_embedder("dlib-resnet"), self.settings)
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
        return self.chain.person.surrogate(rgb, _landmarks(dets, 0), box, seed, others=others, original_id=identity,
                                           limit=region)

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

    def surrogate(self, rgb: np.ndarray, dets: Detections, j: int, media: str = "", region=None, preview: bool = False,
                  method: str = "replace", before=None):
        """Detection j's surrogate: its track's (made now if new), or one made for this face alone, by
        `method` of the fallback chain (`before`: the surrogate it replaces, whose pool face it avoids);
        "solid" for a face too small to judge."""
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
                ident = rep.embedder.embed(rgb, Detections(box[None], [1.0]))[0]
                others = np.array(faces.identities, np.float32).reshape(-1, ident.shape[0])
                avoid = faces.used | ({before.pool_index} if before is not None else set())
                start = self._start(faces, box) if method in ("replace", "replace-strong") else None
                s = self.chain.step(method, Face(rgb, lm, box, self._seed(media, dets, j), ident, others, avoid, region,
                                                 start))
                if before is None:
                    faces.identities.append(ident)
                else:
                    s.seconds += before.seconds
            if track >= 0:
                faces.surrogates[track] = s
                faces.used.add(s.pool_index)
            return s

    def apply(self, rgb: np.ndarray, dets: Detections, region_key=None, *, media: str = "", preview: bool = False) -> np.ndarray:
        h, w = rgb.shape[:2]
        regions = self.regions(dets, w, h)
        original = rgb.copy() if len(dets) else rgb  # each face is judged as it was, not after a neighbour's change
        chosen = {j: self.surrogate(original, dets, j, media, regions[j], preview) for j, (x1, y1, x2, y2)
                  in enumerate(regions) if x2 > x1 and y2 > y1}
        self.render(rgb, dets, regions, chosen)
        if not preview:
            from faceveil.models.fallback import judge

            judge(self, rgb, original, dets, regions, chosen, media)
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


@ANONYMIZERS.register("keep")
class Keep(Anonymizer):
    """Leaves every face visible (`--method keep`): the run only edits physiological signals."""

    name = "keep"

    def _replace(self, roi, face_size, key):
        return roi

    def apply(self, rgb, dets, region_key=None, *, media: str = "", preview: bool = False):
        return rgb


def _landmarks(dets: Detections, j: int) -> np.ndarray:
    """Detection j's 5 landmarks; where the detector gave none, a frontal face's in its box."""
    from faceveil.models.face_attributes import landmarks_from_box

    lm = dets.landmarks[j]
    return landmarks_from_box(dets.boxes[j]) if np.isnan(lm).any() else lm


def create_anonymizer(name: str, mask: MaskSettings = MaskSettings()) -> Anonymizer:
    return ANONYMIZERS.create(name, mask=mask)
