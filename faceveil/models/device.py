"""Where the models run: CUDA when this machine has it, else the CPU, with no setting needed.
`FACEVEIL_DEVICE` overrides it: `cpu` keeps everything on the CPU (a GPU box sharing its card),
`cuda` insists on CUDA (an error where onnxruntime cannot use it), `auto` (or unset) chooses.
Every onnxruntime session of the detectors takes its providers from `onnx_providers`."""

from __future__ import annotations

import os

ENV = "FACEVEIL_DEVICE"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEVICES = ("cpu", "cuda")


def requested() -> str:
    """'auto', 'cpu' or 'cuda', from $FACEVEIL_DEVICE (default 'auto')."""
    want = os.environ.get(ENV, "").strip().lower() or "auto"
    if want not in ("auto", *DEVICES):
        raise ValueError(f"{ENV} must be auto, cpu or cuda, got {want!r}")
    return want


def onnx_providers(available: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The onnxruntime execution providers to ask for, best first: CUDA before the CPU when onnxruntime
    has it (an onnxruntime-gpu build), the CPU alone when it has not or $FACEVEIL_DEVICE says cpu.
    `available`: onnxruntime's list (default: `onnxruntime.get_available_providers()`)."""
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    want = requested()
    if want == "cuda" and CUDA not in available:
        raise RuntimeError(f"{ENV}=cuda, but this onnxruntime has no {CUDA} (available: {', '.join(available)})")
    order = [CPU] if want == "cpu" else [CUDA, CPU]
    return [p for p in order if p in available] or [CPU]


def device_name(available: list[str] | tuple[str, ...] | None = None) -> str:
    """'cuda' when the onnx sessions made now would ask for CUDA first, else 'cpu'."""
    return "cuda" if onnx_providers(available)[0] == CUDA else "cpu"


def session_device(session) -> str:
    """'cuda' or 'cpu': what an onnxruntime session really runs on (a CUDA provider asked for but not
    usable, no driver or no card, falls back to the CPU, and the session says so)."""
    return "cuda" if session.get_providers()[:1] == [CUDA] else "cpu"


def dlib_device() -> str:
    """'cuda' when dlib was built with CUDA and sees a card, else 'cpu'. dlib chooses by itself, at
    build time: $FACEVEIL_DEVICE does not steer it (an empty CUDA_VISIBLE_DEVICES does)."""
    import dlib

    if not getattr(dlib, "DLIB_USE_CUDA", False):
        return "cpu"
    try:
        return "cuda" if dlib.cuda.get_num_devices() > 0 else "cpu"
    except Exception:  # no driver
        return "cpu"


def combine(devices) -> str:
    """One media's device from its parts': 'cuda' only when every part ran on CUDA."""
    devices = list(devices)
    return "cuda" if devices and all(d == "cuda" for d in devices) else "cpu"
