"""Settings of an anonymization run: one object handed from the CLI to the flow and its tasks,
composed of small frozen parts (faceveil/settings_parts.py: each checks its own fields). Over
300 lines: the rules across parts, the documented defaults that depend on another part, and their
resolution into what tasks read (`AnonymizeConfig.settings`) belong together (one place that says
what a setting means in a run); the resolved values' type, `Resolved`, is in faceveil/resolved_settings.py."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from functools import cached_property

from faceveil.models.anonymizers import MaskSettings
from faceveil.models.detectors.base import DetectorSettings
from faceveil.resolved_settings import Resolved
from faceveil.settings_parts import (
    PARTS,
    ChecksSettings,
    ClusterSettings,
    DetectionSettings,
    EncodingSettings,
    MaskingSettings,
    SealingSettings,
    part_from,
    split_flat,
)

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
# the composing object's own keys beside src and dest (the locations)
OWN_KEYS = ("state", "storage_options", "tracking_uri", "mlflow_artifacts")


@dataclass(frozen=True)
class RunState:
    """What the run sets, never the user (no flag or config key; AnonymizeConfig.for_run): the leak
    gate's second pass (True, or the gate's detector families that found the leaks, run beside the
    main one) and how identity templates are embedded (the archive's index keeps its own view)."""

    second_pass: bool | tuple = False
    template_view: str = "mirror-mean"  # models/track_templates


@dataclass
class AnonymizeConfig:
    """src/dest: local folders or s3://bucket/prefix; the settings in parts (faceveil/settings_parts.py:
    detection, masking, encoding, cluster, sealing, checks), read as `config.detection.threshold`. Made
    from flat keys by `AnonymizeConfig.of(src, dest, method=..., workers=...)` (the command line, the
    config file, the API), each key going to its part by settings_parts.PART_OF; `changed(**keys)`
    is a copy with some keys changed. Rules across parts are checked here."""

    src: str
    dest: str
    state: str | None = None  # the private state root (default: <dest>.faceveil-private beside DEST; storage/state.py)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    masking: MaskingSettings = field(default_factory=MaskingSettings)
    encoding: EncodingSettings = field(default_factory=EncodingSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    sealing: SealingSettings = field(default_factory=SealingSettings)
    checks: ChecksSettings = field(default_factory=ChecksSettings)
    storage_options: dict = field(default_factory=dict)  # fsspec's, e.g. S3 credentials (never in a config file)
    tracking_uri: str | None = None  # MLflow; default: sqlite under the state root's mlflow/ (local state root)
    mlflow_artifacts: str | None = None  # MLflow's artifact root, e.g. s3://bucket/prefix (default: beside the store)
    run_state: RunState = field(
        default_factory=RunState
    )  # not a setting: the run's own (for_run; a dict after Prefect)

    @classmethod
    def of(cls, src: str, dest: str, **flat) -> AnonymizeConfig:
        """The config of flat keys (field names of the parts, and src, dest, state, storage_options,
        tracking_uri, mlflow_artifacts); an unknown key is an error naming it."""
        own, parts = split_flat(flat, OWN_KEYS)
        return cls(src, dest, **own, **{p: PARTS[p](**values) for p, values in parts.items()})

    def changed(self, **flat) -> AnonymizeConfig:
        """A copy with some flat keys changed (routed as in `of`); the run state stays."""
        own, parts = split_flat(flat, ("src", "dest", *OWN_KEYS))
        return replace(self, **own, **{p: replace(getattr(self, p), **v) for p, v in parts.items() if v})

    def flat(self) -> dict:
        """Every setting by its flat key (the parts' fields, and the config's own but the run state)."""
        out = {k: getattr(self, k) for k in ("src", "dest", *OWN_KEYS)}
        for part in PARTS:
            out |= {f.name: getattr(getattr(self, part), f.name) for f in fields(PARTS[part])}
        return out

    def __post_init__(self):
        from faceveil.storage.state import check_apart, default_state_url

        for part, cls in PARTS.items():  # after a round trip through Prefect's parameters: dicts
            setattr(self, part, part_from(cls, getattr(self, part)))
        if isinstance(self.run_state, dict):  # likewise (a tuple comes back a list)
            self.run_state = part_from(RunState, self.run_state)
        if self.state is None:
            self.state = default_state_url(self.dest)
        check_apart(self.dest, self.state, self.src)
        method, sealing, detection = self.masking.method, self.sealing, self.detection
        if method == "scramble" and sealing.reversible is False:
            raise ValueError(
                "--method scramble seals every face (its blocks are keyed by the vault's data keys): "
                "it cannot go with reversible = false; drop one of them"
            )
        if sealing.index is None:  # the documented default: the index follows `sealed`
            self.sealing = replace(sealing, index=self.sealed)
        if self.sealing.index and not self.sealed:
            raise ValueError(
                "the identity index needs --reversible (its templates are keyed, and restore needs the vault)"
            )
        if self.sealed and sealing.vault_lock is None:
            raise ValueError(f"{'the scramble method' if method == 'scramble' else '--reversible'} needs a key")
        if not detection.track and (detection.detect_every or 1) > 1:
            raise ValueError(
                f"--no-track detects on every frame: it cannot go with --detect-every {detection.detect_every} "
                "(track = false, detect_every); drop one of them"
            )
        self._check_pulse()
        if self.cluster.gpu_workers and not self.cluster.dask_address:
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
        method = self.masking.method
        if method == "keep" and self.sealing.reversible:
            raise ValueError("--method keep leaves faces visible: there is nothing to seal (drop --reversible)")
        if self.masking.pulse and method not in PULSE_METHODS:
            raise ValueError(
                f"--pulse edits visible skin: use it with --method {' or '.join(PULSE_METHODS)}, "
                f"not {method} (its mask already hides the pulse)"
            )

    def for_run(self, **state) -> AnonymizeConfig:
        """A copy whose run state (RunState's fields) is changed; the user's settings stay as they are."""
        return replace(self, run_state=replace(self.run_state, **state))

    @property
    def sealed(self) -> bool:
        """Whether original faces are sealed into the vault: `reversible`, by default on for scramble."""
        return self.masking.method == "scramble" if self.sealing.reversible is None else self.sealing.reversible

    @property
    def checks_on(self) -> bool:
        """False for method keep (see _check_pulse): no checks, second look or recheck, whatever the fields say."""
        return self.masking.method != "keep"

    # The run's values of the settings above (the fields stay as the user gave them); every reader uses these.
    @property
    def run_check_every_s(self) -> float:
        return self.checks.check_every_s if self.checks_on else 0.0

    @property
    def run_second_look(self) -> float:
        return self.detection.second_look if self.checks_on else 0.0

    @property
    def run_recheck(self) -> bool:
        return self.checks.recheck and self.checks_on

    @property
    def run_detect_every(self) -> int | None:
        """`detect_every`; 1 with track off (the default then: every frame)."""
        return self.detection.detect_every if self.detection.track else 1

    def gate_off(self) -> str | None:
        """Why the leak gate cannot withhold anything in this run (said in the summary and the report),
        or None when it is on."""
        if self.masking.method == "keep":
            return "--method keep: faces are left visible on purpose, nothing is checked"
        if self.run_check_every_s <= 0:
            return "no output frame is checked (--check-every 0)"
        if self.checks.max_leak >= 1.0:
            return "--max-leak 100%: any share of unmasked faces is let through"
        return None

    def check_settings(self):
        """The checks; the leak gate's CenterFace looks below the anonymizer's threshold, BlazeFace
        (another family) at its own. Identity replacement checks at least REPLACE_CHECKED_FRAMES
        frames of a video: its identity stability along a track needs consecutive checked faces."""
        from faceveil.validation.privacy import CheckSettings

        gate, confirm = dict(CheckSettings.gate), dict(CheckSettings.confirm)
        if self.detection.detector == "centerface":
            gate["centerface"] = min(gate["centerface"], 0.75 * self.detector_threshold())
            confirm["centerface"] = min(confirm["centerface"], self.detector_threshold())
        return CheckSettings(
            self.run_check_every_s,
            self.checks.check_max_frames,
            gate=tuple(gate.items()),
            confirm=tuple(confirm.items()),
            min_frames=REPLACE_CHECKED_FRAMES if self.masking.method == "replace" else 1,
            replaced=self.masking.method == "replace",
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
            if name != self.detection.detector and (second is True or name in second)
        )

    def detector_threshold(self) -> float:
        from faceveil.models.detectors import DETECTORS

        d = self.detection
        return d.threshold if d.threshold is not None else DETECTORS.get(d.detector).default_threshold

    def detector_settings(self) -> DetectorSettings:
        """The main detector. With tracking it reports faces down to TRACK_FLOOR x the threshold: those
        below the threshold keep an existing track alive (a face whose score flickers around the
        threshold stays masked) and make a track of their own only when seen again and again
        (TrackerSettings.confirm_hits). Identity replacement detects in fp32 under "auto": its
        generator is fitted to the detector's landmarks, and detection is not its cost."""
        threads = max(1, (os.cpu_count() or 1) // self.cluster.n_workers) if not self.cluster.dask_address else 0
        floor = TRACK_FLOOR * self.detector_threshold() if self.detection.track else self.detection.threshold
        if self.run_state.second_pass:  # down to where the gate's own use of this family would see a face
            own = dict(self.check_settings().confirm).get(self.detection.detector)
            if own is not None:
                floor = min(floor if floor is not None else self.detector_threshold(), SECOND_PASS_MARGIN * own)
        precision = (
            "fp32"
            if self.detection.precision == "auto" and self.masking.method == "replace"
            else self.detection.precision
        )  # see the docstring
        return DetectorSettings(floor, self.detection.min_size, self.detection.scale, threads, precision)

    def second_look_settings(self) -> DetectorSettings | None:
        if not self.run_second_look:
            return None
        d = self.detector_settings()
        return DetectorSettings(
            self.detection.threshold, d.min_size, d.scale * self.run_second_look, d.threads, d.precision
        )

    @cached_property
    def settings(self) -> Resolved:
        """Every derived setting of the run, from the user's settings and the run state, computed once
        (a changed config is a new object: `changed`, `for_run`)."""
        return Resolved(
            self.detection.detector,
            self.detector_settings(),
            self.second_look_settings(),
            self.extra_detectors(),
            self.detector_threshold(),
            self.masking.method,
            self.mask_settings(),
            self.sealing.embedder,
            self.run_state.template_view,
            self.check_settings(),
            self.run_detect_every,
            self.detection.detect_fps,
            self.detection.detect_mpx_per_s,
            self.run_state.second_pass,
            self.detection.track,
            self.detection.max_gap,
            self.detection.extend,
            tuple(sorted(self.masking.replace_options.items())) if self.masking.method == "replace" else (),
            self.masking.pulse,
        )

    def mask_settings(self) -> MaskSettings:
        return MaskSettings(self.masking.mask_shape, self.masking.pad, self.masking.motion_pad, self.masking.scope)

    def output_settings(self) -> dict:
        """The settings that shape the output, with the values the run uses (those hashed before the
        defaults became explicit: a changed dict would redo every archive)."""
        d = self.flat() | {
            "reversible": self.sealed,
            "detect_every": self.run_detect_every,
            "second_look": self.run_second_look,
        }
        out = {k: d[k] for k in OUTPUT_SETTINGS}
        if (
            self.masking.method == "replace" and self.masking.replace_options
        ):  # only then: other runs keep their settings hash
            out["replace_options"] = dict(sorted(self.masking.replace_options.items()))
        if (
            self.masking.method == "replace"
        ):  # the fallback chain shapes the output: photos of runs before it are redone
            from faceveil.models.fallback import FALLBACKS

            out["fallbacks"] = list(FALLBACKS)
        if self.masking.pulse:  # only then: runs without it keep their settings hash
            out["pulse"] = self.masking.pulse
        if self.masking.scope != "face":  # likewise
            out["scope"] = self.masking.scope
        return out

    def output_settings_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.output_settings(), sort_keys=True).encode()).hexdigest()[:16]
