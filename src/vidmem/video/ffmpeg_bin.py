"""Which ffmpeg binary to run: the user's choice, else the one the imageio-ffmpeg wheel ships."""

from __future__ import annotations

import shutil

from vidmem.core.errors import VidmemError


def ffmpeg_executable(configured: str | None = None) -> str:
    if configured:
        found = shutil.which(configured)
        if not found:
            raise VidmemError(f"ffmpeg binary {configured!r} (decode.ffmpeg in params.yaml) not found")
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a broken install
        raise VidmemError("imageio-ffmpeg is not installed: run `pip install -r requirements.txt` "
                          "or set decode.ffmpeg to an ffmpeg on PATH") from exc
    return imageio_ffmpeg.get_ffmpeg_exe()
