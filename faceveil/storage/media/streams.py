"""The streams of a transcode other than the main video: which are copied, re-encoded (audio the
output container cannot hold) or dropped, the input in demux order for that plan, and the
re-encoded audio's last packets."""

from __future__ import annotations

import contextlib
from typing import Callable

import av

from faceveil.storage.media.decode import _frame_index, _rgb
from faceveil.storage.media.probe import MediaError, VideoInfo, _codec


# audio a muxer holds beside those ffmpeg's codec query lists (MPEG-TS answers with mp2 alone)
CARRIES = {"mpegts": {"aac", "ac3", "eac3", "mp2", "mp3", "opus", "dts"}}


def _plan_streams(inp, out, vin, ext: str, notes: list[str]) -> dict:
    """Input stream index -> ("copy" | "audio", output stream) for every stream but the main video."""
    plan, supported = {}, out.supported_codecs | CARRIES.get(out.format.name, set())
    for s in inp.streams:
        ctx, codec = s.codec_context, _codec(s)
        what = f"stream {s.index} {s.type} {codec}"
        if s is vin:
            continue
        if s.type == "video":  # cover art, second angle: not anonymized, so never copied
            notes.append(f"{what} dropped: only the main video stream is anonymized")
        elif s.type == "attachment":
            mime = getattr(s, "mimetype", None) or ""
            if ext == ".mkv" and not mime.startswith("image/"):  # fonts for subtitles
                out.add_attachment(s.metadata.get("filename", f"attachment{s.index}"), mime, s.data)
            else:
                notes.append(f"{what} dropped: attachment ({mime or 'unknown type'})")
        elif codec in supported:
            try:
                plan[s.index] = ("copy", out.add_stream_from_template(s))
            except ValueError as e:
                notes.append(f"{what} dropped: {e}")
        elif s.type == "audio" and ctx is not None and ctx.codec.is_decoder:
            name = "libopus" if ext == ".webm" else "aac"
            o = out.add_stream(name, rate=48000 if ext == ".webm" else (ctx.sample_rate or 48000))
            o.layout = ctx.layout if ctx.layout.nb_channels <= 2 or ext != ".webm" else "stereo"
            plan[s.index] = ("audio", o)
            notes.append(f"{what} re-encoded to {name}: {ext[1:]} cannot hold {codec}")
        else:
            notes.append(f"{what} dropped: {ext[1:]} cannot hold {codec}")
        if s.index in plan and s.language:
            with contextlib.suppress(Exception):
                plan[s.index][1].language = s.language
    return plan


def _demuxed(inp, vin, plan: dict, info: VideoInfo, src: str, seq: bool, convert: Callable[[int], bool]):
    """The input in demux order: ("video", index, frame, rgb or None), ("copy", stream, packet, None)
    and ("audio", stream, decoded audio frame, None) for the streams `plan` keeps."""
    n = 0
    for pkt in inp.demux():
        k = pkt.stream.index
        try:
            if k == vin.index:
                for f in vin.decode(pkt):
                    i = n if seq else _frame_index(info, f, src)
                    if i < 0:  # from before the first keyframe
                        continue
                    n += 1
                    yield "video", i, f, (info.orientation.upright(_rgb(f)) if convert(i) else None)
            elif k in plan:
                how, _ = plan[k]
                if how == "copy" and pkt.size:
                    yield "copy", k, pkt, None
                elif how == "audio":
                    for af in pkt.decode():
                        yield "audio", k, af, None
        except av.FFmpegError as e:
            raise MediaError(src, f"decode error in stream {k} after video frame {n} ({e})") from None


def _flush_audio(plan: dict, out) -> None:
    """The last packets of the audio streams re-encoded for the output container."""
    for how, o in plan.values():
        if how == "audio":
            out.mux(o.encode(None))
