"""The lab's numbers as text: CSV files, the printed summary table and report."""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ._config import Config, LabError, output_path


def _cell(value: Any, digits: int) -> Any:
    if isinstance(value, (float, np.floating)):
        return format(float(value), f".{digits}g")
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_csv(cfg: Config, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
              digits: int = 7) -> Path:
    """Writes out/name (out/<stem>_quick.csv with --quick) with a header row; floats with
    `digits` significant digits."""
    path = output_path(cfg, name)
    try:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                writer.writerow([_cell(v, digits) for v in row])
    except OSError as e:
        raise LabError(f"cannot write {path}: {e.strerror}") from None
    return path


def format_table(rows: list[dict], columns: Optional[list[tuple[str, str, str]]] = None) -> str:
    """A plain-text table. `columns` is [(key, heading, format spec)]; default: every key."""
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = [(k, k, "") for k in rows[0]]
    columns = [c for c in columns if c[1] or any(row.get(c[0]) not in (None, "") for row in rows)]
    cells = [[heading for _, heading, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key, "")
            if value is None or (isinstance(value, float) and math.isnan(value)):
                line.append("-")
            elif spec and isinstance(value, (int, float, np.number)):
                line.append(format(value, spec))
            else:
                line.append(str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    numeric = [all(_looks_numeric(r[i]) for r in cells[1:]) for i in range(len(columns))]

    def fmt(r):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


def _looks_numeric(text: str) -> bool:
    try:
        float(text.rstrip("%"))
        return True
    except ValueError:
        return text == "-"


def report(cfg: Config, title: str, table: str, files: list[Path], notes: Sequence[str] = ()) -> None:
    """Prints an experiment's summary: title (marked as a quick run with --quick), table, notes,
    and where the files are."""
    if not cfg.verbose:
        return
    if cfg.quick:
        title += " (quick run)"
    print()
    print(title)
    print("=" * len(title))
    print(table)
    for note in notes:
        print(note)
    plots = [f for f in files if f.suffix == ".png"]
    data = [f for f in files if f.suffix != ".png"]
    if plots:
        print("plots: " + ", ".join(str(p) for p in plots))
    if data:
        print("data:  " + ", ".join(str(p) for p in data))
    sys.stdout.flush()
