"""Helpers (no tests): every byte stored under a data home, as searchable text.

Secrets must not be anywhere, and "anywhere" includes the inside of compressed and
structured files, where a plain byte search would not see a value: zstd frames are
decompressed, Parquet cells read, SQLite rows (Dagster's run and event storage) and DuckDB
tables (the warehouse) selected. Files are recognized by their magic bytes, not by their
names, and every file's raw bytes are searched as well.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"
SQLITE_MAGIC = b"SQLite format 3\x00"
DUCKDB_MAGIC = b"DUCK"  # at offset 8


@dataclass
class StoredText:
    """The text of every file under a root, and how many files of each kind were opened."""

    text: str = ""
    kinds: Counter[str] = field(default_factory=Counter)
    files: list[Path] = field(default_factory=list)


def stored_text(root: Path) -> StoredText:
    out = StoredText()
    chunks: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        out.files.append(path)
        chunks.append(data.decode("latin-1"))
        kind, inner = _inside(path, data)
        out.kinds[kind] += 1
        chunks.append(inner)
    out.text = "\n".join(chunks)
    return out


def _inside(path: Path, data: bytes) -> tuple[str, str]:
    """(kind, decoded content) of one file; plain files have no inner content."""
    if data.startswith(ZSTD_MAGIC):
        with pa.CompressedInputStream(pa.BufferReader(data), "zstd") as stream:
            return "zstd", stream.read().decode("utf-8", "replace")
    if data.startswith(PARQUET_MAGIC):
        return "parquet", json.dumps(pq.read_table(path).to_pylist(), default=str)
    if data.startswith(SQLITE_MAGIC):
        return "sqlite", _sqlite_rows(path)
    if data[8:12] == DUCKDB_MAGIC:
        return "duckdb", _duckdb_rows(path)
    return "plain", ""


def _sqlite_rows(path: Path) -> str:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        rows = [repr(con.execute(f'select * from "{t}"').fetchall()) for t in tables]
    con.close()
    return "\n".join(rows)


def _duckdb_rows(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        relations = con.execute(
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_catalog = current_database()").fetchall()
        chunks = [repr(con.execute("select sql from duckdb_views() where not internal "
                                   "union all select sql from duckdb_tables()").fetchall())]
        for schema, name, kind in relations:
            if kind == "BASE TABLE":
                chunks.append(repr(con.execute(f'select * from "{schema}"."{name}"').fetchall()))
    return "\n".join(chunks)
