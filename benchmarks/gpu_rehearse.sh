#!/usr/bin/env bash
# Rehearse the GPU box's call here, on the CPU, before spending device time on it: the box's
# Python (3.12) with the box's versions of what gpu.py imports and none of vidmem's other
# requirements, then gpu_device.sh with the carried .carry/ at toy sizes (--small). A module
# the box lacks, or an API its numpy or torch changed, fails here instead of there.
#
#   bash benchmarks/gpu_carry.sh                      # once: .carry/
#   bash benchmarks/gpu_rehearse.sh [python3.12]      # about 1 minute once the venv exists
#
# The versions are the box's as a session's `pip list` read them in 2026-11 (the device tool's
# KINDS.md); the venv (about 4 GB: torch's CUDA libraries) is made once, in
# $VIDMEM_REHEARSAL_VENV (default /tmp/vidmem_box312), and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
# A pyenv shim named python3.12 can exist and still refuse to run, so try each candidate.
python="${1:-}"
if [ -z "$python" ]; then
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
    if "$candidate" -c '' 2>/dev/null; then python="$candidate"; break; fi
  done
fi
[ -n "$python" ] || { echo "gpu_rehearse: no Python 3.12 here; pass one as the argument" >&2; exit 1; }
venv="${VIDMEM_REHEARSAL_VENV:-/tmp/vidmem_box312}"
[ -f .carry/site.tar.xz ] || { echo "gpu_rehearse: no .carry/: run benchmarks/gpu_carry.sh" >&2; exit 1; }
if [ ! -x "$venv/bin/python3" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.11.0 torchvision==0.26.0 numpy==2.5.2 safetensors==0.8.0 \
    huggingface_hub==1.33.0 triton==3.6.0 pandas scipy scikit-image timm tqdm pyyaml pillow \
    tifffile filelock
fi
out="$(mktemp -d)"
PATH="$venv/bin:$PATH" OUT="$out" TMPDIR="$out" \
  bash benchmarks/gpu_device.sh extract numerics train decode e2e profile --small >"$out/rehearsal.txt" 2>&1 \
  || { tail -30 "$out/rehearsal.txt"; echo "gpu_rehearse: failed; all of it in $out" >&2; exit 1; }
"$venv/bin/python3" - "$out" <<'PY'
import json, sys
from pathlib import Path

for path in sorted(Path(sys.argv[1]).glob("gpu_*.json")):
    part = json.loads(path.read_text())
    print(f"{path.stem}: {'FAILED' if 'error' in part else 'ran'} (torch {part['torch']})")
PY
echo "gpu_rehearse: every part ran on the box's versions; log in $out/rehearsal.txt"
