"""Display orientation of coded video frames: a display matrix (rotation by multiples of 90 degrees,
mirroring) as array operations, so every stage sees frames the way a player shows them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IDENTITY_MATRIX = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)


@dataclass(frozen=True)
class Orientation:
    """coded -> upright: transpose the axes first (when `transpose`), then mirror left-right
    (`flip_x`) and upside down (`flip_y`). Applied to HxWxC arrays."""

    transpose: bool = False
    flip_x: bool = False
    flip_y: bool = False

    @classmethod
    def from_matrix(cls, m) -> "Orientation":
        """From an FFmpeg display matrix (9 int32, 16.16 fixed point; rows [a b u; c d v; x y w]): a
        coded pixel (x, y) is shown at (a*x + c*y, b*x + d*y), y pointing down. The 2x2 part is snapped
        to the nearest rotation by 90 degrees with optional mirroring (arbitrary angles do not occur in
        practice and are not honoured)."""
        a, b, c, d = (float(m[i]) for i in (0, 1, 3, 4))
        if abs(a) + abs(d) >= abs(b) + abs(c):  # x' = a*x, y' = d*y
            return cls(False, a < 0, d < 0)
        return cls(True, c < 0, b < 0)  # x' = c*y, y' = b*x: the axes swap

    @classmethod
    def from_side_data(cls, frame) -> "Orientation":
        """A decoded PyAV frame's DISPLAYMATRIX side data (identity when it has none)."""
        sd = frame.side_data.get("DISPLAYMATRIX") if frame.side_data else None
        if sd is None:
            return cls()
        return cls.from_matrix(np.frombuffer(bytes(sd), dtype="=i4")[:9])

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_x or self.flip_y)

    def display_size(self, coded_width: int, coded_height: int) -> tuple[int, int]:
        return (coded_height, coded_width) if self.transpose else (coded_width, coded_height)

    def coded_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.transpose else (width, height)

    def upright(self, a: np.ndarray) -> np.ndarray:
        """The coded frame as displayed (a C-contiguous copy unless the orientation is the identity)."""
        if self.is_identity:
            return a
        if self.transpose:
            a = a.swapaxes(0, 1)
        if self.flip_x:
            a = a[:, ::-1]
        if self.flip_y:
            a = a[::-1]
        return np.ascontiguousarray(a)

    def coded(self, a: np.ndarray) -> np.ndarray:
        """The inverse of `upright`: a displayed frame back in coded orientation."""
        if self.is_identity:
            return a
        if self.flip_y:
            a = a[::-1]
        if self.flip_x:
            a = a[:, ::-1]
        if self.transpose:
            a = a.swapaxes(0, 1)
        return np.ascontiguousarray(a)
