"""Per-media privacy and utility checks of the output as written: sampled originals are kept as
they are anonymized, and the encoded output is decoded again beside the encoder (a background
thread), so each checked frame is what a viewer of the output sees."""
from __future__ import annotations

import queue
import threading

import numpy as np

from faceveil.config import AnonymizeConfig
from faceveil.models.detectors import DetectorSettings
from faceveil.storage.media import Redecoder
from faceveil.tasks.common import detector, embedder
from faceveil.validation.privacy import FrameAudit, sample_frames


def frame_audit(config: AnonymizeConfig, media_id: str, n_frames: int, fps: float) -> FrameAudit:
    """The audit of one media: the detector at the leak threshold, full scale; the run's embedder."""
    s = config.audit_settings()
    threads = config.detector_settings().threads
    leak = detector(config.detector, DetectorSettings(threshold=s.leak_threshold, threads=threads))
    return FrameAudit(media_id, sample_frames(n_frames, fps, s), leak, embedder(config.embedder))


class BesideEncoder:
    """Feeds a FrameAudit from a video transcode: `keep(i, original, dets, regions)` in `edit` before
    the frame is anonymized, `tap` as transcode_video's tap; `finish()` waits for the checks (and
    re-raises their error). At most `depth` kept originals wait, so memory stays bounded."""

    def __init__(self, audit: FrameAudit, depth: int = 8):
        self.audit = audit
        self._kept: dict[int, tuple] = {}
        self._depth = depth
        self._room = threading.Semaphore(depth)
        self._packets: queue.Queue = queue.Queue()
        self._error: list[BaseException] = []
        self._thread: threading.Thread | None = None

    def keep(self, i: int, original: np.ndarray, dets, regions) -> None:
        if self.audit.wants(i) and not self._error:
            self._room.acquire()
            self._kept[i] = (original.copy(), dets, regions)

    def tap(self, packets, codec) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(codec.codec.canonical_name, codec.extradata, codec.width, codec.height),
                                            name="faceveil-audit", daemon=True)
            self._thread.start()
        self._packets.put(Redecoder.copy_packets(packets))

    def close(self) -> None:
        """Stops the checking thread (idempotent; what was not checked yet is dropped)."""
        if self._thread is not None and self._thread.is_alive():
            self._packets.put(None)
            self._thread.join()

    def finish(self) -> FrameAudit:
        self.close()
        if self._error:
            raise self._error[0]
        return self.audit

    def _run(self, codec_name: str, extradata, width: int, height: int) -> None:
        n, done = 0, False
        try:
            import torch

            torch.set_num_threads(1)
            decoder = Redecoder(codec_name, extradata, width, height)
            while not done:
                batch = self._packets.get()
                done = batch is None
                for frame in decoder.decode(batch):
                    kept = self._kept.pop(n, None)
                    if kept is not None:
                        self.audit.add(n, kept[0], Redecoder.rgb(frame), kept[1], kept[2])
                        self._room.release()
                    n += 1
        except BaseException as e:  # reported by finish(); the encoder is never left waiting
            self._error.append(e)
            self._kept.clear()
            self._room.release(self._depth)
            while not done:
                done = self._packets.get() is None
