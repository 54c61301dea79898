"""Progress bars for the CLI: one for the archive, one per media while it is being processed."""

from __future__ import annotations

import sys


class Progress:
    """No-op by default; `TqdmProgress` draws bars. The flow reports; it never draws."""

    def start(self, n_media: int) -> None: ...
    def more(self, n_media: int) -> None: ...
    def media_started(self, rel: str, n_frames: int) -> None: ...
    def frames_done(self, rel: str, n: int) -> None: ...
    def media_done(self, rel: str, ok: bool) -> None: ...
    def close(self) -> None: ...


class TqdmProgress(Progress):
    def __init__(self, file=sys.stderr):
        self.file = file
        self.bars: dict = {}
        self.archive = None

    def start(self, n_media: int) -> None:
        from tqdm import tqdm

        self.archive = tqdm(total=n_media, desc="archive", unit="media", file=self.file, position=0)

    def more(self, n_media: int) -> None:
        if self.archive is not None:
            self.archive.total += n_media
            self.archive.refresh()

    def media_started(self, rel: str, n_frames: int) -> None:
        from tqdm import tqdm

        self.bars[rel] = tqdm(
            total=n_frames,
            desc=_printable(rel)[-40:],
            unit="frame",
            file=self.file,
            leave=False,
            position=len(self.bars) + 1,
        )

    def frames_done(self, rel: str, n: int) -> None:
        if rel in self.bars:
            self.bars[rel].update(n)

    def media_done(self, rel: str, ok: bool) -> None:
        bar = self.bars.pop(rel, None)
        if bar is not None:
            bar.close()
        if self.archive is not None:
            self.archive.update(1)
            if not ok:
                self.archive.set_postfix_str(f"failed: {_printable(rel)[-30:]}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        if self.archive is not None:
            self.archive.close()


def _printable(name: str) -> str:
    return name if name.isprintable() else repr(name)


_current: Progress = Progress()


def current() -> Progress:
    return _current


def use(progress: Progress) -> None:
    global _current
    _current = progress
