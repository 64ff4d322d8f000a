"""TF-for-Poets bottlenecks: the classic `retrain.py` flow on the 2015 Inception V3 graph.

params.yaml, `backend.<name>`:
    kind: poets
    graph: <path to classify_image_graph_def.pb, or the URL of inception-2015-12-05.tgz>
    bottleneck_dir: null    # default <cache.dir>/bottlenecks/<graph digest>-<cpu|gpu>
    jpeg_quality: 95
    frames_per_batch: 32
    input: {size: 299, resize: squash, interpolation: bilinear, value: {subtract: 128, divide: 128}}

Pixel handling is the tutorial's, and it happens *inside the graph*: each frame is JPEG-encoded
and fed as bytes to `DecodeJpeg/contents:0`; the graph decodes it, resizes it bilinearly to
299x299 (`ResizeBilinear`) and maps it to (x-128)/128 (`Sub`, `Mul`) before the network. The
declared `value` must therefore be `tf_inception` ({subtract: 128, divide: 128}); at start-up a
black and a white frame go through the graph and `Mul:0` is read back, so a graph that normalizes
differently is refused rather than silently mis-declared. The bottleneck is `pool_3/_reshape:0`
(2048-d). The graph is built for batch size 1, so frames go through one at a time.

Bottlenecks are cached as retrain.py did, one text file per frame (one line of comma-joined
floats, no trailing newline), named `<jpeg sha256>.jpg_inception_v3.txt`: a frame is recomputed
only when its file is missing or unreadable (truncated, "Invalid float found"), and a changed
frame has another name, so a stale bottleneck is never used. The extract stage's output holds the
same text files per video (`<stem>/frame000.jpg_inception_v3.txt`, ...), and the concat stage
reads them ("concat bottlenecks"). With `cache.dir: null` (and no `bottleneck_dir`) the
bottlenecks and a downloaded graph go to a temporary folder that lasts as long as the backend.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vidmem.backends._tf_import import import_tensorflow, tensorflow_numerics
from vidmem.backends.base import Backend
from vidmem.core.errors import ParamsError, VidmemError
from vidmem.core.files import check_pinned_digest, file_digest, write_bytes, write_text
from vidmem.core.params import as_int, as_sha256, is_url, optional_str, required_str
from vidmem.store.bottlenecks import (
    BOTTLENECK_SUFFIX,
    format_bottleneck,
    parse_bottleneck,
    write_video_bottlenecks,
)
from vidmem.store.cache import ItemCache, open_cache
from vidmem.video.geometry import InputSpec

# Over https: the GraphDef is executed, so it must not be swappable on the way (the tutorial
# used http). No public sha256 of this archive was found to pin by default (see README).
DEFAULT_GRAPH_URL = "https://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
GRAPH_FILE = "classify_image_graph_def.pb"
JPEG_INPUT = "DecodeJpeg/contents:0"
NORMALIZED = "Mul:0"
BOTTLENECK = "pool_3/_reshape:0"


def fetch_graph(source: str, download_dir: Path, sha256: str | None = None) -> Path:
    """A local GraphDef path as is; a tarball URL (https, or file) downloaded once and unpacked
    (as retrain.py). With `sha256`, the .pb path or the downloaded archive must have that digest."""
    if "://" not in source:
        path = Path(source)
        if not path.exists():
            raise ParamsError(f"graph file {path} not found (the backend's 'graph' param)")
        check_pinned_digest(path, sha256, "graph file")
        return path
    if not source.startswith(("https://", "file://")):
        raise ParamsError(f"graph URL {source}: only https:// (or file://) is fetched, since the "
                          "graph runs as code in TensorFlow and plain http can be swapped on the "
                          "way; use the https address or a local .pb path")
    target = download_dir / GRAPH_FILE
    if not target.exists():
        archive_path = download_dir / source.rsplit("/", 1)[-1]
        try:
            with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310 - https/file only
                write_bytes(archive_path, response.read())
        except OSError as exc:
            raise VidmemError(f"could not download {source} ({exc}); offline, set the backend's "
                              f"'graph' to a local {GRAPH_FILE}") from exc
        check_pinned_digest(archive_path, sha256, f"graph archive downloaded from {source} to")
        with tarfile.open(archive_path) as archive:
            member = archive.extractfile(GRAPH_FILE)
            if member is None:
                raise VidmemError(f"{source} holds no {GRAPH_FILE}")
            write_bytes(target, member.read())
    return target


def read_bottleneck(path: Path, dim: int) -> np.ndarray | None:
    """The cached bottleneck, or None if it is missing, truncated or not all floats."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return parse_bottleneck(text, dim)


@dataclass(frozen=True)
class PoetsConfig:
    """`backend.<name>` for `kind: poets`."""

    graph: str
    graph_sha256: str | None
    bottleneck_dir: str | None
    jpeg_quality: int

    @classmethod
    def from_section(cls, section: dict[str, Any], where: str) -> PoetsConfig:
        graph = required_str(section.get("graph", DEFAULT_GRAPH_URL), f"{where}.graph",
                             "a .pb path or a URL")
        pin = as_sha256(section.get("graph_sha256"), f"{where}.graph_sha256",
                        "the .pb file or of the downloaded archive")
        return cls(graph=graph, graph_sha256=pin,
                   bottleneck_dir=optional_str(section.get("bottleneck_dir"),
                                               f"{where}.bottleneck_dir"),
                   jpeg_quality=as_int(section.get("jpeg_quality", 95), f"{where}.jpeg_quality", 1))


class PoetsBottleneck(Backend):
    expected_range = (-1.0, 1.0)

    def __init__(self, name: str, spec: InputSpec, config: dict[str, Any],
                 cache_root: str | os.PathLike | None = None) -> None:
        super().__init__(name, spec, config, cache_root)
        settings = PoetsConfig.from_section(config, f"backend.{name}")
        if spec.values != "(x-128)/128":
            raise ParamsError(f"backend {name}: the classic Inception graph normalizes inside, "
                              "to (x-128)/128; declare input.value: {subtract: 128, divide: 128}")
        tf = import_tensorflow()
        self.numerics = tensorflow_numerics(tf)
        # No cache asked for, or a shared URL cache (the bottleneck files are this backend's own
        # local cache): keep nothing beyond this backend's life.
        if cache_root is None or is_url(cache_root):
            self._scratch = tempfile.TemporaryDirectory(prefix="vidmem-poets-")
            cache_root = self._scratch.name
        cache_root = Path(cache_root)
        graph_path = fetch_graph(settings.graph, cache_root / "poets", settings.graph_sha256)
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(graph_path.read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        try:
            self.jpeg_input = graph.get_tensor_by_name(JPEG_INPUT)
            self.bottleneck = graph.get_tensor_by_name(BOTTLENECK)
        except KeyError as exc:
            raise VidmemError(f"{graph_path} lacks {JPEG_INPUT} or {BOTTLENECK}: not a "
                              "TF-for-Poets Inception graph") from exc
        names = {op.name for op in graph.get_operations()}
        self.normalized = graph.get_tensor_by_name(NORMALIZED) if "Mul" in names else None
        self.session = tf.compat.v1.Session(graph=graph)
        self.feature_dim = int(np.prod(self.bottleneck.shape[1:]))
        digest = file_digest(graph_path)[:16]
        self.weights = f"TF-for-Poets graph {graph_path.name} (sha256 {digest})"
        # One folder per graph and device: a GPU's bottlenecks are not reused by a CPU run.
        self.bottleneck_dir = Path(settings.bottleneck_dir) if settings.bottleneck_dir else \
            cache_root / "bottlenecks" / f"{digest}-{self.numerics['device']}"
        self.quality = settings.jpeg_quality
        self.reused = 0
        # The cached file of each feature row of the last batch (by the row's bytes), so
        # save_video copies it instead of formatting the floats again.
        self._files: dict[bytes, Path] = {}
        self.check_graph_normalization()

    def jpeg(self, frame: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        # 4:4:4 chroma: the frame is already decoded video; do not blur its colours again.
        Image.fromarray(frame).save(buffer, format="JPEG", quality=self.quality, subsampling=0)
        return buffer.getvalue()

    def check_graph_normalization(self, tolerance: float = 0.02) -> None:
        """Feed a black and a white frame and read `Mul:0`: the values the graph really gives
        its network must be what the declared input spec says, else the params are wrong."""
        if self.normalized is None:
            return
        for level in (0, 255):
            frame = np.full((self.spec.height, self.spec.width, 3), level, np.uint8)
            fed = self.session.run(self.normalized, {self.jpeg_input: self.jpeg(frame)})
            expected = self.spec.fed_range(frame[None])[0]
            if abs(float(fed.mean()) - expected) > tolerance:
                raise VidmemError(
                    f"backend {self.name}: the graph maps pixel value {level} to "
                    f"{float(fed.mean()):.3f} at {NORMALIZED}, but input.value declares "
                    f"{self.spec.values} ({expected:.3f}); declare what the graph does")

    def bottleneck_path(self, jpeg: bytes) -> Path:
        return self.bottleneck_dir / f"{hashlib.sha256(jpeg).hexdigest()}{BOTTLENECK_SUFFIX}"

    def _extract(self, frames: np.ndarray) -> np.ndarray:
        features = np.empty((len(frames), self.feature_dim), np.float32)
        self._files = {}
        for i, frame in enumerate(frames):
            jpeg = self.jpeg(frame)
            path = self.bottleneck_path(jpeg)
            cached = read_bottleneck(path, self.feature_dim)
            if cached is not None:
                features[i] = cached
                self.reused += 1
            else:
                bottleneck = self.session.run(self.bottleneck, {self.jpeg_input: jpeg})
                features[i] = np.reshape(bottleneck, -1)
                write_text(path, format_bottleneck(features[i]))
            self._files[features[i].tobytes()] = path
        return features

    # Its output keeps the TF-for-Poets layout (one text file per frame, as retrain.py reads
    # them), not shards.
    sharded_output = False

    def video_cache(self, scratch: str | os.PathLike | None = None) -> ItemCache:
        """Off: the per-frame bottleneck files are this backend's cache (and `save_video`
        writes the output itself, so the scratch folder stays empty)."""
        return open_cache(None, f"extract/{self.name}", {}, scratch=scratch)

    def save_video(self, out_dir: Path, stem: str, features: np.ndarray, cache: ItemCache,
                   digest: str, facts: dict[str, Any]) -> None:
        """`<stem>/frame000.jpg_inception_v3.txt`, ...: one bottleneck text file per frame,
        copied from the per-frame cache."""
        write_video_bottlenecks(out_dir / stem, features,
                                [self._files.get(row.tobytes()) for row in features])
