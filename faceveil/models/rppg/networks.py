"""The pretrained rPPG networks that ship inside the `open-rppg` package (Keras 3 on JAX; weights
under their papers' terms), as measurement-only estimators of face-crop clips. Loaded lazily, once
per process and model; a missing package is a clear error, not an import failure at start-up."""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from faceveil.models.rppg.base import ESTIMATORS, Estimator

NETWORKS = {
    "physnet": "PhysNet.pure",
    "physnet-rlap": "PhysNet.rlap",
    "physformer": "PhysFormer.pure",
    "physmamba": "PhysMamba.pure",
    "rhythmmamba": "RhythmMamba.pure",
    "efficientphys": "EfficientPhys.pure",
    "tscan": "TSCAN.pure",
    "facephys": "FacePhys.rlap",
}


class MissingRppgPackage(RuntimeError):
    pass


@functools.lru_cache(maxsize=None)
def _model(name: str):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] != "jax":
        raise MissingRppgPackage(f"open-rppg's {name} needs KERAS_BACKEND=jax (it is {os.environ['KERAS_BACKEND']!r})")
    try:
        rppg = _import_rppg()
    except ImportError as e:
        raise MissingRppgPackage(
            f"the rPPG network {name} needs the open-rppg package (pip install open-rppg): {e}"
        ) from e
    logging.getLogger("open-rppg").setLevel(logging.ERROR)
    return rppg.Model(name)


def _import_rppg():
    """`import rppg`; its modules import `pkg_resources` (gone from new setuptools) for
    `resource_filename` only: a stand-in serves that while it imports, and is removed again."""
    import importlib.util
    import sys
    import types

    try:
        import pkg_resources  # noqa: F401

        shim = None
    except ImportError:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, resource: str) -> str:
            spec = importlib.util.find_spec(package)
            return os.path.join(os.path.dirname(spec.origin), resource)

        shim.resource_filename = resource_filename
        sys.modules["pkg_resources"] = shim
    try:
        import rppg
    finally:
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]
    return rppg


class NetworkEstimator(Estimator):
    """One open-rppg network: `clip_signal` runs it over face crops (T,H,W,3 uint8; resized to its
    input, resampled to its 30 fps) and returns its blood-volume pulse, band-passed as the package
    does."""

    from_trace = False

    def __init__(self, name: str):
        self.name, self.model_name = name, NETWORKS[name]

    def clip_signal(self, clip: np.ndarray, fps: float) -> tuple[np.ndarray, float]:
        clip = np.ascontiguousarray(clip, dtype=np.uint8)
        if clip.ndim != 4 or clip.shape[-1] != 3:
            raise ValueError(f"{self.name}: face crops must be (T,H,W,3) uint8, got {clip.shape}")
        model = _model(self.model_name)
        model.process_faces_tensor(clip, fps=float(fps))
        bvp, _ = model.bvp()
        return np.asarray(bvp, np.float64), float(model.fps)


for _name in NETWORKS:
    ESTIMATORS.register(_name)(lambda _n=_name: NetworkEstimator(_n))
