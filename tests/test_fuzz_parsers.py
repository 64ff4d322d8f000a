"""Property-based tests of every reader of outside bytes: whatever the input, only vidmem's own
errors come out (each naming the file), and a bad video under `on_bad_input: skip` is reported,
never the end of the stage.

The WebM walker is fuzzed structure-aware: EBML element trees with real element IDs, correct and
wrong sizes, unknown sizes, and truncation, since random byte flips in real files miss the
interesting paths (the 8-byte file below was found this way). The example budget is fixed (a
Hypothesis profile in conftest.py) so the whole module runs in seconds in CI;
`HYPOTHESIS_PROFILE=deep python -m pytest tests/test_fuzz_parsers.py` searches much longer.
"""

from __future__ import annotations

import io
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vidmem.backends.precomputed import read_feature_file
from vidmem.core.errors import DataError, ParamsError, VidmemError
from vidmem.data.groundtruth import COLUMNS, read_captions, read_ground_truth
from vidmem.video import matroska
from vidmem.video.frames import decode_videos, list_videos

from conftest import grey_ramp_video

# An EBML header, then a SimpleBlock whose one byte of payload is shorter than a block header.
CRAFTED_WEBM = bytes.fromhex("1a45dfa380a38181")


def read_or_name_the_file(read, path: Path, data: bytes):
    """`read(path)` after writing `data` there: its result, or None when it raised DataError,
    which must name the file. Any other exception fails the test."""
    path.write_bytes(data)
    try:
        return read(path)
    except DataError as exc:
        assert path.name in str(exc)
        return None


# --- WebM / Matroska -------------------------------------------------------------------------

MASTER_IDS = [matroska.SEGMENT, matroska.CLUSTER, matroska.TRACKS, matroska.TRACK_ENTRY,
              matroska.BLOCK_GROUP]
LEAF_IDS = [matroska.TRACK_NUMBER, matroska.TRACK_TYPE, matroska.SIMPLE_BLOCK, matroska.BLOCK,
            0xE7, 0x4286]  # Timecode and EBMLVersion: elements the walker skips


def element_id(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def size_field(size: int, mode: str) -> bytes:
    """An EBML size: exact (minimal length), padded to 8 bytes, or 'unknown' (all ones)."""
    if mode == "unknown":
        return b"\x01\xff\xff\xff\xff\xff\xff\xff"
    if mode == "long":
        return (size | (1 << 56)).to_bytes(8, "big")
    length = next(n for n in range(1, 9) if size < (1 << (7 * n)) - 1)
    return (size | (1 << (7 * length))).to_bytes(length, "big")


@st.composite
def block_payload(draw) -> bytes:
    """A block: often well formed (track, timecode, flags incl. lacing bits), sometimes not."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=6))
    track = draw(st.integers(1, 3))
    flags = draw(st.sampled_from([0x00, 0x80, 0x02, 0x06]))
    return bytes([0x80 | track]) + b"\x00\x00" + bytes([flags]) + draw(st.binary(max_size=4))


@st.composite
def leaf(draw) -> tuple[int, bytes]:
    eid = draw(st.sampled_from(LEAF_IDS))
    if eid in (matroska.SIMPLE_BLOCK, matroska.BLOCK):
        return eid, draw(block_payload())
    if eid in (matroska.TRACK_NUMBER, matroska.TRACK_TYPE):
        return eid, bytes([draw(st.integers(0, 3))])
    return eid, draw(st.binary(max_size=4))


def trees():
    return st.recursive(leaf(), lambda children: st.tuples(st.sampled_from(MASTER_IDS),
                                                           st.lists(children, max_size=4)),
                        max_leaves=16)


@st.composite
def encode(draw, node) -> bytes:
    eid, content = node
    payload = content if isinstance(content, bytes) else \
        b"".join(draw(encode(child)) for child in content)
    mode = draw(st.sampled_from(["exact"] * 6 + ["long", "unknown", "short", "over"]))
    size = len(payload)
    if mode == "short":
        size = max(0, size - draw(st.integers(1, 3)))
    elif mode == "over":
        size += draw(st.integers(1, 3))
    return element_id(eid) + size_field(size, mode if mode in ("long", "unknown") else "exact") \
        + payload


@st.composite
def webm_files(draw) -> bytes:
    header = element_id(matroska.EBML_HEADER) + size_field(0, "exact")
    body = b"".join(draw(encode(tree)) for tree in draw(st.lists(trees(), min_size=1, max_size=3)))
    data = header + element_id(matroska.SEGMENT) + size_field(len(body), "exact") + body
    cut = draw(st.integers(0, len(data)))
    return data[:cut] if draw(st.booleans()) else data


@given(webm_files())
@example(CRAFTED_WEBM)
def test_webm_walker_returns_a_count_or_none_for_any_structure(data):
    count = matroska.count_video_packets(data)
    assert count is None or (isinstance(count, int) and count >= 0)
    # The file is read through a small window (bounded memory), with the same answer as the
    # walk over all of its bytes; a window smaller than the file makes it slide.
    import tempfile

    with tempfile.NamedTemporaryFile() as file:
        file.write(data)
        file.flush()
        window = matroska._FileBytes.WINDOW
        matroska._FileBytes.WINDOW = 16
        try:
            assert matroska.video_packet_count(file.name) == count
        finally:
            matroska._FileBytes.WINDOW = window


@given(st.binary(max_size=64))
def test_webm_walker_survives_random_bytes_after_an_ebml_header(tail):
    count = matroska.count_video_packets(element_id(matroska.EBML_HEADER) + tail)
    assert count is None or count >= 0


def test_crafted_webm_is_skipped_and_reported_beside_good_videos(tmp_path, decode_config):
    videos = tmp_path / "videos"
    videos.mkdir()
    grey_ramp_video(videos / "good1.webm", 10)
    grey_ramp_video(videos / "good2.webm", 10)
    (videos / "crafted.webm").write_bytes(CRAFTED_WEBM)
    assert matroska.video_packet_count(videos / "crafted.webm") is None
    out = tmp_path / "frames"
    out.mkdir()
    report = decode_videos(list_videos(videos), out, decode_config, "skip", progress=False)
    assert report.decoded == ["good1.webm", "good2.webm"]
    assert [s["video"] for s in report.skipped] == ["crafted.webm"]
    with pytest.raises(VidmemError, match="crafted.webm"):
        decode_videos(list_videos(videos), out, decode_config, "fail", progress=False)


# The PPM frame stream from ffmpeg: tests/test_pixel_formats.py (headers that lie, 16-bit).


# --- ground truth and captions ----------------------------------------------------------------

CSV_CELLS = st.one_of(st.sampled_from(["0.5", "1.5", "-1", "", "nan", "oops", "video1.webm",
                                       "../x.webm", '"a,b"', "1e400"]),
                      st.text(string.printable, max_size=6))


@st.composite
def ground_truth_files(draw) -> bytes:
    header = draw(st.sampled_from([",".join(COLUMNS), "video,short-term_memorability",
                                   "\ufeff" + ",".join(COLUMNS), ""]))
    rows = draw(st.lists(st.lists(CSV_CELLS, min_size=0, max_size=6), max_size=6))
    text = "\n".join([header, *(",".join(row) for row in rows)])
    raw = text.encode("utf-8")
    return raw + draw(st.binary(max_size=4)) if draw(st.booleans()) else raw


@given(ground_truth_files(), st.sampled_from(["skip", "fail"]))
def test_ground_truth_reader_raises_only_data_errors_naming_the_file(tmp_path, data, policy):
    truth = read_or_name_the_file(lambda p: read_ground_truth(p, policy), tmp_path / "gt.csv", data)
    if truth is not None:
        scores = truth.table[["short-term_memorability", "long-term_memorability"]]
        assert scores.apply(lambda c: c.between(0, 1)).all().all()
        for item in truth.skipped:
            assert "np." not in item["reason"]  # plain values, not NumPy reprs


@given(st.one_of(st.binary(max_size=80),
                 st.lists(st.tuples(st.sampled_from(["video1.webm", "video2.webm", "../v.webm",
                                                     "", "a/b.webm"]),
                                    st.sampled_from(["\t", " ", ""]),
                                    st.text(max_size=10)), max_size=5)
                 .map(lambda rows: "\n".join(a + b + c for a, b, c in rows).encode())))
def test_captions_reader_raises_only_data_errors_naming_the_file(tmp_path, data):
    captions = read_or_name_the_file(read_captions, tmp_path / "captions.txt", data)
    if captions is not None:
        assert all("-" not in caption for caption in captions.values())


# --- precomputed feature files ----------------------------------------------------------------

def npy_with_header(shape: tuple[int, ...], descr: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + data


@st.composite
def npy_files(draw) -> bytes:
    shape = tuple(draw(st.lists(st.integers(0, 10**12), max_size=3)))
    descr = draw(st.sampled_from(["<f4", "<f8", "<i2", "|b1", "|O", "<U3"]))
    data = draw(st.binary(max_size=48))
    raw = npy_with_header(shape, descr, data)
    return raw[:draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw


@given(npy_files())
@example(npy_with_header((10**12, 3), "<f4", bytes(24)))  # claims 12 TB, holds 24 bytes
@example(npy_with_header((10**8, 2), "<f8", bytes(16)))   # claims 1.6 GB: never allocated
def test_npy_feature_files_are_checked_before_loading(tmp_path, data):
    array = read_or_name_the_file(read_feature_file, tmp_path / "video1.npy", data)
    if array is not None:
        assert array.dtype == np.float32 and array.ndim == 2 and np.isfinite(array).all()


@given(st.one_of(st.binary(max_size=60),
                 st.lists(st.lists(st.sampled_from(["1", "-2.5", "nan", "inf", "x", "1e5",
                                                    ",", ""]), max_size=4), max_size=4)
                 .map(lambda rows: "\n".join(" ".join(r) for r in rows).encode())),
       st.sampled_from([".txt", ".csv"]))
def test_text_feature_files_raise_only_data_errors_naming_the_file(tmp_path, data, suffix):
    array = read_or_name_the_file(read_feature_file, tmp_path / f"video1{suffix}", data)
    if array is not None:
        assert array.dtype == np.float32 and np.isfinite(array).all()


# --- params values ----------------------------------------------------------------------------

VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                                st.floats(allow_nan=True, allow_infinity=True),
                                st.text(max_size=8), st.sampled_from(["1e-05", "auto", "cpu"])),
                      lambda inner: st.one_of(st.lists(inner, max_size=3),
                                              st.dictionaries(st.text(max_size=5), inner,
                                                              max_size=3)),
                      max_leaves=6)


def repo_params() -> dict:
    from vidmem.core.params import load_params

    return load_params(Path(__file__).resolve().parents[1] / "params.yaml")


def set_key(params: dict, key: str, value) -> dict:
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})  # a key params.yaml leaves to its default
    node[parts[-1]] = value
    return params


PARAM_KEYS = ["lr", "epochs", "batch_size", "target", "model.hidden_size", "model.dropout",
              "base.seed", "decode.n_frames", "decode.short_side", "decode.workers",
              "decode.short_video", "decode.timeout_s", "decode.ffmpeg", "data.on_bad_input",
              "data.captions", "split.train", "concat.misalign_control", "cache.dir",
              "evaluate.bootstrap_resamples", "demo.n_videos", "demo.seconds", "train.device",
              "train.shuffle_train_labels", "backend.efficientnet_lite0.input",
              "backend.efficientnet_lite0.input.size", "backend.efficientnet_lite0.input.value",
              "backend.efficientnet_lite0.input.resize", "backend.efficientnet_lite0.frames_per_batch",
              "backend.efficientnet_lite0.model", "backend.efficientnet_lite0.amp",
              "backend.efficientnet_lite0.weights", "backend.efficientnet_lite0.seed"]


def params_readers(key: str, value) -> list:
    """Every typed reader of params.yaml's sections, over the repo's params with `key` set to
    `value`; each a function that parses its section (or raises ParamsError)."""
    from vidmem.backends import backend_config
    from vidmem.backends.torch_backbones import TorchConfig
    from vidmem.core.params import (
        CacheConfig,
        ConcatConfig,
        CVConfig,
        DataConfig,
        DecodeConfig,
        EvaluateConfig,
        Params,
        SplitConfig,
        TrainConfig,
    )
    from vidmem.data.demo import DemoConfig
    from vidmem.data.groundtruth import create_layout

    params = set_key(repo_params(), key, value)
    section = params["backend"]["efficientnet_lite0"]
    readers = [lambda: TorchConfig.from_section(section, "backend.efficientnet_lite0"),
               lambda: backend_config(Params(params), "efficientnet_lite0").spec,
               lambda: DataConfig.from_params(params).as_dict(),  # its keys are read lazily
               # the layout is checked by the data layer, where the data set is opened
               lambda: create_layout(DataConfig.from_params(params).format)]
    return readers + [lambda c=config: c.from_params(params) for config in (
        CacheConfig, ConcatConfig, DecodeConfig, EvaluateConfig, SplitConfig,
        TrainConfig, DemoConfig, CVConfig)]


@given(st.sampled_from(PARAM_KEYS), VALUES)
def test_any_params_value_is_accepted_or_a_params_error_naming_its_key(key, value):
    readers = params_readers(key, value)
    for read in readers:
        try:
            read()
        except ParamsError as exc:
            assert key.rsplit(".", 1)[-1] in str(exc)


# Values each key must refuse, with the key named in the error (the fuzz test above accepts a
# reader that takes everything; this table does not).
INVALID_PARAMS = [
    ("lr", "fast"), ("lr", -1.0), ("epochs", 0), ("epochs", 2.5), ("batch_size", "all"),
    ("target", "mid-term_memorability"), ("model.hidden_size", 0), ("model.dropout", 1.5),
    ("base.seed", "x"), ("decode.n_frames", 0), ("decode.short_side", -5),
    ("decode.workers", -1), ("decode.short_video", "pad"), ("decode.timeout_s", 0),
    ("decode.format", "bmp"), ("data.on_bad_input", "ignore"), ("split.train", -0.5),
    ("concat.misalign_control", "yes please"), ("evaluate.bootstrap_resamples", -3),
    ("demo.n_videos", 0), ("train.device", "tpu"), ("train.shuffle_train_labels", 3),
    ("backend.efficientnet_lite0.input.size", 0),
    ("backend.efficientnet_lite0.input.value", "sideways"),
    ("backend.efficientnet_lite0.input.resize", "stretch-ish"),
    ("backend.efficientnet_lite0.device", "gpu0"), ("backend.efficientnet_lite0.amp", "fp8"),
    ("data.format", "kinetics"), ("split.source", "mine"), ("cv.folds", [0, 2]),
    ("cv.folds", [0]), ("cv.val_fraction", 1.5),
]


@pytest.mark.parametrize("key, value", INVALID_PARAMS)
def test_each_invalid_params_value_is_refused_naming_its_key(key, value):
    readers = params_readers(key, value)
    errors = []
    for read in readers:
        try:
            read()
        except ParamsError as exc:
            errors.append(str(exc))
    assert errors, f"{key}={value!r} was accepted by every reader"
    assert all(key.rsplit(".", 1)[-1] in message for message in errors), errors


@given(st.binary(max_size=80))
def test_params_file_of_any_bytes_is_read_or_a_params_error(tmp_path, data):
    from vidmem.core.params import load_params

    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    try:
        load_params(path)
    except ParamsError as exc:
        assert "params.yaml" in str(exc)


# --- stored frames ---------------------------------------------------------------------------

STORED_FRAMES = np.random.default_rng(3).integers(0, 256, (3, 12, 10, 3), dtype=np.uint8)


@given(st.sampled_from(["tiff", "webp", "png", "jpeg"]),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
       st.integers(0, 10**6))
def test_damaged_stored_frames_raise_only_data_errors_naming_the_item(kind, flips, keep):
    """Shard readers check each item's sha256 first, so damage should never get this far; if
    it does (a bug, a reader without the index), it is a DataError naming the item or frames
    of the stored shape, never another exception or a huge allocation."""
    from vidmem.store.framestore import FrameFormat, decode_item, encode_frames

    fmt = FrameFormat(kind)
    data = bytearray(encode_frames(STORED_FRAMES, fmt))
    for position, value in flips:
        data[position % len(data)] = value
    try:
        frames = decode_item(bytes(data[:max(1, keep % (len(data) + 1))]), fmt.suffix,
                             f"video1{fmt.suffix}")
    except DataError as exc:
        assert f"video1{fmt.suffix}" in str(exc)
        return
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3
