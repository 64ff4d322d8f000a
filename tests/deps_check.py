"""Does dvc.yaml declare everything a stage reads? Shared by test_dvc_deps.py (static import
closure of each stage script) and the end-to-end tests (what a real `dvc repro` run read, from
vidmem.core.trace records)."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

# `vidmem.backends.precomputed:Precomputed`: a module imported by name at run time.
_DYNAMIC_TARGET = re.compile(r"^(vidmem(?:\.\w+)+):\w+$")
# Read by every stage but not a dependency: DVC tracks params.yaml per key; caches and repo
# metadata are not inputs; code is checked through the modules a stage imported (Python's import
# machinery also lists the folders on sys.path, `stages` among them).
# (.gitignore and .dvcignore: DVCLive opens the repository when the train stage starts, which
# reads its ignore rules; they change no output.)
_NOT_INPUTS = ("params.yaml", ".dvc/", ".git/", ".cache/", "src/", "stages/", ".gitignore",
               ".dvcignore")
# Params read that change no output by design: where the content-addressed per-video cache
# lives. Declaring it would re-run stages for nothing when a user moves the cache.
_NOT_OUTPUT_PARAMS = ("cache.dir",)


@dataclass
class StageDecl:
    name: str
    cmd: str
    deps: list[str]
    params: list[str]
    outs: list[str]

    @property
    def script(self) -> str:
        return next(word for word in self.cmd.split() if word.endswith(".py"))


def declared_stages(repo_root: Path) -> dict[str, StageDecl]:
    """Every stage of dvc.yaml with foreach items and ${...} resolved, as DVC itself does."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    stages = {}
    with Repo(str(repo_root)) as repo:
        for stage in repo.index.stages:
            params = [key for dep in stage.deps if isinstance(dep, ParamsDependency)
                      for key in (dep.params or [])]
            deps = [dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)]
            stages[stage.name] = StageDecl(stage.name, stage.cmd, deps, params,
                                                 [out.def_path for out in stage.outs])
    return stages


def covered(path: str, declared: list[str]) -> bool:
    """`path` is a declared dependency or inside one (a folder dependency)."""
    path = path.rstrip("/")
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in declared)


def _module_path(src: Path, name: str) -> Path | None:
    base = src.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those under `if TYPE_CHECKING:` (imports for type hints
    only, never run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and isinstance(child.test, ast.Name) \
                    and child.test.id == "TYPE_CHECKING":
                stack.extend(child.orelse)
                continue
            stack.append(child)


def import_closure(script: Path, src: Path) -> set[Path]:
    """The vidmem source files `script` imports, directly or through other vidmem modules, with
    every package `__init__.py` on the way (statically, from the code: lazy imports inside
    functions and `module:Class` strings resolved at run time included)."""
    found: set[Path] = set()
    queue = [script]
    while queue:
        tree = ast.parse(queue.pop().read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in _runtime_nodes(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                match = _DYNAMIC_TARGET.match(node.value)
                if match:
                    names.add(match[1])
        for name in names:
            if name.split(".")[0] != "vidmem":
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # vidmem, vidmem.backends, ...
                path = _module_path(src, ".".join(parts[:depth]))
                if path is not None and path not in found:
                    found.add(path)
                    queue.append(path)
    return found


def undeclared_modules(stage: StageDecl, repo_root: Path) -> list[str]:
    closure = import_closure(repo_root / stage.script, repo_root / "src")
    files = sorted(str(p.relative_to(repo_root)) for p in closure)
    return [f for f in [stage.script, *files] if not covered(f, stage.deps)]


def _is_own_output(path: str, outs: list[str]) -> bool:
    """An output of the stage, its temporary twin (`data/.frames.x1y2.tmp`), or a folder above
    an output (listed to clear a killed run's leftovers)."""
    for out in outs:
        parent, _, name = out.rstrip("/").rpartition("/")
        if covered(path, [out]) or out.startswith(path.rstrip("/") + "/") or path in ("", "."):
            return True
        leftover = f"{parent}/.{name}." if parent else f".{name}."
        if path.startswith(leftover):
            return True
    return False


# The scan stage's manifest stands for the data set's folders: a stage that depends on it may
# read below the paths it lists (vidmem.data.inputs).
MANIFEST = "data/inputs.json"


def manifest_covers(repo_root: Path) -> list[str]:
    from vidmem.data.inputs import manifest_roots

    manifest = repo_root / MANIFEST
    return manifest_roots(json.loads(manifest.read_text())) if manifest.exists() else []


def undeclared_reads(stage: StageDecl, record: dict,
                     manifest_roots: list[str] = ()) -> dict[str, list[str]]:
    """What a traced run of `stage` read that dvc.yaml does not declare, by kind."""
    # The scan stage reads the roots to write the manifest; the others through depending on it.
    declared = stage.deps + (list(manifest_roots) if MANIFEST in stage.deps + stage.outs
                             else [])
    params = [key for key in record["params"] if key not in _NOT_OUTPUT_PARAMS
              and not any(key == p or key.startswith(p + ".") for p in stage.params)]
    files = [f for f in record["files"]
             if not f.startswith(_NOT_INPUTS) and f + "/" not in _NOT_INPUTS
             and "__pycache__" not in f
             and not _is_own_output(f, stage.outs) and not covered(f, declared)]
    modules = [m for m in record["modules"] if not covered(m, stage.deps)]
    return {kind: found for kind, found in
            (("params", params), ("files", files), ("modules", modules)) if found}


def check_trace(repo_root: Path, trace_dir: Path) -> dict[str, dict[str, list[str]]]:
    """Every traced stage run in `trace_dir` against dvc.yaml of `repo_root`: {stage: problems}
    for the stages that read something undeclared (empty when all is declared)."""
    stages = declared_stages(repo_root)
    roots = manifest_covers(repo_root)
    problems = {}
    records = [json.loads(p.read_text()) for p in sorted(trace_dir.glob("*.json"))]
    assert records, f"no trace records in {trace_dir}"
    for record in records:
        found = undeclared_reads(stages[record["stage"]], record, roots)
        if found:
            problems[record["stage"]] = found
    return problems


# Declared params that a stage reads only in some settings (dvc.yaml declares statically), by
# stage name before any `@`: key → when it is read.
READ_ONLY_IN_SOME_SETTINGS = {
    "demo_data": {"demo": "data.* at the demo's files (else an empty demo is written)"},
    "geometry": {"backends": "decode.short_side: auto (the listed backends' input geometry)",
                 "backend": "decode.short_side: auto"},
    "normalize": {"decode": "a frame backend (a caption backend has nothing to normalize)"},
    "head": {key: "chains.<c>.head: lstm (the LSTM's settings)"
             for key in ("lr", "epochs", "batch_size", "model")},
    "extract": {key: "a caption backend (it reads the captions; a frame backend reads none)"
                for key in ("data.captions", "data.on_bad_input", "data.format")},
    "cv_train": {key: "cv.folds set (with [] it records that cross-validation is off)"
                 for key in ("backend", "target", "train", "base.seed", "data", "cache")},
    "cv_split": {"data.ground_truth": "cv.folds set", "data.on_bad_input": "cv.folds set",
                 "data.format": "cv.folds set"},
}


def unread_declared_params(stage: StageDecl, record: dict) -> list[str]:
    """The other way round: params keys dvc.yaml declares for `stage` that its traced run never
    read (a section counts as read when any key below it was), less those read only in some
    settings. Each would re-run the stage for nothing when it changes."""
    read = record["params"]
    allowed = READ_ONLY_IN_SOME_SETTINGS.get(stage.name.split("@")[0], {})
    return [key for key in stage.params  # an allowed key covers the keys below it too
            if not any(key == a or key.startswith(a + ".") for a in allowed) and not any(
        r == key or r.startswith(key + ".") or key.startswith(r + ".") for r in read)]


def check_declared_are_read(repo_root: Path, trace_dir: Path) -> dict[str, list[str]]:
    """{stage: declared params keys it never read} over every traced run in `trace_dir`."""
    stages = declared_stages(repo_root)
    problems = {}
    for path in sorted(trace_dir.glob("*.json")):
        record = json.loads(path.read_text())
        unread = unread_declared_params(stages[record["stage"]], record)
        if unread:
            problems[record["stage"]] = unread
    return problems
