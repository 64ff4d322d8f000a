"""How a video's frames are stored between stages: one item per video (a member of the decode
output's shards, vidmem.store.shards, and a per-video cache entry), in a format chosen by
`decode.format`.

- `tiff` (default): one page per frame, zstd (level 1) after horizontal differencing
  (TIFF's predictor 2), written and read by tifffile + imagecodecs: lossless, so features are
  bitwise identical to features of the raw frames. On natural footage at 224², 0.60 of the raw
  bytes; 4.4 ms to write and 2.5 ms to read 8 frames (BENCHMARKS.md, storage), which keeps the
  decode stage and the extract loader close to their floors.
- `webp`: the frames stacked into one image, lossless WebP (fastest method): 0.42 of raw at
  224² (0.37 at 398×224), but 12.4 ms to write and 7.4 ms to read.
- `png`: the same strip as lossless PNG (about 0.5 of raw; slower to write).
- `jpeg`: the strip as JPEG at `decode.jpeg_quality` (95), no chroma subsampling, each frame
  padded to a multiple of 8 rows so no 8×8 block straddles two frames: about 0.16 of raw, but
  lossy. Measured on natural footage, EfficientNet-Lite0 features from JPEG q95 frames are 5%
  (relative L2) from those of the raw frames; ±1 grey level of noise alone moves them 12%.
- `npy`: raw uint8 `[frames, H, W, 3]` (what every stage stored before).

Image files say what they hold in their EXIF image description (`{"frames": n, "height": h}`);
TIFF files in theirs (tifffile's `{"shape": [n, h, w, 3]}`), so a reader needs nothing else.
Pillow and tifffile write the same bytes for the same pixels (pinned versions), so outputs stay
byte-identical across machines.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import tifffile
from PIL import Image

from vidmem.core.errors import DataError
from vidmem.core.files import checked_npy_header

NPY_HEADER_MAX = 65536 + 10  # a .npy header's magic, length and text are at most this long

SUFFIXES = {"tiff": ".tif", "webp": ".webp", "png": ".png", "jpeg": ".jpg", "npy": ".npy"}
JPEG_BLOCK = 8  # rows; with 4:4:4 sampling a JPEG block is 8×8
MAX_SIDE = {"webp": 16_383, "jpeg": 65_500, "png": 2**31 - 1}
DESCRIPTION = 0x010E  # the EXIF ImageDescription tag


@dataclass(frozen=True)
class FrameFormat:
    kind: str = "npy"  # tiff | webp | png | jpeg | npy
    quality: int = 95  # JPEG only

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.kind]


def _strip(frames: np.ndarray, pad_to: int) -> np.ndarray:
    """Frames [n, h, w, 3] stacked vertically, each padded (edge rows repeated) to a multiple of
    `pad_to` rows."""
    n, height = frames.shape[:2]
    padded = -(-height // pad_to) * pad_to
    if padded != height:
        frames = np.concatenate([frames, np.repeat(frames[:, -1:], padded - height, axis=1)], axis=1)
    return frames.reshape(n * padded, *frames.shape[2:])


def encode_frames(frames: np.ndarray, fmt: FrameFormat) -> bytes:
    """The bytes of one video's frames in `fmt` (uint8 RGB [n, h, w, 3]; `npy` takes any
    array, features included)."""
    buffer = io.BytesIO()
    if fmt.kind == "npy":
        np.save(buffer, frames, allow_pickle=False)
        return buffer.getvalue()
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [n, h, w, 3], got {frames.dtype} {frames.shape}")
    if fmt.kind == "tiff":
        tifffile.imwrite(buffer, frames, photometric="rgb", compression="zstd",
                         compressionargs={"level": 1}, predictor=True)
        return buffer.getvalue()
    about = Image.Exif()
    about[DESCRIPTION] = json.dumps({"frames": int(frames.shape[0]),
                                     "height": int(frames.shape[1]),
                                     **({"quality": fmt.quality} if fmt.kind == "jpeg" else {})})
    strip = _strip(frames, JPEG_BLOCK if fmt.kind == "jpeg" else 1)
    if max(strip.shape[:2]) > MAX_SIDE[fmt.kind]:
        raise DataError(f"{frames.shape[0]} frames of {frames.shape[1]} rows exceed the "
                        f"{fmt.kind} size limit: set decode.format: npy (or fewer frames)")
    image = Image.fromarray(strip)
    if fmt.kind == "webp":
        image.save(buffer, "WEBP", lossless=True, method=0, quality=0, exif=about.tobytes())
    elif fmt.kind == "png":
        image.save(buffer, "PNG", compress_level=6, exif=about.tobytes())
    else:
        image.save(buffer, "JPEG", quality=fmt.quality, subsampling=0, optimize=False,
                   exif=about.tobytes())
    return buffer.getvalue()


def decode_item(data: bytes, suffix: str, name: str) -> np.ndarray:
    """The array in one stored item's bytes: an `.npy` array (features, raw frames) or frames
    in an image format; `name` says where the bytes came from in errors."""
    if suffix == ".npy":
        return _decode_npy(data, name)
    if suffix == ".tif":
        return _decode_tiff(data, name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            about = json.loads(image.getexif().get(DESCRIPTION) or "null")
            strip = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{name}: not a readable frames image ({exc})") from exc
    if not isinstance(about, dict) or not {"frames", "height"} <= set(about):
        raise DataError(f"{name}: not a vidmem frames file (no frame count); re-run its stage")
    n, height = int(about["frames"]), int(about["height"])
    if n < 1 or strip.shape[0] % n:
        raise DataError(f"{name}: {strip.shape[0]} rows do not hold {n} frames")
    # A writable copy of just the frames (the decoded image is read-only and padded).
    return np.array(strip.reshape(n, strip.shape[0] // n, *strip.shape[1:])[:, :height])


def _decode_npy(data: bytes | bytearray, name: str) -> np.ndarray:
    """The array of `.npy` bytes, as a view of them (writable when `data` is a bytearray): no
    copy of the data, which `np.load` on a BytesIO made while holding the GIL, the largest cost
    of the extract loader's threads."""
    try:
        header = checked_npy_header(io.BytesIO(bytes(memoryview(data)[:NPY_HEADER_MAX])),
                                    len(data))
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{name}: not a readable .npy array ({exc})") from exc
    return header.shaped(np.frombuffer(data, dtype=header.dtype, count=header.count,
                                       offset=header.offset))


def _decode_tiff(data: bytes, name: str) -> np.ndarray:
    try:
        frames = tifffile.imread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001
        # On damaged bytes tifffile's parser raises whatever its unpacking hits (TiffFileError,
        # struct.error, TypeError, ZeroDivisionError, ... found by tests/test_fuzz_parsers.py)
        # and imagecodecs its codec errors: any of them means "not a readable TIFF".
        raise DataError(f"{name}: not a readable frames TIFF ({exc})") from exc
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"{name}: holds {frames.dtype} {frames.shape}, not uint8 frames "
                        "[n, h, w, 3]; re-run its stage")
    return frames
