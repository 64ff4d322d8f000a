"""List or run the stages that dvc.yaml tags `meta: {gpu: true}`.

DVC has no tag filter, so this reads `meta` from the pipeline index:

    vidmem gpu-stages            # list them
    vidmem gpu-stages --run      # dvc repro them (and what they depend on)
    vidmem gpu-stages --run -s   # dvc repro -s: only them, upstream assumed done
"""

from __future__ import annotations

import argparse
import subprocess
import sys


def gpu_stages(root: str = ".") -> list[str]:
    from dvc.repo import Repo

    with Repo(root) as repo:
        return [stage.addressing for stage in repo.index.stages
                if isinstance(stage.meta, dict) and stage.meta.get("gpu")]


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="run them with `dvc repro`")
    parser.add_argument("-s", "--single-item", action="store_true",
                        help="pass -s to dvc repro: run only these stages, not their upstream")
    args = parser.parse_args(argv)
    stages = gpu_stages()
    if not args.run:
        print("\n".join(stages))
        return 0
    command = ["dvc", "repro", *(["-s"] if args.single_item else []), *stages]
    print("+ " + " ".join(command), file=sys.stderr)
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
