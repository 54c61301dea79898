"""MediaPipe's BlazeFace full-range detector (ONNX shipped inside the `open-rppg` package), run with
onnxruntime on overlapping tiles: a detector of another family than CenterFace, for the leak gate."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from faceveil.models.detections import Detections, nms
from faceveil.models.detectors.base import DETECTORS, Detector, DetectorSettings, weights_sha256
from faceveil.models.device import onnx_providers, session_device

INPUT = 192  # the full-range model's input side
GRID = 48  # one anchor per cell of a 48x48 grid (stride 4)


def default_weights() -> str:
    """blaze_face_full.onnx inside the installed open-rppg package (found without importing it:
    importing `rppg` loads JAX and Keras)."""
    spec = importlib.util.find_spec("rppg")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("BlazeFace weights not found: install the 'open-rppg' package")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "blaze_face_full.onnx"
    if not path.is_file():
        raise RuntimeError(f"BlazeFace weights missing at {path}")
    return str(path)


@lru_cache(maxsize=4)
def _session(path: str, threads: int):
    import onnx
    import onnxruntime as ort
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(path)  # a free batch dimension: all tiles of a frame in one call
    dims = lambda nodes: {n.name: [d.dim_value for d in n.type.tensor_type.shape.dim] for n in nodes}  # noqa: E731
    inputs, outputs = dims(model.graph.input), dims(model.graph.output)
    inputs = {k: ["B", *v[1:]] for k, v in inputs.items()}
    outputs = {k: ["B", *v[1:]] for k, v in outputs.items()}
    model = update_inputs_outputs_dims(model, inputs, outputs)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), opts, providers=onnx_providers(ort.get_available_providers())
    )


def tiles(width: int, height: int, side: int, overlap: float = 0.25) -> list[tuple[int, int, int]]:
    """(x, y, side) squares covering the frame, neighbours overlapping by `overlap` of a side (so a face
    cut by one tile's edge lies whole in the next); one square when the frame fits in `side`."""
    side = min(side, max(width, height))

    def starts(n: int) -> list[int]:
        if n <= side:
            return [0]
        step = max(1, int(side * (1 - overlap)))
        s = list(range(0, n - side + 1, step))
        return s if s[-1] + side >= n else s + [n - side]

    return [(x, y, side) for y in starts(height) for x in starts(width)]


@DETECTORS.register("blazeface")
class BlazeFace(Detector):
    """BlazeFace full range on square tiles of `tile` pixels (each scaled to the model's 192 px), plus
    the whole frame: faces from about a tenth of a tile up. No 5-point landmarks (NaN)."""

    name = "blazeface"
    default_threshold = 0.5

    def __init__(self, settings: DetectorSettings = DetectorSettings(), tile: int = 320, weights: str | None = None):
        super().__init__(settings)
        import cv2

        self._cv2 = cv2
        self.tile = tile
        self.weights = weights or default_weights()
        self._sess = _session(self.weights, settings.threads)
        self._input = self._sess.get_inputs()[0].name
        g = (np.arange(GRID, dtype=np.float32) + 0.5) / GRID
        ax, ay = np.meshgrid(g, g)
        self._anchors = np.stack([ax.ravel(), ay.ravel()], 1)

    @property
    def device(self) -> str:
        return session_device(self._sess)

    @property
    def weights_id(self) -> str:
        return "sha256:" + weights_sha256(self.weights)

    def _square(self, rgb: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
        crop = rgb[y : y + side, x : x + side]
        if crop.shape[0] != side or crop.shape[1] != side:  # the whole frame: pad to a square
            pad = np.zeros((side, side, 3), np.uint8)
            pad[: crop.shape[0], : crop.shape[1]] = crop
            crop = pad
        interp = self._cv2.INTER_AREA if side > INPUT else self._cv2.INTER_LINEAR
        return self._cv2.resize(crop, (INPUT, INPUT), interpolation=interp)

    def _detect(self, rgb: np.ndarray) -> Detections:
        h, w = rgb.shape[:2]
        squares = tiles(w, h, self.tile) if max(w, h) > self.tile else []
        squares.append((0, 0, max(w, h)))
        batch = np.stack([self._square(rgb, *s) for s in squares]).astype(np.float32) / 127.5 - 1.0
        boxes, scores = [], []
        outs = self._sess.run(None, {self._input: batch})
        reg, cls = (outs[0], outs[1]) if outs[0].shape[-1] == 16 else (outs[1], outs[0])
        n = len(squares)  # the graph folds the batch into its anchor axis: (1, n * 2304, k)
        reg, cls = reg.reshape(n, GRID * GRID, 16), cls.reshape(n, GRID * GRID)
        for (x, y, side), r, c in zip(squares, reg, cls):
            p = 1 / (1 + np.exp(-np.clip(c, -80, 80)))
            idx = np.flatnonzero(p >= self.threshold)
            if not len(idx):
                continue
            q = r[idx]
            cx = q[:, 0] / INPUT + self._anchors[idx, 0]
            cy = q[:, 1] / INPUT + self._anchors[idx, 1]
            bw, bh = q[:, 2] / INPUT, q[:, 3] / INPUT
            b = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side
            boxes.append(b + [x, y, x, y])
            scores.append(p[idx])
        if not boxes:
            return Detections.empty()
        b, s = np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)
        keep = nms(b, s, 0.3)
        return Detections(b[keep], s[keep])
