"""Model files fetched from a URL come over https and can be pinned by sha256 in params: a
mismatch is an error naming the file and both digests, and nothing is unpacked or run."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from vidmem.backends.poets import GRAPH_FILE, PoetsConfig, fetch_graph
from vidmem.core.errors import ParamsError, VidmemError


def graph_archive(path, payload=b"not really a GraphDef"):
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(GRAPH_FILE)
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plain_http_graph_url_is_refused(tmp_path):
    with pytest.raises(ParamsError, match="only https://"):
        fetch_graph("http://download.tensorflow.org/models/x.tgz", tmp_path)


def test_pinned_archive_is_checked_before_it_is_unpacked(tmp_path):
    archive = graph_archive(tmp_path / "inception.tgz")
    url = archive.as_uri()
    wrong = "0" * 64
    with pytest.raises(VidmemError, match=f"inception.tgz has sha256 {sha256(archive)}, but "
                                          f"params pin {wrong}"):
        fetch_graph(url, tmp_path / "wrong", wrong)
    assert not (tmp_path / "wrong" / GRAPH_FILE).exists()  # nothing unpacked
    graph = fetch_graph(url, tmp_path / "right", sha256(archive))
    assert graph.read_bytes() == b"not really a GraphDef"


def test_pinned_local_graph_file_is_checked(tmp_path):
    graph = tmp_path / GRAPH_FILE
    graph.write_bytes(b"graph bytes")
    assert fetch_graph(str(graph), tmp_path, sha256(graph)) == graph
    with pytest.raises(VidmemError, match=f"{GRAPH_FILE} has sha256 {sha256(graph)}"):
        fetch_graph(str(graph), tmp_path, "f" * 64)


@pytest.mark.parametrize("pin", ["abc", "z" * 64, 12])
def test_graph_pin_param_must_be_a_sha256(pin):
    with pytest.raises(ParamsError, match="backend.poets.graph_sha256"):
        PoetsConfig.from_section({"graph": "g.pb", "graph_sha256": pin}, "backend.poets")
