"""Settings of an anonymization run: one object handed from the CLI to the flow and its tasks. Over
300 lines: the user's fields, their documented defaults and checks, and their resolution into what
tasks read (`AnonymizeConfig.settings`) belong together (one place that says what a setting means in a
run); the resolved values' type, `Resolved`, is in faceveil/resolved_settings.py."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property

from faceveil.models.anonymizers import MaskSettings
from faceveil.models.detectors.base import DetectorSettings
from faceveil.resolved_settings import Resolved
from faceveil.storage.keys import VaultLock

# with tracking, detections down to this share of the threshold continue tracks (or make one, seen often)
TRACK_FLOOR = 0.5
PULSE_METHODS = ("keep", "replace")  # the methods that leave a face's skin visible
SECOND_PASS_MARGIN = 0.7  # the second pass's gate detectors look this far below the gate's thresholds
REPLACE_CHECKED_FRAMES = 5  # method "replace": at least this many checked frames per video (identity stability)

# Settings that change the output; a finished media is redone only when one of these changes.
OUTPUT_SETTINGS = (
    "method",
    "detector",
    "precision",
    "threshold",
    "min_size",
    "scale",
    "detect_every",
    "detect_fps",
    "detect_mpx_per_s",
    "mask_shape",
    "pad",
    "motion_pad",
    "max_gap",
    "extend",
    "lossless",
    "crf",
    "preset",
    "track",
    "reversible",
    "second_look",
    "index",
    "embedder",
)


@dataclass(frozen=True)
class RunState:
    """What the run sets, never the user (no flag or config key; AnonymizeConfig.for_run): the leak
    gate's second pass (True, or the gate's detector families that found the leaks, run beside the
    main one) and how identity templates are embedded (the archive's index keeps its own view)."""

    second_pass: bool | tuple = False
    template_view: str = "mirror-mean"  # models/track_templates


class ClusterOptions:
    """What a run's config says about its Dask cluster (anonymize's and restore's alike)."""

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def dask_tls(self) -> tuple[str | None, str | None, str | None]:
        return self.dask_tls_ca, self.dask_tls_cert, self.dask_tls_key


@dataclass
class AnonymizeConfig(ClusterOptions):
    """src/dest: local folders or s3://bucket/prefix. The detector looks at every video frame while
    that costs at most `detect_mpx_per_s` megapixels per second of video, else at fewer frames but
    never fewer than `detect_fps` per second (`detect_every` fixes the step instead); the tracker
    covers the frames in between and `extend` frames around each track."""

    src: str
    dest: str
    state: str | None = None  # the private state root (default: <dest>.faceveil-private beside DEST; storage/state.py)
    method: str = "mosaic"
    detector: str = "centerface"
    precision: str = "auto"  # the detector's arithmetic: auto (bf16 on CPUs with it, else fp32), fp32, bf16 or int8
    threshold: float | None = None
    min_size: float = 0.0
    scale: float = 1.0
    detect_every: int | None = None  # default: from detect_fps and detect_mpx_per_s; 1 (every frame) with track off
    detect_fps: float = 7.5
    detect_mpx_per_s: float = 6.0
    track: bool = True  # off: no tracker, every frame detected (detect_every None means 1; > 1 is refused)
    second_look: float = 0.5  # detector scale of the look at each anonymized frame with faces; 0 = off (keep: off)
    mask_shape: str = "box"
    scope: str = "face"  # face | head | person: what the masking methods cover around a face (models/scope)
    pad: float = 0.4
    motion_pad: float = 1.5
    max_gap: int = 10
    extend: int | None = None  # default: 2 * (frames between detections) + 2
    lossless: bool = False
    crf: int = 18
    preset: str = "veryfast"
    chunk_seconds: float = 30.0
    min_chunk_seconds: float = 4.0
    workers: int | None = None
    threads_per_worker: int = 1
    dask_address: str | None = None
    dask_tls_ca: str | None = None  # with a tls:// dask_address: the cluster's CA, the client's certificate and key
    dask_tls_cert: str | None = None  # (files; default: Dask's config distributed.comm.tls.*)
    dask_tls_key: str | None = None
    gpu_workers: bool = False  # the GPU tasks ask Dask for a worker resource GPU=1 (`dask worker --resources GPU=1`)
    max_bytes: int = 64 * 2**30
    max_pixels: int = 8192 * 8192
    storage_options: dict = field(default_factory=dict)  # fsspec's, e.g. S3 credentials (never in a config file)
    scratch_dir: str | None = None
    # seal every original face region in the state root's vault/ (default: on for scramble, whose blocks are
    # keyed by the vault's data keys, else off; scramble with reversible False is refused). Read `sealed`.
    reversible: bool | None = None
    vault_lock: VaultLock | None = None  # the master key's public part (never the key itself; a dict after Prefect)
    index: bool | None = None  # identity templates per track into the state root's index/ (default: `sealed`)
    embedder: str = "dlib-resnet"
    check_every_s: float = 4.0  # privacy/utility check of one output frame per this many seconds (0 = none; keep: none)
    check_max_frames: int = 30  # at most this many checked frames per media
    max_leak: float = 0.0  # unmasked faces the leak gate may find, per face checked, before a media is withheld
    recheck: bool = True  # a media that leaked is anonymized once more, denser (with the gate's detectors that found
    # the leaks; method keep: off)
    tracking_uri: str | None = None  # MLflow; default: sqlite under the state root's mlflow/ (local state root)
    mlflow_artifacts: str | None = None  # MLflow's artifact root, e.g. s3://bucket/prefix (default: beside the store)
    # method "replace": generator (name), checkpoint, checkpoint_sha256, id_margin, pool_seed (all optional)
    replace_options: dict = field(default_factory=dict)
    pulse: str | None = None  # "scrub" | "target:BPM": the rPPG pulse edit of visible faces (keep, replace); normalised
    run_state: RunState = field(
        default_factory=RunState
    )  # not a setting: the run's own (for_run; a dict after Prefect)

    def __post_init__(self):
        from faceveil.storage.state import check_apart, default_state_url

        if isinstance(self.vault_lock, dict):  # after a round trip through Prefect's parameters
            self.vault_lock = VaultLock(**self.vault_lock)
        if isinstance(self.run_state, dict):  # likewise (a tuple comes back a list)
            sp = self.run_state.get("second_pass", False)
            self.run_state = RunState(**self.run_state | {"second_pass": tuple(sp) if isinstance(sp, list) else sp})
        if self.state is None:
            self.state = default_state_url(self.dest)
        check_apart(self.dest, self.state, self.src)
        if not 0.0 <= self.max_leak <= 1.0:
            raise ValueError(
                f"max_leak is a fraction of the faces checked, from 0 to 1 (got {self.max_leak}; "
                "the command line's --max-leak takes percent)"
            )
        if self.method == "scramble" and self.reversible is False:
            raise ValueError(
                "--method scramble seals every face (its blocks are keyed by the vault's data keys): "
                "it cannot go with reversible = false; drop one of them"
            )
        if self.index is None:
            self.index = self.sealed
        if self.index and not self.sealed:
            raise ValueError(
                "the identity index needs --reversible (its templates are keyed, and restore needs the vault)"
            )
        if self.sealed and self.vault_lock is None:
            raise ValueError(f"{'the scramble method' if self.method == 'scramble' else '--reversible'} needs a key")
        if self.detect_every is not None and self.detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        if not self.track and (self.detect_every or 1) > 1:
            raise ValueError(
                f"--no-track detects on every frame: it cannot go with --detect-every {self.detect_every} "
                "(track = false, detect_every); drop one of them"
            )
        if self.detect_fps <= 0:
            raise ValueError("detect_fps must be > 0")
        self._check_pulse()
        if self.gpu_workers and not self.dask_address:
            raise ValueError(
                "--gpu-workers needs --dask-address: the GPU tasks only run on workers started with "
                "`dask worker --resources GPU=1`, and a local cluster has none"
            )

    def _check_pulse(self) -> None:
        """`--method keep` shows faces on purpose: the leak gate's checks (which would call every face
        a leak), its recheck and the second look are off whatever check_every_s, second_look and
        recheck say (`checks_on`; the fields stay as given), nothing is sealed; the media rows say
        method keep. A pulse edit needs faces left visible (keep, replace): under a mask there is no
        pulse to edit."""
        from faceveil.models.rppg.edit import PulseSettings

        parsed = PulseSettings.parse(self.pulse) if self.pulse is not None else None
        self.pulse = parsed.spec() if parsed else None
        if self.method == "keep":
            if self.reversible:
                raise ValueError("--method keep leaves faces visible: there is nothing to seal (drop --reversible)")
        if self.pulse and self.method not in PULSE_METHODS:
            raise ValueError(
                f"--pulse edits visible skin: use it with --method {' or '.join(PULSE_METHODS)}, "
                f"not {self.method} (its mask already hides the pulse)"
            )

    def for_run(self, **state) -> AnonymizeConfig:
        """A copy whose run state (RunState's fields) is changed; the user's settings stay as they are."""
        return replace(self, run_state=replace(self.run_state, **state))

    @property
    def sealed(self) -> bool:
        """Whether original faces are sealed into the vault: `reversible`, by default on for scramble."""
        return self.method == "scramble" if self.reversible is None else self.reversible

    @property
    def checks_on(self) -> bool:
        """False for method keep (see _check_pulse): no checks, second look or recheck, whatever the fields say."""
        return self.method != "keep"

    # The run's values of the settings above (the fields stay as the user gave them); every reader uses these.
    @property
    def run_check_every_s(self) -> float:
        return self.check_every_s if self.checks_on else 0.0

    @property
    def run_second_look(self) -> float:
        return self.second_look if self.checks_on else 0.0

    @property
    def run_recheck(self) -> bool:
        return self.recheck and self.checks_on

    @property
    def run_detect_every(self) -> int | None:
        """`detect_every`; 1 with track off (the default then: every frame)."""
        return self.detect_every if self.track else 1

    def gate_off(self) -> str | None:
        """Why the leak gate cannot withhold anything in this run (said in the summary and the report),
        or None when it is on."""
        if self.method == "keep":
            return "--method keep: faces are left visible on purpose, nothing is checked"
        if self.run_check_every_s <= 0:
            return "no output frame is checked (--check-every 0)"
        if self.max_leak >= 1.0:
            return "--max-leak 100%: any share of unmasked faces is let through"
        return None

    def check_settings(self):
        """The checks; the leak gate's CenterFace looks below the anonymizer's threshold, BlazeFace
        (another family) at its own. Identity replacement checks at least REPLACE_CHECKED_FRAMES
        frames of a video: its identity stability along a track needs consecutive checked faces."""
        from faceveil.validation.privacy import CheckSettings

        gate, confirm = dict(CheckSettings.gate), dict(CheckSettings.confirm)
        if self.detector == "centerface":
            gate["centerface"] = min(gate["centerface"], 0.75 * self.detector_threshold())
            confirm["centerface"] = min(confirm["centerface"], self.detector_threshold())
        return CheckSettings(
            self.run_check_every_s,
            self.check_max_frames,
            gate=tuple(gate.items()),
            confirm=tuple(confirm.items()),
            min_frames=REPLACE_CHECKED_FRAMES if self.method == "replace" else 1,
            replaced=self.method == "replace",
        )

    def extra_detectors(self) -> tuple[tuple[str, DetectorSettings], ...]:
        """Detectors that find faces beside the main one: on the second pass, the leak gate's other
        families at SECOND_PASS_MARGIN of the thresholds it confirms a leak at (those that found
        the leaks, when RunState.second_pass names them), so whatever the gate would call a face is
        masked (compression moves a borderline score a little), at the cost of masking a few
        non-faces. The main detector's family is not run twice: its floor drops instead (detector_settings)."""
        second = self.run_state.second_pass
        if not second:
            return ()
        threads = self.detector_settings().threads
        return tuple(
            (name, DetectorSettings(threshold=SECOND_PASS_MARGIN * t, threads=threads))
            for name, t in self.check_settings().confirm
            if name != self.detector and (second is True or name in second)
        )

    def detector_threshold(self) -> float:
        from faceveil.models.detectors import DETECTORS

        return self.threshold if self.threshold is not None else DETECTORS.get(self.detector).default_threshold

    def detector_settings(self) -> DetectorSettings:
        """The main detector. With tracking it reports faces down to TRACK_FLOOR x the threshold: those
        below the threshold keep an existing track alive (a face whose score flickers around the
        threshold stays masked) and make a track of their own only when seen again and again
        (TrackerSettings.confirm_hits). Identity replacement detects in fp32 under "auto": its
        generator is fitted to the detector's landmarks, and detection is not its cost."""
        threads = max(1, (os.cpu_count() or 1) // self.n_workers) if not self.dask_address else 0
        floor = TRACK_FLOOR * self.detector_threshold() if self.track else self.threshold
        if self.run_state.second_pass:  # down to where the gate's own use of this family would see a face
            own = dict(self.check_settings().confirm).get(self.detector)
            if own is not None:
                floor = min(floor if floor is not None else self.detector_threshold(), SECOND_PASS_MARGIN * own)
        precision = (
            "fp32" if self.precision == "auto" and self.method == "replace" else self.precision
        )  # see the docstring
        return DetectorSettings(floor, self.min_size, self.scale, threads, precision)

    def second_look_settings(self) -> DetectorSettings | None:
        if not self.run_second_look:
            return None
        d = self.detector_settings()
        return DetectorSettings(self.threshold, d.min_size, d.scale * self.run_second_look, d.threads, d.precision)

    @cached_property
    def settings(self) -> Resolved:
        """Every derived setting of the run, from the user's settings and the run state, computed once
        (a changed config is a new object: `dataclasses.replace`, `for_run`)."""
        return Resolved(
            self.detector,
            self.detector_settings(),
            self.second_look_settings(),
            self.extra_detectors(),
            self.detector_threshold(),
            self.method,
            self.mask_settings(),
            self.embedder,
            self.run_state.template_view,
            self.check_settings(),
            self.run_detect_every,
            self.detect_fps,
            self.detect_mpx_per_s,
            self.run_state.second_pass,
            self.track,
            self.max_gap,
            self.extend,
            tuple(sorted(self.replace_options.items())) if self.method == "replace" else (),
            self.pulse,
        )

    def mask_settings(self) -> MaskSettings:
        return MaskSettings(self.mask_shape, self.pad, self.motion_pad, self.scope)

    def output_settings(self) -> dict:
        """The settings that shape the output, with the values the run uses (those hashed before the
        defaults became explicit: a changed dict would redo every archive)."""
        d = asdict(self) | {
            "reversible": self.sealed,
            "detect_every": self.run_detect_every,
            "second_look": self.run_second_look,
        }
        out = {k: d[k] for k in OUTPUT_SETTINGS}
        if self.method == "replace" and self.replace_options:  # only then: other runs keep their settings hash
            out["replace_options"] = dict(sorted(self.replace_options.items()))
        if self.method == "replace":  # the fallback chain shapes the output: photos of runs before it are redone
            from faceveil.models.fallback import FALLBACKS

            out["fallbacks"] = list(FALLBACKS)
        if self.pulse:  # only then: runs without it keep their settings hash
            out["pulse"] = self.pulse
        if self.scope != "face":  # likewise
            out["scope"] = self.scope
        return out

    def output_settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.output_settings(), sort_keys=True).encode()).hexdigest()[:16]
