"""Building the warehouse the way the tests' histories were written (15-minute snapshots),
and comparing two warehouses model by model."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pipeline.warehouse import build as warehouse
from pipeline.warehouse.models import SQL_DIR, discover_models
from pipeline.warehouse.query import open_read_only

CADENCE = 15  # minutes between the snapshots the fixtures write


def build_at_cadence(home: Path | str, **options: object) -> warehouse.BuildResult:
    """`warehouse.build` at the fixtures' collection cadence."""
    return warehouse.build(home, cadence_minutes=CADENCE, **options)


def same_sources(home: Path, into: Path) -> Path:
    """A fresh home holding exactly `home`'s history (not its warehouse)."""
    shutil.copytree(home / "parquet", into / "parquet", ignore=shutil.ignore_patterns("models"))
    return into


def build_copy(home: Path, into: Path) -> Path:
    """A full build from scratch over a copy of `home`'s history."""
    build_at_cadence(same_sources(home, into))
    return into


def snapshot_of_models(home: Path, sql_dir: Path = SQL_DIR) -> dict[str, list[tuple]]:
    """Every row of every model (of `sql_dir`), through one read-only connection (one
    consistent view)."""
    out = {}
    con = open_read_only(home)
    try:
        for model in discover_models(sql_dir):
            # a mart over every day a test can write: the reports' figures compare too
            relation = model.call("DATE '2000-01-01'", "DATE '2099-12-31'")
            rows = con.execute(f"SELECT * FROM {relation}").fetchall()
            rows = [tuple(round(v, 9) if isinstance(v, float) else
                          (tuple(v) if isinstance(v, list) else v) for v in row) for row in rows]
            out[model.name] = sorted(rows, key=repr)
    finally:
        con.close()
    return out


def query_rows(home: Path, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """The rows of `sql` on the home's built warehouse, as dicts (read-only connection)."""
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
