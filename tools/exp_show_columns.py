"""How many columns `dvc exp show` has here, and how many DVC's table can have before the
headline metrics (the first metric columns: each chain's and the fusion's test Spearman) stop
fitting a terminal of a given width.

    python tools/exp_show_columns.py              # 200 columns, as the README's line assumes
    python tools/exp_show_columns.py --width 250

DVC's table (dvc/utils/table.py, on rich) collapses columns from the right into `…`, but rich
still reserves a one-character separator for every column it was given, collapsed or not, so
past a certain number of columns nothing fits however the columns are ordered. This renders
tables of growing size through DVC's own `show_experiments`, with this project's headline
names and the rows `dvc exp show` prints, and reports the largest that still shows every
headline value in full.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys

VALUE = "0.8785"


def render(headline: list[str], total: int, rows: list[str], width: int) -> str:
    """`dvc exp show`'s table of `total` columns (the headline metrics, then params and deps
    named like this project's) at `width`, as text."""
    import rich.console
    from dvc.commands.experiments.show import show_experiments
    from dvc.compare import TabularData
    from dvc.ui import ui

    rest = max(2, total - 2 - len(headline))
    params = ["lr"] + [f"backend.name.param{i}" for i in range(rest // 2 - 1)]
    deps = ["data/concat/captions"] + [f"src/vidmem/dep{i}" for i in range(rest - rest // 2 - 1)]
    fixed = ["Experiment", "rev", "typ", "Created", "parent", "State", "Executor"]
    table = TabularData(fixed + headline + params + deps, fill_value="-")
    for name in rows:
        table.append([name, "1a2b3c4", "baseline", "10:42 PM", "", "-", "-"]
                     + [VALUE] * len(headline) + ["0.0001"] * len(params)
                     + ["1a2b3c4d"] * len(deps))
    out = io.StringIO()
    ui.__dict__["rich_console"] = rich.console.Console(file=out, width=width)
    ui.enable()
    show_experiments(table, {"metrics": headline, "params": params, "deps": deps}, pager=False)
    return out.getvalue()


def largest_that_fits(headline: list[str], rows: list[str], width: int) -> int:
    """The most columns a table can have with every headline value of the first row in full."""
    fits = 0
    for total in range(len(headline) + 4, 400):
        first_row = next(line for line in render(headline, total, rows, width).splitlines()
                         if rows[0].split()[-1] in line)
        if first_row.count(VALUE) < len(headline):
            break
        fits = total
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=200, help="terminal columns")
    args = parser.parse_args()
    shown = subprocess.run(["dvc", "exp", "show", "--csv"], capture_output=True, text=True,
                           check=True).stdout
    header = next(csv.reader(io.StringIO(shown)))
    columns = [name for name in header if name not in ("rev", "typ", "parent")]
    headline = [name for name in columns if name.startswith("test_spearman.")]
    if not headline:
        sys.exit("no test_spearman.* metric: run `dvc repro` first")
    import dvc

    print(f"dvc {dvc.__version__}: `dvc exp show` has {len(columns)} columns here; the headline "
          f"is {', '.join(headline)}")
    for rows in (["workspace", "main"], ["workspace", "main", "├── 1a2b3c4 [brisk-moat]"]):
        fits = largest_that_fits(headline, rows[::-1], args.width)
        print(f"  at {args.width} columns, with rows {rows}: every headline value shows in "
              f"full up to {fits} columns")


if __name__ == "__main__":
    main()
