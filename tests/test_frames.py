import dataclasses
import json

import numpy as np
import pytest

from vidmem.core.errors import DataError, VidmemError
from vidmem.core.params import Params
from vidmem.store.shards import ShardReader
from vidmem.video.frames import decode_video, decode_videos, evenly_spaced_indices, list_videos

from conftest import REPO, frame_number, grey_ramp_video, with_documented_backends


def test_evenly_spaced_indices_are_segment_centres():
    assert evenly_spaced_indices(24, 8) == [1, 4, 7, 10, 13, 16, 19, 22]
    assert evenly_spaced_indices(8, 8) == list(range(8))
    assert evenly_spaced_indices(3, 6) == [0, 0, 1, 1, 2, 2]
    assert evenly_spaced_indices(1, 4) == [0, 0, 0, 0]


def test_decode_takes_exactly_the_evenly_spaced_frames(tmp_path, decode_config):
    video = grey_ramp_video(tmp_path / "ramp.webm", n_frames=24)
    decoded = decode_video(video, decode_config)
    assert decoded.frames.shape == (8, 48, 64, 3) and decoded.frames.dtype == np.uint8
    assert decoded.total_frames == 24 and not decoded.repeated
    assert [frame_number(f) for f in decoded.frames] == [1, 4, 7, 10, 13, 16, 19, 22]


def test_decode_keeps_aspect_ratio_with_short_side(tmp_path, decode_config):
    video = grey_ramp_video(tmp_path / "wide.webm", n_frames=10, size=(128, 48))
    config = dataclasses.replace(decode_config, short_side=24, n_frames=2)
    assert decode_video(video, config).frames.shape == (2, 24, 64, 3)


def test_a_video_smaller_than_short_side_is_never_upscaled(tmp_path, decode_config):
    video = grey_ramp_video(tmp_path / "small.webm", n_frames=10, size=(64, 48))
    config = dataclasses.replace(decode_config, short_side=320, n_frames=2)
    assert decode_video(video, config).frames.shape == (2, 48, 64, 3)  # source size
    portrait = grey_ramp_video(tmp_path / "tall.webm", n_frames=10, size=(48, 96))
    assert decode_video(portrait, config).frames.shape == (2, 96, 48, 3)
    assert decode_video(portrait, dataclasses.replace(config, short_side=24)).frames.shape == \
        (2, 48, 24, 3)


def test_auto_short_side_is_the_largest_backend_input():
    from vidmem.backends import decode_config as resolve
    from vidmem.core.params import Params, load_params

    params = load_params(REPO / "params.yaml")
    assert params["decode"]["short_side"] == "auto"
    params["backends"] = ["efficientnet_lite0", "captions"]
    assert resolve(Params(params)).short_side == 224
    params["backends"] = ["efficientnet_lite0", "inception_v3"]
    with_documented_backends(params)  # its section, as docs/backends.md gives it
    assert resolve(Params(params)).short_side == 299
    params["decode"]["short_side"] = 160
    assert resolve(Params(params)).short_side == 160
    with pytest.raises(ValueError, match="auto"):
        decode_videos([], REPO / "nowhere", dataclasses.replace(resolve(Params(params)),
                                                                short_side=None))


def test_short_video_repeats_frames_and_says_so(tmp_path, decode_config):
    video = grey_ramp_video(tmp_path / "short.webm", n_frames=3)
    decoded = decode_video(video, dataclasses.replace(decode_config, n_frames=6))
    assert decoded.repeated and decoded.frames.shape[0] == 6
    assert [frame_number(f) for f in decoded.frames] == [0, 0, 1, 1, 2, 2]


def test_short_video_policies(tmp_path, decode_config):
    video = grey_ramp_video(tmp_path / "short.webm", n_frames=3)
    out = tmp_path / "out"
    out.mkdir()
    skip = dataclasses.replace(decode_config, n_frames=6, short_video="skip")
    report = decode_videos([video], out, skip, progress=False)
    assert report.decoded == [] and "fewer than decode.n_frames=6" in report.skipped[0]["reason"]
    with pytest.raises(VidmemError, match="short.webm.*decode.short_video"):
        decode_videos([video], out, dataclasses.replace(skip, short_video="fail"), progress=False)


def test_bad_files_are_skipped_and_reported_or_fail(tmp_path, decode_config):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = grey_ramp_video(videos / "good.webm", n_frames=16)
    (videos / "empty.webm").write_bytes(b"")
    (videos / "text.mp4").write_text("this is not a video\n")
    truncated = videos / "truncated.webm"
    truncated.write_bytes(good.read_bytes()[:300])
    (videos / "notes.txt").write_text("ignored: not a video extension")
    listed = list_videos(videos)
    assert [v.name for v in listed] == ["empty.webm", "good.webm", "text.mp4", "truncated.webm"]
    out = tmp_path / "frames"
    out.mkdir()
    report = decode_videos(listed, out, decode_config, "skip", progress=False)
    assert report.decoded == ["good.webm"]
    reasons = {s["video"]: s["reason"] for s in report.skipped}
    assert set(reasons) == {"empty.webm", "text.mp4", "truncated.webm"}
    assert "empty" in reasons["empty.webm"]
    assert ShardReader(out).stems() == ["good"]
    assert sorted(p.name for p in out.iterdir()) == ["index.json", "shard-00000.tar"]
    assert report.counts() == {"videos_found": 4, "videos_decoded": 1, "videos_skipped": 3,
                               "videos_with_repeated_frames": 0}
    json.dumps(report.skipped)  # the report is written as JSON
    with pytest.raises(VidmemError, match="empty.webm.*data.on_bad_input"):
        decode_videos([videos / "empty.webm"], out, decode_config, "fail", progress=False)


def test_hanging_ffmpeg_hits_the_timeout(tmp_path, decode_config):
    # A FIFO nobody writes to makes ffmpeg block on open forever: the per-video timeout ends it.
    import os

    fifo = tmp_path / "stuck.webm"
    os.mkfifo(fifo)
    from vidmem.core.errors import VideoError
    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.frames import count_frames

    with pytest.raises(VideoError, match="did not finish within 1 s"):
        count_frames(fifo, ffmpeg_executable(), timeout=1)


def test_same_stem_twice_is_refused(tmp_path):
    (tmp_path / "video1.webm").write_bytes(b"x")
    (tmp_path / "video1.mp4").write_bytes(b"x")
    with pytest.raises(DataError, match="same name stem"):
        list_videos(tmp_path)


def test_decode_cache_gives_identical_output_and_skips_work(tmp_path, decode_config):
    videos = [grey_ramp_video(tmp_path / f"v{i}.webm", n_frames=12 + i) for i in range(3)]
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    cache = tmp_path / "cache"
    report1 = decode_videos(videos, first, decode_config, cache_root=cache, progress=False)
    report2 = decode_videos(videos, second, decode_config, cache_root=cache, progress=False)
    assert (report1.cache_hits, report2.cache_hits) == (0, 3)
    assert report1.decoded == report2.decoded
    assert ShardReader(first).stems() == ["v0", "v1", "v2"]
    for name in ("index.json", "shard-00000.tar"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    # The entries went into a pack in the cache, which both outputs link: one copy on disk.
    assert not list(cache.rglob("*.npy"))
    assert (first / "shard-00000.tar").samefile(second / "shard-00000.tar")
    # Other decode settings never reuse these entries.
    third = tmp_path / "c"
    third.mkdir()
    other = dataclasses.replace(decode_config, n_frames=4)
    assert decode_videos(videos, third, other, cache_root=cache, progress=False).cache_hits == 0
    assert ShardReader(third).load("v0").shape[0] == 4


def test_non_ascii_video_names_decode(tmp_path, decode_config):
    video = grey_ramp_video(tmp_path / "vidéo été 🎬.webm", n_frames=8)
    out = tmp_path / "out"
    out.mkdir()
    report = decode_videos(list_videos(tmp_path), out, decode_config, progress=False)
    assert report.decoded == [video.name]
    assert ShardReader(out).load("vidéo été 🎬").shape[0] == 8


def test_matroska_packet_count_matches_ffmpeg(tmp_path):
    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.frames import count_frames
    from vidmem.video.matroska import video_packet_count

    for n in (1, 5, 37):
        video = grey_ramp_video(tmp_path / f"v{n}.webm", n_frames=n, step=5)
        assert video_packet_count(video) == count_frames(video, ffmpeg_executable(), 30) == n
    damaged = tmp_path / "damaged.webm"
    damaged.write_bytes((tmp_path / "v37.webm").read_bytes()[:500])
    assert video_packet_count(damaged) is None  # unsure: the caller asks ffmpeg instead
    (tmp_path / "x.webm").write_bytes(b"not matroska at all")
    assert video_packet_count(tmp_path / "x.webm") is None


@pytest.mark.parametrize("kind", ["tiff", "webp", "png", "npy"])
def test_lossless_frame_formats_round_trip_exactly(kind):
    from vidmem.store.framestore import FrameFormat, decode_item, encode_frames

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 37, 21, 3), dtype=np.uint8)  # odd sizes on purpose
    fmt = FrameFormat(kind)
    data = encode_frames(frames, fmt)
    np.testing.assert_array_equal(decode_item(data, fmt.suffix, "v"), frames)
    assert encode_frames(frames, fmt) == data  # same pixels, same bytes


def test_jpeg_frames_keep_shape_and_quality_and_damage_is_reported():
    from vidmem.store.framestore import FrameFormat, decode_item, encode_frames

    frames = np.tile(np.linspace(0, 255, 21, dtype=np.uint8)[None, None, :, None], (3, 13, 1, 3))
    data = encode_frames(frames, FrameFormat("jpeg", 90))
    back = decode_item(data, ".jpg", "v.jpg")
    assert back.shape == frames.shape and np.abs(back.astype(int) - frames).max() <= 8
    with pytest.raises(DataError, match="v.jpg"):
        decode_item(data[:100], ".jpg", "v.jpg")


def test_tiff_frames_keep_one_frame_and_damage_is_reported():
    from vidmem.store.framestore import FrameFormat, decode_item, encode_frames

    frames = np.random.default_rng(1).integers(0, 256, (1, 9, 7, 3), dtype=np.uint8)
    data = encode_frames(frames, FrameFormat("tiff"))
    np.testing.assert_array_equal(decode_item(data, ".tif", "v.tif"), frames)  # still [1, h, w, 3]
    for damaged in (data[:60], data[:8] + b"\xff" * (len(data) - 8)):
        with pytest.raises(DataError, match="v.tif"):
            decode_item(damaged, ".tif", "v.tif")
    features = encode_frames(np.zeros((2, 4), np.float32), FrameFormat("npy"))
    with pytest.raises(DataError, match="v.tif"):  # a TIFF of something else is no frames file
        decode_item(_tiff_of(np.zeros((4, 5), np.uint16)), ".tif", "v.tif")
    assert decode_item(features, ".npy", "f").shape == (2, 4)


def _tiff_of(array: np.ndarray) -> bytes:
    import io

    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    return buffer.getvalue()


def test_decode_stores_lossless_tiff_by_default(tmp_path, decode_config):
    from vidmem.core.params import load_params

    assert load_params(REPO / "params.yaml")["decode"]["format"] == "tiff"
    videos = tmp_path / "videos"
    videos.mkdir()
    grey_ramp_video(videos / "a.webm", n_frames=12)
    raw = decode_videos(list_videos(videos), tmp_path / "raw", decode_config)
    tiff = dataclasses.replace(decode_config, format="tiff")
    stored = decode_videos(list_videos(videos), tmp_path / "tiff", tiff, cache_root=tmp_path / "c")
    assert raw.decoded == stored.decoded == ["a.webm"]
    assert ShardReader(tmp_path / "tiff").suffix == ".tif"
    np.testing.assert_array_equal(ShardReader(tmp_path / "tiff").load("a"),
                                  ShardReader(tmp_path / "raw").load("a"))


def test_frames_are_stored_at_the_backends_shared_input_size_never_upscaled(tmp_path,
                                                                            decode_config):
    from vidmem.backends import decode_config as resolve
    from vidmem.core.params import load_params
    from vidmem.data.demo import encode_webm
    from vidmem.video.ffmpeg_bin import ffmpeg_executable
    from vidmem.video.geometry import InputSpec, resize_frames

    params = load_params(REPO / "params.yaml")
    params["backends"] = ["efficientnet_lite0", "captions"]
    shared = resolve(Params(params)).input_geometry
    assert (shared.height, shared.width, shared.resize) == (224, 224, "squash")
    params["backends"] = ["efficientnet_lite0", "inception_v3"]  # 224² and 299²: aspect kept
    with_documented_backends(params)
    assert resolve(Params(params)).input_geometry is None
    params["backends"], params["decode"]["short_side"] = ["efficientnet_lite0"], 224
    assert resolve(Params(params)).input_geometry is None  # a short side set by hand: aspect kept

    # A textured 96x64 video, 32x32 input: stored resized exactly as extract would resize it.
    y, x = np.mgrid[0:64, 0:96]
    frames = np.stack([np.stack([(x * 2 + i * 9) % 256, (y * 3) % 256, (x + y) % 256], -1)
                       for i in range(8)]).astype(np.uint8)
    video = tmp_path / "wide.webm"
    encode_webm(frames, video, 10, ffmpeg_executable())
    spec = InputSpec.from_params({"size": 32, "value": "unit_range"}, "backend.b.input")
    wide = decode_video(video, decode_config)  # short side 48: 72x48
    at_input = decode_video(video, dataclasses.replace(decode_config, input_geometry=spec))
    assert wide.frames.shape == (8, 48, 72, 3) and at_input.frames.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(at_input.frames, resize_frames(wide.frames, spec))
    # Smaller than the input in one direction: kept at the source size, not upscaled.
    tall = InputSpec.from_params({"size": [56, 32], "value": "unit_range"}, "backend.b.input")
    assert decode_video(video, dataclasses.replace(decode_config, input_geometry=tall)
                        ).frames.shape == (8, 48, 72, 3)


def test_every_entry_of_the_videos_folder_is_accounted_for(tmp_path, decode_config):
    """A FIFO, a socket, a folder or a dangling link with a video's name is reported as skipped
    with what it is, never opened (a FIFO would block) and never silently left out; an entry
    without a video name is listed as ignored with the reason."""
    import os
    import socket

    from vidmem.video.frames import ignored_entries

    videos = tmp_path / "videos"
    videos.mkdir()
    grey_ramp_video(videos / "good.webm", n_frames=12)
    os.mkfifo(videos / "video23.webm")
    (videos / "folder.mp4").mkdir()
    (videos / "gone.mkv").symlink_to(videos / "missing.mkv")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(videos / "sock.mov"))
    (videos / "notes.txt").write_text("not a video")
    try:
        listed = list_videos(videos)
        out = tmp_path / "frames"
        out.mkdir()
        report = decode_videos(listed, out, decode_config, "skip", progress=False)
    finally:
        server.close()
    reasons = {s["video"]: s["reason"] for s in report.skipped}
    assert report.decoded == ["good.webm"]
    assert "FIFO" in reasons["video23.webm"] and "not opened" in reasons["video23.webm"]
    assert "folder" in reasons["folder.mp4"]
    assert "socket" in reasons["sock.mov"]
    assert "link to nothing" in reasons["gone.mkv"]
    ignored = ignored_entries(videos)
    assert [e["entry"] for e in ignored] == ["notes.txt"]
    accounted = set(report.decoded) | set(reasons) | {e["entry"] for e in ignored}
    assert accounted == {p.name for p in videos.iterdir()}


def test_npy_arrays_read_from_several_threads_at_once(tmp_path):
    """Extract's loader threads read .npy headers at once. NumPy parses them with ast, whose
    builder CPython 3.11 counts per interpreter: a thread switch inside it (here forced by a
    garbage collection that runs Python finalizers) fails the parse with SystemError
    (python/cpython#106905). Seen in CI; without vidmem's lock this fails here in under a
    second on CPython 3.11.7."""
    import gc
    import io
    import sys
    import threading

    from vidmem.core.files import load_npy
    from vidmem.store.framestore import decode_item

    frames = np.arange(3 * 4 * 4 * 3, dtype=np.uint8).reshape(3, 4, 4, 3)
    stored = io.BytesIO()
    np.save(stored, frames)
    columns = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.save(tmp_path / "columns.npy", columns)

    class Cycle:  # garbage with a finalizer: the collector runs Python code where it collects
        def __init__(self):
            self.itself = self

        def __del__(self):
            sum(range(50))

    failures: list[BaseException] = []

    def read_many():
        try:
            for i in range(3000):
                Cycle()
                np.testing.assert_array_equal(decode_item(stored.getvalue(), ".npy", "v"), frames)
                if i % 10 == 0:
                    np.testing.assert_array_equal(load_npy(tmp_path / "columns.npy"), columns)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)

    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(50)
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=read_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
    assert not failures, failures[0]
    assert load_npy(tmp_path / "columns.npy").flags.f_contiguous


def test_a_process_forked_while_a_thread_reads_an_npy_header_can_read_them(tmp_path):
    """Extract forks its loader processes while its threads read; a child that inherited the
    header lock held would wait forever on its first .npy."""
    import multiprocessing

    from vidmem.core import files

    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    with files._npy_header_lock:  # a thread of this process is mid-read when it forks
        child = multiprocessing.get_context("fork").Process(
            target=files.load_npy, args=(tmp_path / "a.npy",))
        child.start()
        child.join(timeout=20)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
