"""bfloat16 CenterFace on CPUs that compute in bf16 natively (AVX512-BF16 or AMX): the shipped float
graph compiled by OpenVINO with bf16 inference precision, 2.5x faster than onnxruntime's float32 on
one core (94 against 236 ms for a 1280x736 frame on an AMD EPYC with AVX512-BF16).

bf16 keeps float32's range (unlike int8, dark frames lose nothing to clipped activations) but 8 bits
of mantissa: its face scores run a little lower than float32's (mean -0.003, 5th percentile -0.014
on the MOT20 night crowd). `SCORE_SHIFT` is added to every score, so a threshold means what it means
for float32: at 0.2 the shifted bf16 scores keep 99.1 % of the faces float32 finds (445 faces: MOT20
in 720p and the detection set; 95.1 % unshifted), at the cost of 14 % more boxes, most of them the
crowd's faint faces float32 scores just under 0.2. `precision="auto"` (the default) takes this path
only where the CPU has native bf16; elsewhere, and on CUDA, the float32 onnxruntime session runs."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from faceveil.atomic import write_atomically
from faceveil.home import home

SCORE_SHIFT = 0.015
_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo() -> dict[str, str]:
    """The first CPU's "model name" and "flags" lines of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            pairs = (line.split(":", 1) for line in f if line.startswith(("model name", "flags")))
            return {k.strip(): v.strip() for k, v in reversed(list(pairs))}  # reversed: the first CPU's wins
    except OSError:
        return {}


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this machine's CPU computes in bf16 (its flags say AVX512-BF16 or AMX-BF16) and
    OpenVINO is installed to use it."""
    flags = _cpuinfo().get("flags", "").split()
    if not any(flag in flags for flag in _FLAGS):
        return False
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _cpu() -> str:
    """This CPU's model name and flags (what decides the precision OpenVINO compiles at), hashed."""
    return hashlib.sha256(json.dumps(_cpuinfo(), sort_keys=True).encode()).hexdigest()[:16]


def compiled_precision(weights_sha256: str, session) -> tuple[str, str]:
    """(the precision OpenVINO runs these weights at on this CPU, OpenVINO's version). Compiling the graph
    to learn it takes about a second, which a run with nothing new (it only hashes what would run) should not
    pay: the answer is kept per weights, OpenVINO version and CPU in $FACEVEIL_HOME/cache, and `session()`
    (an OpenVinoSession) is only called when it is not there."""
    from importlib.metadata import version

    ov_version = version("openvino").split("-")[0]
    key = f"{weights_sha256}|{ov_version}|{_cpu()}"
    path = home() / "cache" / "openvino-precision.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key], ov_version
    ran = session().precision
    try:  # a cache: a folder that cannot be written costs the next run the compile, nothing else
        write_atomically(path, json.dumps({**(known if isinstance(known, dict) else {}), key: ran}).encode())
    except OSError:
        pass
    return ran, ov_version


class OpenVinoSession:
    """The part of an onnxruntime session the detectors use (`run`, `get_providers`), on an OpenVINO
    model compiled for the CPU at bf16 (any frame size: the input's height and width are free)."""

    def __init__(self, graph: bytes, threads: int = 0):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(graph, b"")
        name = model.inputs[0].get_any_name()
        model.reshape({name: [1, 3, -1, -1]})
        # no pinning: two worker processes with a thread each would pin both threads to the same core
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16", "ENABLE_CPU_PINNING": False}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()
        ran = self._compiled.get_property("INFERENCE_PRECISION_HINT")  # what really runs
        self.precision = "bf16" if ran == ov.Type.bf16 else ran.get_type_name()
        self.version = ov.__version__.split("-")[0]

    @property
    def is_bf16(self) -> bool:
        return self.precision == "bf16"

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (blob,) = feeds.values()
        result = self._request.infer({0: blob})
        return [np.array(result[self._compiled.output(n)]) for n in names]

    def get_providers(self) -> list[str]:
        return ["OpenVINO CPU"]
