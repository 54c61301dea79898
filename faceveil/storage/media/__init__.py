"""Media I/O on local files: probe, decode and re-encode videos with PyAV, read and write images
with Pillow. Frames are handed out upright (display matrix / EXIF orientation applied) and video is
written back in its coded orientation with its display matrix kept. Bad input raises MediaError
naming the file and the reason. One module per job: probe, decode, streams, encode, images."""

from faceveil.storage.media.decode import Redecoder, first_field, iter_frames, read_frame
from faceveil.storage.media.encode import TranscodeResult, transcode_video
from faceveil.storage.media.images import ImageMeta, read_image, write_image
from faceveil.storage.media.probe import IMAGE_EXTS, VIDEO_EXTS, MediaError, StreamInfo, VideoInfo, probe_video

# private pieces that faceveil.storage.segments imports from here
from faceveil.storage.media.decode import _decode_frames, _first_frame, _read_ahead, _SeekMiss  # noqa: F401
from faceveil.storage.media.encode import _check_output, _Encoder, _no_partial, open_output  # noqa: F401
from faceveil.storage.media.probe import _open, _video_stream  # noqa: F401
from faceveil.storage.media.streams import _flush_audio, _plan_streams  # noqa: F401

__all__ = [
    "IMAGE_EXTS",
    "VIDEO_EXTS",
    "ImageMeta",
    "MediaError",
    "Redecoder",
    "StreamInfo",
    "TranscodeResult",
    "VideoInfo",
    "first_field",
    "iter_frames",
    "probe_video",
    "read_frame",
    "read_image",
    "transcode_video",
    "write_image",
]
