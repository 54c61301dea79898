"""The output checks of one media (privacy, utility and the leak gate), run on the output as
written: sampled originals are kept as they are anonymized, and the encoded output is decoded again
beside the encoder (a background thread), so each checked frame is what a viewer of the output sees."""

from __future__ import annotations

import queue
import threading
from dataclasses import replace

import numpy as np

from faceveil.pipeline.toolkit import Toolkit
from faceveil.storage.media import Redecoder
from faceveil.storage.orientation import Orientation
from faceveil.validation.privacy import FrameChecks, sample_frames


def frame_checks(
    kit: Toolkit,
    media_id: str,
    n_frames: int,
    fps: float,
    frames: range | None = None,
    identity_faces: int | None = None,
) -> FrameChecks:
    """The checks of one media (or of its `frames` only, with `identity_faces` of its identity
    checks): the leak gate's detectors at full scale; the run's embedder."""
    s = kit.settings.checks
    if identity_faces is not None:
        s = replace(s, identity_faces=identity_faces)
    sampled = sample_frames(n_frames, fps, s)
    if frames is not None:
        sampled = {f for f in sampled if f in frames}
    return FrameChecks(media_id, sampled, kit.gate(s.gate), kit.embedder, settings=s, confirm=kit.gate(s.confirm))


class BesideEncoder:
    """Feeds a FrameChecks from a video transcode: `keep(i, original, dets, regions)` in `edit` before
    the frame is anonymized, `tap` as transcode_video's tap (re-decoded frames are turned upright with
    `orientation`); `finish()` waits for the checks (and re-raises their error).
    Memory stays bounded: with `depth` originals waiting, `keep` waits for
    the checks, but only for frames the encoder has already handed out (so it never waits on itself)."""

    REORDER = 16  # frames a decoder may hold back (H.264's largest picture buffer)

    def __init__(self, checks: FrameChecks, orientation: Orientation = Orientation(), depth: int = 8, start: int = 0):
        self.checks, self.depth, self.orientation, self.start = checks, depth, orientation, start
        self._kept: dict[int, tuple] = {}
        self._emitted = 0  # encoded frames handed to the muxer so far
        self._changed = threading.Condition()
        self._packets: queue.Queue = queue.Queue()
        self._error: list[BaseException] = []
        self._thread: threading.Thread | None = None

    def keep(self, i: int, original: np.ndarray, dets, regions, faces=None) -> None:
        if not self.checks.wants(i):
            return
        with self._changed:
            while (
                len(self._kept) >= self.depth
                and not self._error
                and self._thread is not None
                and min(self._kept) - self.start + self.REORDER < self._emitted
            ):
                self._changed.wait(1.0)
            if not self._error:
                self._kept[i] = (original.copy(), dets, regions, faces)

    def tap(self, packets, codec) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run,
                args=(codec.codec.canonical_name, codec.extradata, codec.width, codec.height),
                name="faceveil-checks",
                daemon=True,
            )
            self._thread.start()
        self._packets.put(Redecoder.copy_packets(packets))
        with self._changed:
            self._emitted += len(packets)

    def close(self) -> None:
        """Stops the checking thread (idempotent; what was not checked yet is dropped)."""
        if self._thread is not None and self._thread.is_alive():
            self._packets.put(None)
            self._thread.join()

    def finish(self) -> FrameChecks:
        self.close()
        if self._error:
            raise self._error[0]
        return self.checks

    def _run(self, codec_name: str, extradata, width: int, height: int) -> None:
        n, done = self.start, False  # the encoder's first frame is the video's frame `start`
        try:
            decoder = Redecoder(codec_name, extradata, width, height, self.orientation)
            while not done:
                batch = self._packets.get()
                done = batch is None
                for frame in decoder.decode(batch):
                    with self._changed:
                        kept = self._kept.get(n)
                    if kept is not None:
                        self.checks.add(n, kept[0], decoder.rgb(frame), kept[1], kept[2], kept[3])
                        with self._changed:
                            del self._kept[n]
                            self._changed.notify_all()
                    n += 1
        except BaseException as e:  # reported by finish(); the encoder is never left waiting
            with self._changed:
                self._error.append(e)
                self._kept.clear()
                self._changed.notify_all()
            while not done:
                done = self._packets.get() is None
