"""What every stage script shares: argument parsing, params loading, and clean error exits."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vidmem.core import trace
from vidmem.core.errors import VidmemError
from vidmem.core.params import DEFAULT_PARAMS, Params, backend_names, load_params, lookup


def stage_parser(description: str, backend: bool = False, chain: bool = False,
                 fold: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    if backend:
        parser.add_argument("backend", help="backend name (a key of 'backend' in params.yaml)")
    if chain:
        parser.add_argument("chain", help="chain name (a key of 'chains' in params.yaml)")
    if fold:
        parser.add_argument("--fold", type=int, required=True,
                            help="cross-validation fold (an entry of cv.folds)")
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="parameters file")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def run_stage(parser: argparse.ArgumentParser,
              main: Callable[[argparse.Namespace, Params], None]) -> None:
    """Parse arguments, load params and run `main(args, params)` with params parsed once into a
    `Params` (sections typed on first use); a VidmemError exits 2 with its message only (it is
    the user's data or config that needs fixing, and a traceback would hide that)."""
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        params = load_params(args.params)
        backend = getattr(args, "backend", None)
        if backend is not None and backend not in backend_names(params):
            print(f"note: backend {backend!r} is not in params.yaml 'backends'", file=sys.stderr)
        chain = getattr(args, "chain", None)
        if chain is not None and chain not in (lookup(params, "chains", None) or {}):
            print(f"note: chain {chain!r} is not in params.yaml 'chains'", file=sys.stderr)
        # The stage's name in dvc.yaml (`extract@efficientnet_lite0`, `train@captions_svr`: a
        # chain's stage by the chain, `cv_fusion@2`), for the optional trace.
        item = "-".join(str(v) for v in (chain if chain is not None else backend,
                                         getattr(args, "fold", None)) if v is not None)
        stage = Path(sys.argv[0]).stem + (f"@{item}" if item else "")
        main(args, Params(trace.start(stage, params)))
    except VidmemError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"{parser.prog}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
