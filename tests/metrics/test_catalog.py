"""The metrics table in docs/production.md is the catalog the exporter serves."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.metrics.catalog import METRICS, declarations, exported_name

REPO = Path(__file__).resolve().parents[2]


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    section = markdown.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `vast_")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_the_docs_metrics_table_is_the_catalog() -> None:
    rows = _table_rows((REPO / "docs" / "production.md").read_text(), "## Metrics")
    documented = [(name.strip("`"), kind, re.findall(r"`(\w+)`", labels), meaning,
                   source.strip("`")) for name, kind, labels, meaning, source in rows]
    declared = [(exported_name(m), m.kind, [*m.labels, *(k for k, _ in m.const_labels)],
                 m.help, m.source) for m in METRICS]
    assert documented == declared


def test_names_follow_the_prometheus_conventions() -> None:
    for m in METRICS:
        assert re.fullmatch(r"vast_[a-z0-9_]+", m.name), m.name
        if m.column.endswith("_at"):  # a moment: seconds since the epoch
            assert m.name.endswith("_timestamp_seconds"), m.name
        if "burn_rate" in m.column:
            assert m.name.endswith("_dollars_per_hour"), m.name
        if m.column in ("credit_balance",):
            assert m.name.endswith("_dollars"), m.name
    # one declaration per name, or one per value of its fixed labels, all alike
    for name, declared in declarations().items():
        assert len({m.const_labels for m in declared}) == len(declared), name
        assert len({(m.help, m.labels, m.kind) for m in declared}) == 1, name
