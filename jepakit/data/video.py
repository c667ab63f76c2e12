"""Video files: clips decoded from a folder, a CSV/JSONL list, or WebDataset tar shards.

A clip is ``num_frames`` frames ``frame_stride`` apart (V-JEPA samples 16 frames with
stride 4), resized so the shorter side is ``image_size`` and centre-cropped, as images are:
float [3, T, S, S] in [0, 1]. A video gives ``clips_per_video`` samples: its frames are cut
into that many equal stretches and clip c starts at a point of stretch c drawn from a
generator seeded by (seed, sample index), so a sample is a pure function of the file and
its index (any order, any worker, exact resume). A video shorter than one clip
(``(num_frames - 1) * frame_stride + 1`` frames) or one that cannot be decoded is skipped
and counted (``on_error="skip"``), or stops the run naming the file (``"fail"``).

Decoding goes through ``torchcodec`` (PyTorch's video decoder) when it loads; it needs
FFmpeg's shared libraries (versions 4 to 9) installed on the system. Where they are
missing, ``decoder="auto"`` falls back to PyAV, whose wheel carries its own FFmpeg, so
the README's install decodes video on any machine; both give the same frames (tested).
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import MissingFileError, at_least, knob, resolved
from ..registry import register
from ..transforms import mix_seed
from .base import DatasetConfig
from .files import OnError, ReportingDataset, caption_list, missing_report
from .shards import WebDataset, WebDatasetConfig, caption_file

__all__ = ["VIDEO_SUFFIXES", "VideoFiles", "VideoFilesConfig", "VideoShards", "VideoShardsConfig", "read_clip"]

#: Video file extensions the data sets read (without the dot, as webdataset keys samples).
VIDEO_SUFFIXES = ("mp4", "webm", "mkv", "avi", "mov", "m4v")
Decoder = Literal["auto", "torchcodec", "pyav"]
#: A decoded video: its frame count and a reader of frames by index -> uint8 [n, H, W, 3].
Opened = tuple[int, Callable[[list[int]], torch.Tensor]]


class TooShort(ValueError):
    """A video with fewer frames than one clip spans."""


class DecoderUnavailable(RuntimeError):
    """The decoder asked for cannot load here: no file is at fault, so no policy skips it."""


@dataclass(frozen=True)
class VideoClipConfig(DatasetConfig):
    """What a clip is, shared by the video data sets."""

    image_size: int | None = knob(
        None, "frames are resized and centre-cropped to this side", follows="image_size", valid=at_least(1)
    )
    num_frames: int | None = knob(None, "frames per clip", follows="num_frames", valid=at_least(1))
    frame_stride: int = knob(4, "frames between a clip's frames (V-JEPA: 4)", valid=at_least(1))
    clips_per_video: int = knob(1, "samples per video: clips from equal stretches of it", valid=at_least(1))
    seed: int = knob(0, "seeds each clip's start within its stretch, per (seed, sample index)", valid=at_least(0))
    decoder: Decoder = knob(
        "auto", "torchcodec (needs FFmpeg's shared libraries), pyav (FFmpeg inside its wheel), or auto: the first"
    )
    on_error: OnError = knob("skip", "corrupt or too short videos, malformed list lines: skip and count, or fail")

    #: samples are clips ("video" [C, T, H, W]): only a method that trains on clips reads them
    clips: ClassVar[bool] = True


def _pyav(source: Path | bytes) -> Opened:
    """Decode with PyAV: every frame up to the last one asked for (PyAV seeks by time, not by frame)."""
    import av

    def read(indices: list[int]) -> torch.Tensor:
        wanted, frames = set(indices), {}
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r") as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    frames[i] = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                if i >= max(indices):
                    break
        missing = wanted - set(frames)
        if missing:
            raise ValueError(f"frames {sorted(missing)[:3]} could not be decoded")
        return torch.stack([frames[i] for i in indices])

    with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r") as container:
        total = int(container.streams.video[0].frames)
        if total == 0:  # some containers (Matroska) do not say: count the stream's packets, one a frame, undecoded
            total = sum(1 for packet in container.demux(video=0) if packet.size)
    return total, read


def _torchcodec(source: Path | bytes) -> Opened:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(source if isinstance(source, bytes) else str(source), dimension_order="NHWC")
    return len(decoder), lambda indices: decoder.get_frames_at(indices).data


@functools.cache
def torchcodec_loads() -> str:
    """'' when torchcodec can decode here, else why not (its FFmpeg libraries are missing, or it is absent)."""
    try:
        from torchcodec._core import ops  # tries to load libtorchcodec against each FFmpeg major version
    except Exception as e:
        return f"torchcodec does not import ({type(e).__name__}: {e})"
    if getattr(ops, "_FFMPEG_AVAILABLE", True) is False:  # torchcodec's own flag: no FFmpeg 4-9 libraries found
        return "torchcodec finds no FFmpeg shared libraries (versions 4-9) on this system"
    return ""


def open_video(source: Path | bytes, decoder: Decoder) -> Opened:
    """The frame count and a frame reader of a video file or its bytes, through ``decoder``."""
    if decoder == "pyav" or (decoder == "auto" and torchcodec_loads()):
        return _pyav(source)
    if decoder == "torchcodec" and torchcodec_loads():
        raise DecoderUnavailable(
            f"data.decoder='torchcodec' cannot load ({torchcodec_loads()}): install FFmpeg 4-9's shared "
            "libraries, or use data.decoder=pyav (or auto)"
        )
    return _torchcodec(source)


def read_clip(source: Path | bytes, cfg: VideoClipConfig, index: int) -> torch.Tensor:
    """Clip ``index % clips_per_video`` of a video: float [3, T, S, S] in [0, 1] (module docstring)."""
    frames, stride = resolved(cfg.num_frames, "data.num_frames"), cfg.frame_stride
    size = resolved(cfg.image_size, "data.image_size")
    total, read = open_video(source, cfg.decoder)
    span = (frames - 1) * stride + 1
    if total < span:
        raise TooShort(f"{total} frames, fewer than a clip of {frames} frames {stride} apart spans ({span})")
    starts, k, c = total - span + 1, cfg.clips_per_video, index % cfg.clips_per_video
    low, high = c * starts // k, max(c * starts // k + 1, (c + 1) * starts // k)
    g = torch.Generator().manual_seed(mix_seed(cfg.seed, index))
    start = int(torch.randint(low, high, (), generator=g))
    pixels = read(list(range(start, start + span, stride))).permute(0, 3, 1, 2).float() / 255.0  # [T, 3, H, W]
    h, w = pixels.shape[-2:]
    scale = size / min(h, w)
    resized = (max(size, round(h * scale)), max(size, round(w * scale)))
    pixels = F.interpolate(pixels, size=resized, mode="bicubic", antialias=True, align_corners=False)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    return pixels[:, :, top : top + size, left : left + size].clamp(0, 1).permute(1, 0, 2, 3).contiguous()


class _ClipReading(ReportingDataset):
    """Reading a clip with the error policy: a too short or undecodable video is counted or fails."""

    def _clip(self, source: Path | bytes, cfg: VideoClipConfig, index: int, where: str) -> torch.Tensor | None:
        try:
            return read_clip(source, cfg, index)
        except DecoderUnavailable:
            raise
        except Exception as e:  # TooShort, a corrupt, truncated or unsupported file
            self._skip(f"{'too short' if isinstance(e, TooShort) else 'cannot decode'} video {where}: {e}")
        return None


@dataclass(frozen=True)
class VideoFilesConfig(VideoClipConfig):
    root: str = knob("", "folder of videos (root/VIDEO) or class folders (root/CLASS/VIDEO); or the list's folder")
    list: str = knob(
        "", "list file: .jsonl ({video, caption | captions, label}) or .csv (video, caption, label columns)"
    )

    def check_files(self) -> None:
        if self.list:
            if not Path(self.list).is_file():
                raise MissingFileError(f"data.list={self.list!r} does not exist")
        elif not self.root or not Path(self.root).is_dir():
            raise MissingFileError(f"data.root={self.root!r} is not a folder (give data.root=DIR or data.list=FILE)")


@register("dataset", "videos", VideoFilesConfig)
class VideoFiles(_ClipReading):
    """Clips of video files: ``{"video": float [3, T, S, S], "captions", "label" (class folders or the
    list's label column), "index"}``; sample i is clip ``i % clips_per_video`` of video ``i // clips_per_video``.

    Example:
        >>> import tarfile, tempfile
        >>> from pathlib import Path
        >>> import av, numpy as np
        >>> from jepakit import create
        >>> root = Path(tempfile.mkdtemp())
        >>> with av.open(str(root / "clip.mkv"), "w") as video:  # 16 frames, frame t a flat grey of level 10 t
        ...     stream = video.add_stream("ffv1", rate=10)
        ...     stream.width, stream.height, stream.pix_fmt = 24, 20, "yuv444p"
        ...     for t in range(16):
        ...         grey = av.VideoFrame.from_ndarray(np.full((20, 24, 3), 10 * t, np.uint8), format="rgb24")
        ...         video.mux(stream.encode(grey))
        ...     video.mux(stream.encode())

        >>> data = create("dataset", "videos", root=str(root), num_frames=4, frame_stride=2, clips_per_video=2, image_size=16)
        >>> clip = data[1]["video"]  # [3, T, S, S] in [0, 1]: the second clip, from the video's second half
        >>> len(data), tuple(clip.shape), [round(float(clip[0, t].mean()) * 255 / 10) for t in range(4)]  # 2 frames apart
        (2, (3, 4, 16, 16), [5, 7, 9, 11])
    """

    def __init__(self, cfg: VideoFilesConfig) -> None:
        super().__init__(cfg.on_error)
        cfg.check_files()
        self.config = cfg
        self.classes: list[str] = []
        self.items: list[tuple[Path, list[str], int | None]] = self._listed() if cfg.list else self._folder()
        if not self.items:
            raise MissingFileError(f"data: no video ({', '.join(VIDEO_SUFFIXES)}) in {cfg.list or cfg.root}")

    def _folder(self) -> list[tuple[Path, list[str], int | None]]:
        root = Path(self.config.root)
        videos = lambda folder: sorted(p for p in folder.iterdir() if p.suffix.lower()[1:] in VIDEO_SUFFIXES)  # noqa: E731
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not self.classes:
            return [(p, [], None) for p in videos(root)]
        return [(p, [], c) for c, name in enumerate(self.classes) for p in videos(root / name)]

    def _listed(self) -> list[tuple[Path, list[str], int | None]]:
        path = Path(self.config.list)
        root = Path(self.config.root) if self.config.root else path.parent
        rows: list[tuple[Path, list[str], int | None]] = []
        if path.suffix == ".jsonl":
            for n, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    try:
                        record = json.loads(line)
                        label = record.get("label")
                        rows.append(
                            (root / record["video"], caption_list(record, True), None if label is None else int(label))
                        )
                    except (ValueError, KeyError, TypeError, AttributeError) as e:
                        self._malformed(path, n, f"{type(e).__name__}: {e}")
        else:
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames is None or "video" not in reader.fieldnames:
                    raise ValueError(f"{path}: a CSV video list needs a header with a 'video' column")
                for record in reader:
                    try:
                        label = record.get("label")
                        caption = record.get("caption")
                        rows.append(
                            (root / record["video"], [caption] if caption else [], int(label) if label else None)
                        )
                    except (ValueError, TypeError) as e:
                        self._malformed(path, reader.line_num, f"{type(e).__name__}: {e}")
        missing = [str(p) for p, _, _ in rows if not p.is_file()]
        if missing:
            self.problems.append(missing_report(missing, len(rows), str(path), self.on_error, "videos"))
        return [row for row in rows if row[0].is_file()]

    def __len__(self) -> int:
        return len(self.items) * self.config.clips_per_video

    def captions(self, index: int) -> list[str]:
        """The captions of sample ``index`` (no video is decoded)."""
        return self.items[index // self.config.clips_per_video][1]

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} outside [0, {len(self)})")
        path, captions, label = self.items[index // self.config.clips_per_video]
        clip = self._clip(path, self.config, index, str(path))
        if clip is None:
            return None
        sample: dict[str, Any] = {"video": clip, "captions": captions, "index": index}
        if label is not None:
            sample["label"] = label
        return sample


@dataclass(frozen=True)
class VideoShardsConfig(WebDatasetConfig, VideoClipConfig):
    """WebDataset shards whose samples hold a video (``key.mp4``, ...) and optionally a caption file."""


@register("dataset", "video-shards", VideoShardsConfig)
class VideoShards(WebDataset, _ClipReading):
    """Clips streamed out of tar shards (one clip per sample, seeded by its position in the epoch's stream);
    ``{"video", "captions", "index"}``. A caption file is optional: video sets often have none.

    Example:
        >>> import io, tarfile, tempfile
        >>> from pathlib import Path
        >>> import av, numpy as np
        >>> from jepakit import create
        >>> clip = io.BytesIO()
        >>> with av.open(clip, "w", format="matroska") as container:  # 16 frames of noise, lossless, in memory
        ...     s = container.add_stream("ffv1", rate=8)
        ...     s.width = s.height = 16
        ...     s.pix_fmt = "yuv444p"
        ...     noise = np.random.default_rng(0).integers(0, 255, (16, 16, 16, 3), dtype=np.uint8)
        ...     packets = [p for f in noise for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))]
        ...     for p in packets + list(s.encode()):
        ...         container.mux(p)
        >>> shard = Path(tempfile.mkdtemp()) / "shard-0.tar"
        >>> with tarfile.open(shard, "w") as tar:  # one sample: its key "0", its video "0.mkv"
        ...     member = tarfile.TarInfo("0.mkv")
        ...     member.size = clip.getbuffer().nbytes
        ...     tar.addfile(member, io.BytesIO(clip.getvalue()))
        >>> shards = create("dataset", "video-shards", shards=(str(shard),), num_frames=4, image_size=16)
        >>> sample = shards.decode(next(iter(shards.epoch(seed=0))), 0)  # the pipeline streams an epoch and decodes
        >>> len(shards), sorted(sample), tuple(sample["video"].shape)
        (1, ['captions', 'index', 'video'], (3, 4, 16, 16))
    """

    config: VideoShardsConfig

    def decode(self, raw: dict[str, Any] | None, index: int) -> dict[str, Any] | None:
        where = self._where(raw)
        if raw is None or where is None:
            return None
        video = next((raw[e] for e in VIDEO_SUFFIXES if e in raw), None)
        if video is None:
            self._skip(f"{where} has no video ({', '.join(VIDEO_SUFFIXES)}): stopping (data.on_error=fail)")
            return None
        text = caption_file(raw)
        try:
            captions = caption_list(*text) if text is not None else []
        except ValueError as e:
            self._skip(f"{where} has an unreadable caption file: {e}")
            return None
        clip = self._clip(video, self.config, index, where)
        return None if clip is None else {"video": clip, "captions": captions, "index": index}
