"""The skin an rPPG estimator reads. Dense (`dense_skin_region`): all visible facial skin inside the
face mesh's silhouette (models/face_mesh) grown to the hairline and ears, the eyes cut out, plus the
neck below the jaw, all kept to pixels of the face's own skin colour (hair, beard, glasses, collar and
background left out). The lips and the skin under the brows stay in: they carry the pulse (an estimator
reading the whole face box reads them), so the edit must reach them. Fallback (`skin_region`), from a face's 5 landmarks:
the forehead and both cheeks as
polygons in a face frame (x: eye distances from the eyes' midpoint along the eye line; y: the way
from the eyes' midpoint to the mouth's, 0 at the eyes, 1 at the mouth), mapped into the image by the
affine map those axes define; the nose and the skin between the eyes come with them. Never the eyes
(|x| 0.2-0.8, y -0.15-0.15 and eyebrows near -0.3 lie outside every polygon), the mouth (corners at
y 1, x +-0.41) or anything outside the face's box (shrunk by BOX_INSET). Where the
landmarks are unknown (NaN) they come from the box (typical positions).

Either way the skin is split into cells of a grid fixed in the face frame (CELL face units a side,
N_CELLS in all), which move with the face, so the pulse edit works cell by cell: an estimator that
reads any patch of the skin (the forehead, one cheek, the neck) finds the edit there too, not only in
the mean of the whole mask."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceveil.models.face_attributes import landmarks_from_box

FOREHEAD = [
    (-0.6, -0.85),
    (0.6, -0.85),
    (0.6, -0.45),
    (0.17, -0.45),
    (0.17, -0.25),
    (-0.17, -0.25),
    (-0.17, -0.45),
    (-0.6, -0.45),
]  # with the skin between the eyebrows
# the image-right cheek, from the nose's midline (the nose is skin) out towards the jaw, its inner lower
# corner cut away from the mouth; mirrored for the other
CHEEK = [
    (0.0, -0.25),
    (0.17, -0.25),
    (0.17, 0.25),
    (0.8, 0.25),
    (0.8, 0.95),
    (0.64, 0.95),
    (0.56, 0.72),
    (0.17, 0.64),
    (0.0, 0.64),
]
POLYGONS = (FOREHEAD, CHEEK, [(-x, y) for x, y in CHEEK])
BOX_INSET = 0.06  # polygons are clipped to the box shrunk by this share of its size on every side
CELL = 0.2  # a cell's side in the face frame (about 5 px for a face 65 px wide)
GRID_U, GRID_V = (-1.5, 1.5), (-1.8, 3.0)  # the grid's extent (u: eye distances, v: eyes 0 to mouth 1)
COLS, ROWS = round((GRID_U[1] - GRID_U[0]) / CELL), round((GRID_V[1] - GRID_V[0]) / CELL)
N_CELLS = COLS * ROWS  # labels 1..N_CELLS (pixels beyond the grid take its edge cells)
NECK = [(-0.8, 1.2), (0.8, 1.2), (0.8, 2.7), (-0.8, 2.7)]  # where a neck may be, in the face frame
SKIN_CHROMA = 3.5  # a pixel is the face's skin within this many robust deviations of its Cr/Cb
HALO = 1.3  # the mesh's silhouette grown about its centre by this factor: the forehead up to the hair and
# the skin to the ears, which the mesh's oval stops short of (hair and background left out by chroma)


@dataclass(frozen=True)
class SkinRegion:
    """A face's skin pixels: the bool mask `mask` of the frame's window [y0:y1, x0:x1]; `parts` the
    cell (1..N_CELLS, label_cells) of each of its pixels (0 outside); `source` "mesh" or "landmarks"."""

    y0: int
    y1: int
    x0: int
    x1: int
    mask: np.ndarray
    parts: np.ndarray | None = None
    source: str = "landmarks"

    @property
    def n(self) -> int:
        return int(self.mask.sum())

    def mean(self, rgb: np.ndarray) -> np.ndarray:
        """The skin's mean RGB (3,) in this frame (NaN when the region is empty)."""
        if not self.n:
            return np.full(3, np.nan)
        return rgb[self.y0 : self.y1, self.x0 : self.x1][self.mask].mean(axis=0, dtype=np.float64)

    def cell_means(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean RGB of each cell (N_CELLS, 3), NaN rows for cells with no pixel here, and each
        cell's pixel count (N_CELLS,)."""
        out = np.full((N_CELLS, 3), np.nan)
        if not self.n:
            return out, np.zeros(N_CELLS)
        labels = self.parts[self.mask]
        px = rgb[self.y0 : self.y1, self.x0 : self.x1][self.mask].astype(np.float64)
        counts = np.bincount(labels, minlength=N_CELLS + 1)[1:].astype(np.float64)
        for c in range(3):
            sums = np.bincount(labels, weights=px[:, c], minlength=N_CELLS + 1)[1:]
            out[:, c] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return out, counts

    def full(self, height: int, width: int) -> np.ndarray:
        out = np.zeros((height, width), bool)
        out[self.y0 : self.y1, self.x0 : self.x1] = self.mask
        return out


def face_frame(landmarks: np.ndarray, box) -> np.ndarray:
    """The 2x3 affine map from the face frame to image pixels."""
    lm = np.asarray(landmarks, np.float64)
    if not np.isfinite(lm).all():
        lm = landmarks_from_box(box).astype(np.float64)
    eyes, mouth = lm[:2].mean(axis=0), lm[3:5].mean(axis=0)
    ex, ey = lm[1] - lm[0], mouth - eyes
    if np.linalg.norm(ex) < 1e-3 or np.linalg.norm(ey) < 1e-3:
        lm = landmarks_from_box(box).astype(np.float64)
        eyes, mouth = lm[:2].mean(axis=0), lm[3:5].mean(axis=0)
        ex, ey = lm[1] - lm[0], mouth - eyes
    return np.column_stack([ex, ey, eyes])


def skin_region(landmarks: np.ndarray, box, width: int, height: int) -> SkinRegion:
    """Forehead and cheeks of one face in a `width` x `height` frame."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    ix, iy = BOX_INSET * (x2 - x1), BOX_INSET * (y2 - y1)
    bx0, by0 = max(0, int(np.ceil(x1 + ix))), max(0, int(np.ceil(y1 + iy)))
    bx1, by1 = min(width, int(np.floor(x2 - ix))), min(height, int(np.floor(y2 - iy)))
    if bx1 <= bx0 or by1 <= by0:
        return SkinRegion(0, 0, 0, 0, np.zeros((0, 0), bool))
    m = face_frame(landmarks, box)
    mask = np.zeros((by1 - by0, bx1 - bx0), np.uint8)
    for poly in POLYGONS:
        pts = np.asarray(poly, np.float64) @ m[:, :2].T + m[:, 2] - (bx0, by0)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    mask = mask.astype(bool)
    return SkinRegion(by0, by1, bx0, bx1, mask, label_cells(mask, bx0, by0, m))


def _face_uv(xs: np.ndarray, ys: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Image pixels (xs, ys) in the face frame `m` (face_frame): (n, 2) of (u, v)."""
    inv = cv2.invertAffineTransform(m)
    return np.column_stack([xs, ys]).astype(np.float64) @ inv[:, :2].T + inv[:, 2]


def label_cells(mask: np.ndarray, x0: int, y0: int, m: np.ndarray) -> np.ndarray:
    """The cell label (1..N_CELLS) of each pixel of `mask` (a window at x0, y0) by its place in the
    face frame `m`; 0 outside the mask."""
    ys, xs = np.nonzero(mask)
    uv = _face_uv(xs + x0, ys + y0, m)
    col = np.clip(np.floor((uv[:, 0] - GRID_U[0]) / CELL), 0, COLS - 1).astype(np.int64)
    row = np.clip(np.floor((uv[:, 1] - GRID_V[0]) / CELL), 0, ROWS - 1).astype(np.int64)
    out = np.zeros(mask.shape, np.uint16)
    out[ys, xs] = 1 + row * COLS + col
    return out


def dense_skin_region(points: np.ndarray, landmarks: np.ndarray, box, rgb: np.ndarray) -> SkinRegion:
    """All visible skin of one face from its face mesh `points` (468, 2): the silhouette grown by HALO
    and filled, the eyes cut out (grown by 4 % of the eye distance), and below the jaw the neck; both kept
    to pixels whose chroma is the face's (the cheeks' Cr/Cb within SKIN_CHROMA robust deviations), so
    hair, glasses, beard, collar and background are left out."""
    from faceveil.models import face_mesh as fm

    height, width = rgb.shape[:2]
    m = face_frame(landmarks, box)
    pts = np.asarray(points, np.float64)
    neck_poly = np.asarray(NECK, np.float64) @ m[:, :2].T + m[:, 2]
    oval = pts[fm.FACE_OVAL]
    halo = oval.mean(axis=0) + HALO * (oval - oval.mean(axis=0))
    allpts = np.vstack([halo, neck_poly])
    x0, y0 = max(0, int(np.floor(allpts[:, 0].min()))), max(0, int(np.floor(allpts[:, 1].min())))
    x1, y1 = min(width, int(np.ceil(allpts[:, 0].max())) + 1), min(height, int(np.ceil(allpts[:, 1].max())) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return SkinRegion(0, 0, 0, 0, np.zeros((0, 0), bool), np.zeros((0, 0), np.uint16), "mesh")

    def fill(poly, shape=(y1 - y0, x1 - x0)) -> np.ndarray:
        out = np.zeros(shape, np.uint8)
        cv2.fillPoly(
            out, [np.round((np.asarray(poly) - (x0, y0)) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4
        )
        return out

    face = fill(halo)
    holes = np.zeros_like(face)
    for idx in (fm.LEFT_EYE, fm.RIGHT_EYE):
        holes |= fill(pts[idx])
    grow = max(1, int(round(0.04 * float(np.linalg.norm(m[:, 0])))))
    holes = cv2.dilate(holes, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    face = face.astype(bool) & ~holes.astype(bool)
    neck = fill(neck_poly).astype(bool) & ~fill(halo).astype(bool)
    win = rgb[y0:y1, x0:x1]
    ycc = cv2.cvtColor(np.ascontiguousarray(win), cv2.COLOR_RGB2YCrCb)[..., 1:].astype(np.float32)
    ys, xs = np.nonzero(face)
    u, v = _face_uv(xs + x0, ys + y0, m).T
    cheeks = (np.abs(u) > 0.2) & (v > 0.2) & (v < 0.8)  # the cheeks' colour is the face's skin colour
    ref = ycc[ys[cheeks], xs[cheeks]]
    if len(ref) < 20:
        ref = ycc[face]
    if len(ref):
        med = np.median(ref, axis=0)
        dev = np.maximum(1.4826 * np.median(np.abs(ref - med), axis=0), 2.0)
        same = (np.abs(ycc - med) <= SKIN_CHROMA * dev).all(axis=-1)
        face, neck = face & same, neck & same
    mask = face | neck
    return SkinRegion(y0, y1, x0, x1, mask, label_cells(mask, x0, y0, m), "mesh")
