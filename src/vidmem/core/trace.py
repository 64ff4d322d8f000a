"""What a stage really reads: params keys, files and folders, and vidmem modules.

DVC re-runs a stage only when something in its `deps`/`params` changes, so a stage that reads
more than dvc.yaml declares can be silently stale. With `VIDMEM_TRACE_DIR=<folder>` set, every
stage run through `vidmem.core.cli.run_stage` writes `<folder>/<stage>-<pid>.json` with:

- `params`: each params key it read (a missing key read with a default counts: adding it later
  changes the result), as dotted names;
- `files`: each file opened for reading and each folder listed, relative to the working folder
  (Python's audit hooks see them; what ffmpeg opens in its own process is not seen);
- `modules`: the project files of every module it imported, as `src/vidmem/...`.

`tests/test_dvc_deps.py` runs the demo under the tracer and checks all three against dvc.yaml;
plugin authors can do the same: `VIDMEM_TRACE_DIR=/tmp/trace dvc repro`.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path
from typing import Any

TRACE_ENV = "VIDMEM_TRACE_DIR"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class TrackedParams(dict):
    """A params mapping that notes the dotted name of every value read from it.

    Reading a nested mapping only to go further down is not noted (`params["decode"]["n_frames"]`
    notes `decode.n_frames`); reading a whole mapping (iterating it, `.items()`) notes its name.
    """

    def __init__(self, data: dict[str, Any], read: set[str], prefix: str = "") -> None:
        super().__init__(data)
        self._read = read
        self._prefix = prefix

    def _name(self, key: Any) -> str:
        return f"{self._prefix}{key}"

    def _whole(self) -> None:
        self._read.add(self._prefix.rstrip(".") or "*")

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, dict):
            return TrackedParams(value, self._read, f"{self._name(key)}.")
        self._read.add(self._name(key))
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        if super().__contains__(key):
            return self[key]
        self._read.add(self._name(key))
        return default

    def __contains__(self, key: object) -> bool:
        present = super().__contains__(key)
        if not present:
            self._read.add(self._name(key))
        return present

    def __iter__(self):
        self._whole()
        return super().__iter__()

    def keys(self):
        self._whole()
        return super().keys()

    def values(self):
        self._whole()
        return super().values()

    def items(self):
        self._whole()
        return super().items()


def _module_file(module: Any, root: Path) -> str | None:
    """`src/vidmem/x.py` for a vidmem module (wherever it is installed), a project-relative path
    for other project files, None for anything else."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not os.path.isabs(file):  # torch._ops has '_ops.py'
        return None
    path = Path(file).resolve()
    name = getattr(module, "__name__", "")
    if name == "vidmem" or name.startswith("vidmem."):
        package = Path(sys.modules["vidmem"].__file__).resolve().parent
        return str(Path("src") / "vidmem" / path.relative_to(package))
    try:
        return str(path.relative_to(root))
    except ValueError:
        return None


def start(stage: str, params: dict[str, Any]) -> dict[str, Any]:
    """Trace this process when VIDMEM_TRACE_DIR is set: returns the params to hand the stage
    (tracked or as they were); the record is written when the process exits."""
    folder = os.environ.get(TRACE_ENV)
    if not folder:
        return params
    root = Path.cwd().resolve()
    params_read: set[str] = set()
    paths_read: set[str] = set()

    def relative(path: Any) -> str | None:
        if isinstance(path, int):
            return None
        try:
            return str(Path(os.path.realpath(os.fsdecode(path))).relative_to(root))
        except (TypeError, ValueError):
            return None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, _, flags = args
            if flags & _WRITE_FLAGS:
                return
        elif event in ("os.listdir", "os.scandir"):
            path = args[0] if args and args[0] is not None else "."
        else:
            return
        name = relative(path)
        # Relative names that do not exist here were opened relative to another folder's
        # descriptor (shutil.rmtree does that), not to the working folder.
        if name is not None and (root / name).exists():
            paths_read.add(name)

    def write() -> None:
        modules = {_module_file(m, root) for m in list(sys.modules.values())}
        record = {"stage": stage, "argv": sys.argv, "params": sorted(params_read),
                  "files": sorted(paths_read), "modules": sorted(m for m in modules if m)}
        target = Path(folder) / f"{stage.replace('/', '_')}-{os.getpid()}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=1))

    sys.addaudithook(hook)
    atexit.register(write)
    return TrackedParams(params, params_read)
