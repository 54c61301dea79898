"""The settings of identity replacement (models/replace.py): the surrogate pool, the identity margin,
the search's budget and the put-back's blend. Plain values, read also where no replacement runs (the
publication's figures, the worker toolkit's cache key)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplaceSettings:
    """pool_size/pool_seed: the generated faces to pair with; id_margin: the identity cosine to the
    original a surrogate must stay below (dlib's same-person threshold is 0.92); grad_steps, lr:
    gradient steps on the latent (colour and layout); es_evals: black-box evaluations at most per face
    (each one puts the candidate back and runs CenterFace and dlib on it), es_sigma: its step size;
    time_budget_s: stop searching after this long per face (None: off, the default, since a
    deadline makes the result depend on the machine's speed and a re-run must match); min_search_size: faces with eyes closer
    than this (px) get the paired, colour-matched face without the search (dlib cannot judge them);
    feather: the blend's soft edge, in eye distances; warp_landmarks: bend the aligned face so its 5
    landmarks land exactly on the original's (pose and expression at the landmarks); id_guard: a
    surrogate passes below id_margin - id_guard (headroom for the output's encoding, and the margin the
    whole frame is judged by in models/fallback)."""

    pool_size: int = 48
    pool_seed: int = 0
    id_margin: float = 0.85
    grad_steps: int = 6
    lr: float = 0.08
    es_evals: int = 6
    es_min_evals: int = 1
    es_sigma: float = 0.4
    time_budget_s: float | None = None
    min_search_size: float = 14.0
    feather: float = 0.12
    warp_landmarks: bool = True
    id_guard: float = 0.01
    max_pose_error: float = 10.0
    max_delta_e: float = 5.0
