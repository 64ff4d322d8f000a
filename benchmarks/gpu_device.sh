#!/usr/bin/env bash
# On a lent GPU box, with .carry/ from benchmarks/gpu_carry.sh carried: unpack it and run the
# given parts of benchmarks/gpu.py into $OUT (what comes back). One command, so one device call:
#   bash benchmarks/gpu_device.sh extract numerics train decode e2e profile
set -euo pipefail
cd "$(dirname "$0")/.."
site="${TMPDIR:-/tmp}/vidmem_site"
python3 - "$site" <<'PY'
import lzma, shutil, sys, tarfile
from pathlib import Path

site = Path(sys.argv[1])
shutil.rmtree(site, ignore_errors=True)  # a warm box's earlier unpacking may be stale
with tarfile.open(".carry/site.tar.xz") as tar:
    tar.extractall(site, filter="fully_trusted")
binary = site / "bin" / "ffmpeg"  # beside the ffmpeg-python package, not in its place
binary.parent.mkdir()
with lzma.open(".carry/ffmpeg.xz") as packed, open(binary, "wb") as unpacked:
    shutil.copyfileobj(packed, unpacked)
binary.chmod(0o755)
PY
export PYTHONPATH="$site:$PWD/src" IMAGEIO_FFMPEG_EXE="$site/bin/ffmpeg" PYTHONUNBUFFERED=1
"$site/bin/ffmpeg" -version | head -1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
out="${OUT:-gpu_out}"
mkdir -p "$out"
python3 benchmarks/gpu.py "$@" --out "$out" 2>&1 | tee "$out/log.txt"
