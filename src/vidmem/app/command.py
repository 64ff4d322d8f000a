"""The `vidmem` command (installed by `pip install -r requirements.txt`): one entry point for what
users run outside `dvc repro`.

    vidmem predict --videos DIR --backend NAME --out preds.csv   # score new videos
    vidmem gpu-stages [--run [-s]]                                # list or run the GPU stages
    vidmem <command> --help
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def _predict(argv: list[str]) -> int:
    from vidmem.app.predict import main

    return main(argv, prog="vidmem predict")


def _gpu_stages(argv: list[str]) -> int:
    from vidmem.app.gpu_stages import main

    return main(argv, prog="vidmem gpu-stages")


# name -> (what it does, its entry point taking the remaining arguments)
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "predict": ("score videos without labels with a trained checkpoint", _predict),
    "gpu-stages": ("list or run the stages dvc.yaml tags meta: {gpu: true}", _gpu_stages),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vidmem", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<12} {text}"
                                          for name, (text, _) in COMMANDS.items()))
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="command",
                        help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args.args)


if __name__ == "__main__":
    sys.exit(main())
