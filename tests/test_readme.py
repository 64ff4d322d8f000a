"""What README.md promises a new user: a page that fits, links that resolve, a diagram of the real
stages, commands that run as typed (the run itself is in test_e2e.py, on its tiny project), and
metrics files that `dvc metrics show` can print."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# README commands the end-to-end test does not run, with the reason. Everything else in a bash
# block of README.md must be run by `test_readme_commands_run_as_typed` (test_e2e.py).
NOT_RUN = {
    "pip install -r requirements.txt": "the environment running this test; tests/test_lock.py "
                                       "checks it equals the lock",
    "dvc repro": "run first by the end-to-end test's own set-up",
}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def readme_commands() -> list[str]:
    """Every command in README.md's ```bash blocks, as a user would type it: comments dropped,
    continuation lines joined, in order."""
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(re.sub(r"\s+", " ", command))
    return commands


def test_readme_fits_on_a_page():
    assert len(README.read_text().splitlines()) <= 200


def test_readme_has_the_set_up_and_used_by_commands():
    commands = readme_commands()
    assert commands[:2] == ["pip install -r requirements.txt", "dvc repro"]
    for command in ("dvc metrics show", "dvc metrics diff", "dvc exp run -S lr=1e-4",
                    "dvc plots show", "dvc dag"):
        assert command in commands


def test_every_readme_link_resolves():
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links to its docs"
    missing = [link for link in local if not (REPO / link).exists()]
    assert missing == []


def test_readme_diagram_names_exactly_the_stages_of_dvc_yaml():
    stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    diagram = re.sub(r"\([^)]*\)", "", _blocks("text")[0])  # words in brackets are no stages
    drawn = {name.split("@")[0] for name in re.findall(r"[a-z_]+(?:@[a-z\-]+)?", diagram)}
    assert drawn == stages, (drawn ^ stages)


def _tabulate_probes() -> set[str]:
    """The attributes `tabulate` asks a table for to guess its kind; DVC's TabularData answers
    any attribute with the column of that name, so a metric named like one breaks rendering."""
    import tabulate

    source = inspect.getsource(tabulate._normalize_tabular_data)
    return set(re.findall(r'hasattr\(tabular_data, "(\w+)"\)', source))


def _columns(data: object, prefix: str = "") -> list[str]:
    """A metrics file's columns as `dvc metrics show` names them (nested keys joined by '.')."""
    if not isinstance(data, dict):
        return [prefix]
    return [column for key, value in data.items()
            for column in _columns(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")]


def metrics_files(root: Path) -> list[Path]:
    declared = []
    for stage in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("do", stage).get("metrics", []):  # foreach stages: under `do`
            declared.append(next(iter(entry)) if isinstance(entry, dict) else entry)
    patterns = [re.sub(r"\$\{[^}]+\}", "*", path) for path in declared]
    files = sorted({path for pattern in patterns for path in root.glob(pattern)})
    # DVCLive's summaries (declared by the train stage's dvclive directory).
    return files + sorted(root.glob("metrics/train/*/metrics.json"))


def check_metrics_render(root: Path) -> None:
    """Every metrics file under `root` renders in `dvc metrics show`'s table, and none of its
    columns is an attribute name `tabulate` probes."""
    from dvc.compare import show_metrics

    probes = _tabulate_probes()
    assert {"values", "index"} <= probes  # the probe list was read
    files = metrics_files(root)
    assert files
    metrics = {}
    for path in files:
        data = json.loads(path.read_text())
        clashes = [c for c in _columns(data) if c in probes]
        assert clashes == [], f"{path}: {clashes} would break `dvc metrics show`"
        metrics[str(path.relative_to(root))] = {"data": data}
    show_metrics({"": {"data": metrics}})  # the renderer `dvc metrics show` calls


def test_the_committed_demo_metrics_render_in_dvc_metrics_show(capsys):
    check_metrics_render(REPO)
    assert "test_spearman.fusion" in capsys.readouterr().out


def test_a_metrics_key_named_values_is_caught(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: x\n    metrics: [m.json]\n")
    (tmp_path / "m.json").write_text(json.dumps({"values": "[-1, 1]", "n": 1}))
    with pytest.raises(AssertionError, match="values"):
        check_metrics_render(tmp_path)
