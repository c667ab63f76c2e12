"""Video files (issue 20): clips decoded from a folder, a CSV/JSONL list or tar shards (frame count, stride,
clips per video, seeded), too short and corrupt videos counted, torchcodec and PyAV giving the same frames,
and V-JEPA training and probing on them. The tests write their own small videos with PyAV."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from jepakit import ConfigError, get_config
from jepakit.config import UnknownChoiceError
from jepakit.data import video as video_mod
from jepakit.data.video import VideoFiles, VideoFilesConfig, read_clip
from jepakit.eval import evaluate
from jepakit.train import train

av = pytest.importorskip("av")


def level(i: int) -> int:
    """Frame i's grey level: far enough apart to tell the frames apart after lossy coding."""
    return 20 + 9 * i


def write_video(path: Path, frames: int, width: int = 32, height: int = 32) -> Path:
    """A video whose frame i is a flat grey of ``level(i)``: lossless FFV1 for ``.mkv``, MPEG-4 otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lossless = path.suffix == ".mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1" if lossless else "mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p" if lossless else "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), level(i), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def frame_indices(clip: torch.Tensor) -> list[int]:
    """Which frames a clip [3, T, S, S] of write_video's frames holds (by grey level)."""
    return [round((float(clip[:, t].mean()) * 255 - 20) / 9) for t in range(clip.shape[1])]


def videos(root: Path, **fields) -> VideoFiles:
    cfg = VideoFilesConfig(root=str(root), image_size=16, num_frames=4, decoder="pyav", **fields)
    return VideoFiles(cfg)


def test_clips_are_frames_stride_apart_from_equal_stretches_seeded_by_index(tmp_path):
    write_video(tmp_path / "a.mkv", 24, width=48)
    data = videos(tmp_path, frame_stride=2, clips_per_video=3)
    assert len(data) == 3
    starts = []
    for i in range(3):
        clip = data[i]["video"]
        assert clip.shape == (3, 4, 16, 16) and 0 <= clip.min() and clip.max() <= 1
        got = frame_indices(clip)
        assert got == [got[0] + 2 * t for t in range(4)], got
        starts.append(got[0])
    # 24 frames, a clip spans 7: starts 0..17 cut into 3 stretches of 6
    assert [s // 6 for s in starts] == [0, 1, 2]
    assert torch.equal(data[1]["video"], videos(tmp_path, frame_stride=2, clips_per_video=3)[1]["video"])
    other = [
        frame_indices(videos(tmp_path, frame_stride=2, clips_per_video=3, seed=s)[0]["video"])[0] for s in range(8)
    ]
    assert len(set(other)) > 1, "the start moves with the seed"


def test_class_folders_give_labels_and_a_list_gives_captions(tmp_path):
    for name in ("cats", "dogs"):
        write_video(tmp_path / "folders" / name / "x.mp4", 8)
    data = videos(tmp_path / "folders", frame_stride=1)
    assert data.classes == ["cats", "dogs"] and [data[i]["label"] for i in range(2)] == [0, 1]
    write_video(tmp_path / "list" / "v.mp4", 8)
    rows = [{"video": "v.mp4", "captions": ["a grey fade"], "label": 3}, {"video": "gone.mp4", "caption": "x"}]
    (tmp_path / "list" / "l.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n{broken\n")
    listed = VideoFiles(
        VideoFilesConfig(list=str(tmp_path / "list" / "l.jsonl"), image_size=16, num_frames=4, frame_stride=1)
    )
    assert len(listed) == 1 and listed[0]["captions"] == ["a grey fade"] and listed[0]["label"] == 3
    assert "1 of 2 videos are missing" in listed.report and "l.jsonl:3: malformed line" in listed.report
    (tmp_path / "list" / "l.csv").write_text("video,caption,label\nv.mp4,fading,1\n")
    csv_listed = VideoFiles(VideoFilesConfig(list=str(tmp_path / "list" / "l.csv"), image_size=16, num_frames=4))
    assert csv_listed.captions(0) == ["fading"] and csv_listed[0] is None, "8 frames: too short for stride 4"


def test_too_short_and_corrupt_videos_are_counted_or_fail_by_policy(tmp_path):
    write_video(tmp_path / "ok.mp4", 16)
    write_video(tmp_path / "short.mp4", 5)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 50)
    data = videos(tmp_path, frame_stride=2)  # a clip spans 7 frames
    names = [p.name for p, _, _ in data.items]
    got = {name: data[i] for i, name in enumerate(names)}
    assert got["ok.mp4"] is not None and got["short.mp4"] is None and got["broken.mp4"] is None
    assert data.unreadable == 2
    strict = videos(tmp_path, frame_stride=2, on_error="fail")
    with pytest.raises(ValueError, match=r"too short video .*short.mp4: 5 frames, fewer than a clip .* spans \(7\)"):
        strict[names.index("short.mp4")]
    with pytest.raises(ValueError, match=r"cannot decode video .*broken.mp4"):
        strict[names.index("broken.mp4")]


def test_bad_configs_are_named_when_made(tmp_path):
    with pytest.raises(ConfigError, match=r"data.root='' is not a folder"):
        get_config("vjepa-cpu", data="videos")
    with pytest.raises(ConfigError, match=r"data.list=.*does not exist"):
        get_config("vjepa-cpu", data={"type": "videos", "list": str(tmp_path / "none.csv")})
    with pytest.raises(ConfigError, match=r"videos.frame_stride=0 must be >= 1"):
        get_config("vjepa-cpu", data={"type": "videos", "root": str(tmp_path), "frame_stride": 0})
    with pytest.raises(UnknownChoiceError, match=r"data.decoder: unknown value 'opencv'; valid choices: auto, pyav"):
        get_config("vjepa-cpu", data={"type": "videos", "root": str(tmp_path), "decoder": "opencv"})
    with pytest.raises(ConfigError, match=r"data.num_frames follows num_frames, which experiment does not provide"):
        get_config("ijepa-cpu", data={"type": "videos", "root": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"data 'videos' gives clips"):
        get_config("ijepa-cpu", data={"type": "videos", "root": str(tmp_path), "num_frames": 8})


def test_torchcodec_that_cannot_load_is_a_clear_error_and_auto_falls_back(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.mp4", 8)
    monkeypatch.setattr(video_mod, "torchcodec_loads", lambda: "no FFmpeg here")
    cfg = VideoFilesConfig(image_size=16, num_frames=4, frame_stride=1)
    with pytest.raises(RuntimeError, match=r"data.decoder='torchcodec' cannot load \(no FFmpeg here\).*decoder=pyav"):
        read_clip(path, cfg.replace(decoder="torchcodec"), 0)
    assert frame_indices(read_clip(path, cfg, 0)) == frame_indices(read_clip(path, cfg.replace(decoder="pyav"), 0))


def _pyav_ffmpeg_for_torchcodec(folder: Path) -> Path | None:
    """A folder of FFmpeg sonames (libavutil.so.60, ...) linked to PyAV's bundled libraries, for torchcodec to
    load through LD_LIBRARY_PATH; None when PyAV's wheel does not lay them out so."""
    libs = Path(av.__file__).resolve().parent.parent / "av.libs"
    if not libs.is_dir():
        return None
    folder.mkdir()
    import re

    for lib in libs.iterdir():
        m = re.match(r"(lib(?:av|sw)[a-z]+)-[0-9a-f]{8}\.so\.(\d+)", lib.name)
        if m:
            (folder / f"{m[1]}.so.{m[2]}").symlink_to(lib)
    return folder if any(folder.iterdir()) else None


def test_torchcodec_and_pyav_decode_the_same_clip(tmp_path):
    """torchcodec needs FFmpeg's shared libraries; PyAV's wheel carries them, so the test points torchcodec at
    those (in a child process: the loader reads LD_LIBRARY_PATH at start) and compares the clips."""
    pytest.importorskip("torchcodec")
    path = write_video(tmp_path / "v.mp4", 20, width=40, height=24)
    ffmpeg = _pyav_ffmpeg_for_torchcodec(tmp_path / "ffmpeg")
    if video_mod.torchcodec_loads() and ffmpeg is None:
        pytest.skip("torchcodec finds no FFmpeg and PyAV's libraries are not laid out to lend it theirs")
    script = (
        "import sys, torch; from jepakit.data.video import VideoFilesConfig, read_clip, torchcodec_loads\n"
        "assert not torchcodec_loads(), torchcodec_loads()\n"
        "cfg = VideoFilesConfig(image_size=16, num_frames=4, frame_stride=3, clips_per_video=2)\n"
        "torch.save(torch.stack([read_clip(sys.argv[1], cfg.replace(decoder=d), 1) for d in ('torchcodec', 'pyav')]), sys.argv[2])\n"
    )
    env = dict(os.environ)
    if ffmpeg is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            filter(None, [str(ffmpeg), str(next(ffmpeg.iterdir()).resolve().parent), env.get("LD_LIBRARY_PATH")])
        )
    out = tmp_path / "clips.pt"
    subprocess.run([sys.executable, "-c", script, str(path), str(out)], check=True, env=env, timeout=120)
    codec, pyav = torch.load(out, weights_only=True)
    assert torch.equal(codec, pyav)


def shard(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_video_shards_stream_clips_with_optional_captions(tmp_path):
    a = write_video(tmp_path / "a.mp4", 12).read_bytes()
    tar = shard(tmp_path / "s.tar", {"a.mp4": a, "a.txt": b"grey fading up", "b.mp4": a, "c.txt": b"no video"})
    cfg = get_config(
        "vjepa-cpu", data={"type": "video-shards", "shards": [str(tar)], "frame_stride": 1, "decoder": "pyav"}
    )
    data = cfg.data.build()
    raws = list(data.epoch(0))
    samples = [data.decode(raw, i) for i, raw in enumerate(raws)]
    kept = [s for s in samples if s is not None]
    assert len(raws) == 3 and len(kept) == 2 and data.unreadable == 1, "the sample with no video is counted"
    assert sorted(len(s["captions"]) for s in kept) == [0, 1]
    assert all(s["video"].shape == (3, 8, 32, 32) for s in kept)


def test_vjepa_trains_and_probes_on_video_files(tmp_path):
    for c, name in enumerate(("slow", "fast")):
        for k in range(6):
            write_video(tmp_path / "v" / name / f"{k}.mp4", 6 + 4 * c, width=24, height=16)
    fields = {"type": "videos", "root": str(tmp_path / "v"), "frame_stride": 1, "decoder": "pyav"}
    from conftest import tiny_config

    cfg = tiny_config(
        "vjepa-cpu",
        patch=4,
        grid=4,
        num_frames=4,
        masker={"min_keep": 2},
        data=fields,
        train={"steps": 2, "batch_size": 4, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2},
    )
    result = train(cfg, tmp_path / "run", progress=False)
    assert all(torch.isfinite(torch.tensor(result["losses"])))
    mixed = torch.utils.data.Subset(cfg.data.build(), [i // 2 + 6 * (i % 2) for i in range(12)])  # classes alternate
    results = evaluate(result["model"].eval_encoder(), mixed, train=6, val=2, test=4, probes=("linear",))
    assert set(results["linear"]) == {"label"}
