"""benchmarks/run.py: one table of benchmarks, and a default that works with params.yaml."""

from __future__ import annotations

import sys

import pytest

from vidmem.core.params import Params, load_params

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
runner = pytest.importorskip("run", reason="benchmarks/run.py imports its bench package")


def test_every_benchmark_is_in_the_table_and_needs_only_known_ones():
    assert list(runner.BENCHMARK_TABLE) == runner.BENCHMARKS
    for needs, function in runner.BENCHMARK_TABLE.values():
        assert set(needs) <= set(runner.BENCHMARKS) and callable(function)


def test_the_default_backends_are_the_listed_frame_backends():
    """params.yaml lists captions, which has no frames/s to time: the default used to stop at
    extract with "backend captions (kind: captions) needs a captions file"."""
    params = load_params(REPO / "params.yaml")
    assert "captions" in params["backends"]
    assert runner.frame_backends(Params(params)) == ["efficientnet_lite0"]
    params["backends"] = ["captions", "inception_v3", "efficientnet_lite0"]
    assert runner.frame_backends(Params(params)) == ["inception_v3", "efficientnet_lite0"]
