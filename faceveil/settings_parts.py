"""The parts of an anonymization run's settings, one small frozen dataclass per concern, composed by
AnonymizeConfig (faceveil/config.py): detection, masking, encoding, cluster, sealing and checks. Each
part checks its own fields (an error names the field); rules across parts stay on AnonymizeConfig.
`PART_OF` is the one table from a flat key (a field name: the command line's settings, a config
file's top-level keys, `AnonymizeConfig.of`) to the part that holds it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from faceveil.storage.keys import VaultLock

PRECISIONS = ("auto", "fp32", "bf16", "int8")


def _need(ok: bool, name: str, rule: str, value) -> None:
    if not ok:
        raise ValueError(f"{name} {rule} (got {value!r})")


@dataclass(frozen=True)
class DetectionSettings:
    """What finds faces. The detector looks at every video frame while that costs at most
    `detect_mpx_per_s` megapixels per second of video, else at fewer frames but never fewer than
    `detect_fps` per second (`detect_every` fixes the step instead); the tracker covers the frames in
    between and `extend` frames around each track."""

    detector: str = "centerface"
    precision: str = "auto"  # the detector's arithmetic: auto (bf16 on CPUs with it, else fp32), fp32, bf16 or int8
    threshold: float | None = None  # default: the detector's own
    min_size: float = 0.0
    scale: float = 1.0
    detect_every: int | None = None  # default: from detect_fps and detect_mpx_per_s; 1 (every frame) with track off
    detect_fps: float = 7.5
    detect_mpx_per_s: float = 6.0
    track: bool = True  # off: no tracker, every frame detected (detect_every None means 1; > 1 is refused)
    second_look: float = 0.5  # detector scale of the look at each anonymized frame with faces; 0 = off (keep: off)
    max_gap: int = 10
    extend: int | None = None  # default: 2 * (frames between detections) + 2

    def __post_init__(self):
        _need(self.precision in PRECISIONS, "precision", f"is one of {', '.join(PRECISIONS)}", self.precision)
        _need(self.threshold is None or 0.0 <= self.threshold <= 1.0, "threshold", "is from 0 to 1", self.threshold)
        _need(self.min_size >= 0, "min_size", "must be >= 0", self.min_size)
        _need(self.scale > 0, "scale", "must be > 0", self.scale)
        if self.detect_every is not None and self.detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        if self.detect_fps <= 0:
            raise ValueError("detect_fps must be > 0")
        _need(self.detect_mpx_per_s > 0, "detect_mpx_per_s", "must be > 0", self.detect_mpx_per_s)
        _need(self.second_look >= 0, "second_look", "must be >= 0 (0 = off)", self.second_look)
        _need(self.max_gap >= 0, "max_gap", "must be >= 0", self.max_gap)
        _need(self.extend is None or self.extend >= 0, "extend", "must be >= 0", self.extend)


@dataclass(frozen=True)
class MaskingSettings:
    """How a face found is anonymized: the method, the shape and scope it covers, its margins, the
    replace method's options and the rPPG pulse edit of faces left visible."""

    method: str = "mosaic"
    mask_shape: str = "box"
    scope: str = "face"  # face | head | person: what the masking methods cover around a face (models/scope)
    pad: float = 0.4
    motion_pad: float = 1.5
    # method "replace": generator (name), checkpoint, checkpoint_sha256, id_margin, pool_seed (all optional)
    replace_options: dict = field(default_factory=dict)
    # "scrub" | "target:BPM": the rPPG pulse edit of visible faces (keep, replace); kept in its normal spelling
    pulse: str | None = None

    def __post_init__(self):
        from faceveil.models.rppg.edit import PulseSettings

        _need(self.mask_shape in ("box", "ellipse"), "mask_shape", "is box or ellipse", self.mask_shape)
        _need(self.scope in ("face", "head", "person"), "scope", "is face, head or person", self.scope)
        _need(self.pad >= 0, "pad", "must be >= 0", self.pad)
        _need(self.motion_pad >= 0, "motion_pad", "must be >= 0", self.motion_pad)
        if self.pulse is not None:  # one spelling ("target:90.0" is "target:90"; "off" or "" is None)
            parsed = PulseSettings.parse(self.pulse)
            object.__setattr__(self, "pulse", parsed.spec() if parsed else None)


@dataclass(frozen=True)
class EncodingSettings:
    """How outputs are written, and what inputs are taken (chunks of video; size limits)."""

    lossless: bool = False
    crf: int = 18
    preset: str = "veryfast"
    chunk_seconds: float = 30.0
    min_chunk_seconds: float = 4.0
    max_bytes: int = 64 * 2**30
    max_pixels: int = 8192 * 8192

    def __post_init__(self):
        _need(0 <= self.crf <= 63, "crf", "is from 0 to 63", self.crf)
        _need(self.chunk_seconds > 0, "chunk_seconds", "must be > 0", self.chunk_seconds)
        _need(self.min_chunk_seconds >= 0, "min_chunk_seconds", "must be >= 0", self.min_chunk_seconds)
        _need(self.max_bytes > 0, "max_bytes", "must be > 0", self.max_bytes)
        _need(self.max_pixels > 0, "max_pixels", "must be > 0", self.max_pixels)


@dataclass(frozen=True)
class ClusterSettings:
    """Where the run's tasks run: a local Dask cluster of `workers` (default: one per CPU), or the
    scheduler at `dask_address`."""

    workers: int | None = None
    threads_per_worker: int = 1
    dask_address: str | None = None
    dask_tls_ca: str | None = None  # with a tls:// dask_address: the cluster's CA, the client's certificate and key
    dask_tls_cert: str | None = None  # (files; default: Dask's config distributed.comm.tls.*)
    dask_tls_key: str | None = None
    gpu_workers: bool = False  # the GPU tasks ask Dask for a worker resource GPU=1 (`dask worker --resources GPU=1`)
    scratch_dir: str | None = None

    def __post_init__(self):
        _need(self.workers is None or self.workers >= 1, "workers", "must be >= 1", self.workers)
        _need(self.threads_per_worker >= 1, "threads_per_worker", "must be >= 1", self.threads_per_worker)

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def dask_tls(self) -> tuple[str | None, str | None, str | None]:
        return self.dask_tls_ca, self.dask_tls_cert, self.dask_tls_key


@dataclass(frozen=True)
class SealingSettings:
    """What is kept, keyed, in the private state root: the original faces sealed in its vault/
    (`reversible`; default: on for scramble, whose blocks are keyed by the vault's data keys, else
    off; read AnonymizeConfig.sealed) and identity templates per track in its index/ (`index`;
    default: AnonymizeConfig.sealed, set when the config is made), embedded by `embedder`."""

    reversible: bool | None = None
    vault_lock: VaultLock | None = None  # the master key's public part (never the key itself; a dict after Prefect)
    index: bool | None = None
    embedder: str = "dlib-resnet"

    def __post_init__(self):
        if isinstance(self.vault_lock, dict):  # after a round trip through Prefect's parameters
            object.__setattr__(self, "vault_lock", VaultLock(**self.vault_lock))


@dataclass(frozen=True)
class ChecksSettings:
    """The leak gate: one output frame checked per `check_every_s` seconds (0 = none), at most
    `check_max_frames` per media; a media whose unmasked faces exceed `max_leak` (a fraction of the
    faces checked) is withheld, or with `recheck` anonymized once more, denser (with the gate's
    detectors that found the leaks). Method keep: all off (AnonymizeConfig.checks_on)."""

    check_every_s: float = 4.0
    check_max_frames: int = 30
    max_leak: float = 0.0
    recheck: bool = True

    def __post_init__(self):
        _need(self.check_every_s >= 0, "check_every_s", "must be >= 0 (0 = none)", self.check_every_s)
        _need(self.check_max_frames >= 1, "check_max_frames", "must be >= 1", self.check_max_frames)
        if not 0.0 <= self.max_leak <= 1.0:
            raise ValueError(
                f"max_leak is a fraction of the faces checked, from 0 to 1 (got {self.max_leak}; "
                "the command line's --max-leak takes percent)"
            )


# AnonymizeConfig's attribute -> the part's type (also the config file's [section] names)
PARTS = {
    "detection": DetectionSettings,
    "masking": MaskingSettings,
    "encoding": EncodingSettings,
    "cluster": ClusterSettings,
    "sealing": SealingSettings,
    "checks": ChecksSettings,
}

# the one table: a flat key -> the part that holds it (keys unique across parts)
PART_OF = {f.name: part for part, cls in PARTS.items() for f in dataclasses.fields(cls)}
assert len(PART_OF) == sum(len(dataclasses.fields(c)) for c in PARTS.values()), "a key in two parts"


def setting_path(key: str) -> str:
    """Where a flat key is read on AnonymizeConfig: "detection.threshold", or the key itself (src, state...)."""
    return f"{PART_OF[key]}.{key}" if key in PART_OF else key


def part_from(cls, value):
    """A part from itself or from the dict it became in Prefect's parameters (lists back to tuples)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    raise TypeError(f"expected {cls.__name__} or a dict of its fields, not {type(value).__name__}")


def split_flat(flat: dict, top: tuple[str, ...]) -> tuple[dict, dict[str, dict]]:
    """(the composing object's own keys, {part: {field: value}}) of flat keys; an unknown key is an
    error naming it."""
    own, parts = {}, {p: {} for p in PARTS}
    for key, value in flat.items():
        if key in PART_OF:
            parts[PART_OF[key]][key] = value
        elif key in top:
            own[key] = value
        else:
            raise TypeError(f"unknown setting {key!r} (settings: {', '.join(sorted([*top, *PART_OF]))})")
    return own, parts
