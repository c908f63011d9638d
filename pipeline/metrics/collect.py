"""Reading the metrics at scrape time: the catalog's model columns through the confined
read-only connection, the failed collections from the alert state.

Why at scrape time and never from Vast.ai: the exporter is a window on what the pipeline
already holds (the warehouse, the live logs, the alert state), so a scrape costs a few small
SELECTs and never spends the account's API budget. Python only formats: a boolean becomes
1 or 0, a timestamp seconds since the epoch, a NULL no sample; every figure itself is the
model's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector, CollectorRegistry

import pipeline
from pipeline.alerts.engine import read_state
from pipeline.alerts.settings import BUILD_RULES, COLLECTION_RULES, SENSOR_RULES
from pipeline.core.errors import WarehouseError, first_line
from pipeline.metrics.catalog import (
    ALERT_STATE,
    METRICS,
    PACKAGE,
    Metric,
    declarations,
    metric,
)
from pipeline.storage.store import Store
from pipeline.warehouse.query import open_read_only

Row = dict[str, Any]


def sample_value(value: Any) -> float | None:
    """A model value as a sample: booleans 1/0, timestamps epoch seconds, NULL none."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _label(value: Any) -> str:
    return "" if value is None else str(value)


def _columns_by_model() -> dict[str, list[str]]:
    """Every column the catalog reads from each warehouse model (labels included)."""
    wanted: dict[str, list[str]] = defaultdict(list)
    for m in METRICS:
        if m.model in (ALERT_STATE, PACKAGE):
            continue
        for column in (*m.labels, m.column, *m.only_where):
            if column not in wanted[m.model]:
                wanted[m.model].append(column)
    return wanted


def read_models(home: Path | str) -> dict[str, list[Row]]:
    """The rows of every model the catalog reads, on one confined read-only connection.
    A warehouse built by an older version (a model or column missing) is a one-sentence
    WarehouseError that says to build again."""
    con = open_read_only(home)
    try:
        out = {}
        for model, columns in _columns_by_model().items():
            order = [c for c in columns
                     if c in ("account", "rule", "instance_id", "gpu_name", "offer_type")]
            sql = f"SELECT {', '.join(columns)} FROM {model}"
            sql += f" ORDER BY {', '.join(order)}" if order else ""
            try:
                cursor = con.execute(sql)
            except duckdb.CatalogException as exc:
                raise WarehouseError(f"The warehouse lacks what the metrics read "
                                     f"({first_line(exc)}); run `vast-pipeline build` to "
                                     "bring it up to date.") from exc
            except duckdb.Error as exc:
                raise WarehouseError(f"Reading {model} for the metrics failed: "
                                     f"{first_line(exc)}.") from exc
            names = [d[0] for d in cursor.description]
            out[model] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return out
    finally:
        con.close()


def _gauge(declared: list[Metric], models: dict[str, list[Row]]) -> GaugeMetricFamily:
    """One metric family from its declarations (one, or one per fixed label value)."""
    first = declared[0]
    names = [*first.labels, *(k for k, _ in first.const_labels)]
    family = GaugeMetricFamily(first.name, first.help, labels=names)
    for m in declared:
        for row in models[m.model]:
            if m.only_where and not any(row[c] for c in m.only_where):
                continue
            value = sample_value(row[m.column])
            if value is not None:
                family.add_metric([*(_label(row[c]) for c in m.labels),
                                   *(v for _, v in m.const_labels)], value)
    return family


def _failures(home: Path | str, accounts: Iterable[str]) -> list[Row]:
    """Each account's failed collections in a row, as the alert state counts them (the
    collection_failing rule's own count; 0 for an account with none recorded)."""
    collections = read_state(Store(home))["collections"]
    column = metric("vast_account_collection_failures").column
    return [{"account": a, column: int(collections.get(a, {}).get("failures", 0))}
            for a in sorted({*accounts, *collections})]


def _alerts_by_rule(rows: list[Row], accounts: Iterable[str]) -> list[Row]:
    """The firing counts, with a 0 for each rule of each account that fires nothing (so
    an alerting rule on it sees a series, not an absence)."""
    counts = {(r["account"], r["rule"]): r["firing"] for r in rows}
    for account in accounts:
        for rule in (*COLLECTION_RULES, *BUILD_RULES):
            counts.setdefault((account, rule), 0)
    for rule in SENSOR_RULES:
        counts.setdefault(("", rule), 0)
    return [{"account": a, "rule": r, "firing": n} for (a, r), n in sorted(counts.items())]


def families(home: Path | str) -> list[Family]:
    """Every metric of the catalog, read now."""
    models = read_models(home)
    accounts = sorted({r["account"] for model in ("account_now", "collection_now")
                       for r in models[model]})
    models["alerts_firing_by_rule"] = _alerts_by_rule(models["alerts_firing_by_rule"],
                                                      accounts)
    models[ALERT_STATE] = _failures(home, accounts)
    out: list[Family] = []
    for name, declared in declarations().items():
        if declared[0].kind == "info":
            info = InfoMetricFamily(name, declared[0].help, labels=[])
            info.add_metric([], {"version": pipeline.__version__})
            out.append(info)
        else:
            out.append(_gauge(declared, models))
    return out


class WarehouseCollector(Collector):
    """A prometheus_client collector over one data home, read at every scrape."""

    def __init__(self, home: Path | str) -> None:
        self.home = home

    def collect(self) -> Iterator[Family]:
        yield from families(self.home)


def registry_for(home: Path | str) -> CollectorRegistry:
    """A registry holding only the warehouse collector (no process or Python metrics: the
    exporter speaks for the fleet, not for itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WarehouseCollector(home))
    return registry
