"""Write `.dvc/plots.html`: DVC's plots page with vega, vega-lite and vega-embed inlined, so
`dvc plots show` renders with no network (DVC's own page loads them from a CDN and is blank
offline).

    python tools/make_offline_plots_template.py     # needs npm and the npm registry, once

The versions are the ones DVC's renderer links (dvc_render/vega.py), fetched with `npm pack` (the
same UMD builds the CDN serves). `.dvc/config` points `plots.html_template` at the result. DVC
fills the template with plain string replacement, so the inlined code needs no escaping; it only
must not contain `</script` or DVC's placeholders, which is checked.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega@5.20.2": "package/build/vega.min.js",
            "vega-lite@5.2.0": "package/build/vega-lite.min.js",
            "vega-embed@6.18.2": "package/build/vega-embed.min.js"}
TARGET = Path(__file__).resolve().parents[1] / ".dvc" / "plots.html"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>DVC Plot</title>
{{refresh_tag}}
<!-- {versions}: inlined by tools/make_offline_plots_template.py (no CDN, works offline) -->
{scripts}
<style>
table {{ border-spacing: 15px; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def main() -> None:
    scripts = []
    with tempfile.TemporaryDirectory() as work:
        for package, member in PACKAGES.items():
            name = subprocess.run(["npm", "pack", "--silent", package], cwd=work, check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
            with tarfile.open(Path(work) / name) as archive:
                code = archive.extractfile(member).read().decode("utf-8")
            for forbidden in ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}"):
                if forbidden in code:
                    raise SystemExit(f"{package} contains {forbidden!r}; cannot inline it")
            scripts.append(f"<script>/* {package} */\n{code}\n</script>")
    TARGET.write_text(PAGE.format(versions=", ".join(PACKAGES), scripts="\n".join(scripts)),
                      encoding="utf-8")
    print(f"wrote {TARGET} ({TARGET.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
