"""Sharing results through a DVC remote: push from one clone, pull in a fresh one, and
`dvc repro` has nothing to run. The remote is a real S3 endpoint on 127.0.0.1 (moto's
ThreadedMotoServer, as DVC's own tests use), reached through dvc-s3."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from conftest import commit_all, ran_stages, sh, tiny_project, use_backends

pytestmark = pytest.mark.e2e

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, **{k.lower(): v for k, v in CREDENTIALS.items()
                                            if k != "AWS_DEFAULT_REGION"},
                 region_name="us-east-1").create_bucket(Bucket="vidmem")
    yield url
    server.stop()


def test_push_then_a_fresh_clone_pulls_and_has_nothing_to_run(tmp_path, s3_endpoint):
    def one_backend(params) -> None:
        use_backends(params, {"efficientnet_lite0": "lstm"})

    (tmp_path / "first").mkdir()
    project = tiny_project(tmp_path / "first", one_backend)
    sh(["dvc", "remote", "add", "-d", "team", "s3://vidmem/dvc"], project)
    sh(["dvc", "remote", "modify", "team", "endpointurl", s3_endpoint], project)
    sh(["dvc", "repro"], project, env=CREDENTIALS)
    commit_all(project, "results")
    sh(["dvc", "push", "--run-cache"], project, env=CREDENTIALS)

    clone = tmp_path / "second"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    assert not (clone / "models" / "efficientnet_lite0.pt").exists()
    sh(["dvc", "pull", "--run-cache"], clone, env=CREDENTIALS)
    assert (clone / "models" / "efficientnet_lite0.pt").read_bytes() == \
        (project / "models" / "efficientnet_lite0.pt").read_bytes()
    run = sh(["dvc", "repro"], clone, env=CREDENTIALS)
    assert ran_stages(run.stdout) == {"scan"}, run.stdout  # the data set is as pushed
    assert Path(clone, "data", "frames").is_dir()
