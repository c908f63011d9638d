"""Work done outside a Dagster run, recorded in the Dagster instance so the UI shows it.

`vast-pipeline demo` collects days of simulated snapshots, fetches their bills, builds the
warehouse and writes reports without Dagster: a run per simulated snapshot would make the
demo minutes slower. So at its end `record_demo` reports one runless AssetMaterialization
per asset it materialized (per UTC day for the daily-partitioned assets), carrying the
metadata the asset's own MaterializeResult carries, read back from what was stored, and a
description saying the demo wrote it. The UI then shows the assets materialized; its run
list stays empty (no run took place).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg

from assets.charges import landed_billed_charges
from assets.collection import landed_instance_snapshots, raw_snapshots
from assets.market import landed_market_snapshots
from assets.reports import cost_report, reliability_report, report_metadata
from assets.warehouse import _key
from pipeline.warehouse.build import BuildResult
from pipeline.warehouse.query import query

DESCRIPTION = "Recorded by `vast-pipeline demo`, which did this work outside a Dagster run."
REPORT_ASSETS = {"cost": cost_report.key, "reliability": reliability_report.key}


@contextmanager
def _instance_at(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """The persistent instance at `dagster_home` (its dagster.yaml reads $DAGSTER_HOME,
    so that is set while it is open, then restored)."""
    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        if before is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = before


def _snapshot_days(home: str, since: date) -> list[tuple[str, dict[str, object]]]:
    """Per UTC day from `since`: the snapshot log's counts, for the collection assets."""
    rows = query(home, """
        select snapshot_date, string_agg(distinct account, ', ' order by account), count(*),
               sum(instances), sum(quarantined_records), sum(quarantined_values),
               coalesce(sum(pages), 0),
               coalesce(list_sort(list_distinct(flatten(list(new_fields)))), [])
        from snapshots where snapshot_date >= ? group by snapshot_date order by 1""",
                 params=[since]).rows
    return [(day.isoformat(), {
        "accounts": accounts, "snapshots": snapshots, "rows": instances,
        "records": instances + quarantined, "quarantined_records": quarantined,
        "quarantined_values": values, "pages": pages,
        "new_fields": ", ".join(new_fields) or "-",
    }) for day, accounts, snapshots, instances, quarantined, values, pages, new_fields in rows]


def _bill_days(home: str, since: date) -> list[tuple[str, dict[str, object]]]:
    """Per UTC day from `since`: the stored bill's totals, for the bill asset."""
    rows = query(home, """
        select day, string_agg(account, ', ' order by account), sum(contracts),
               sum(total_amount), sum(quarantined), coalesce(sum(pages), 0)
        from billed_days where day >= ? group by day order by day""", params=[since]).rows
    return [(day.isoformat(), {
        "days": 1, "accounts": accounts, "contracts": contracts,
        "total": dg.MetadataValue.float(round(total, 3)), "quarantined": quarantined,
        "pages": pages,
    }) for day, accounts, contracts, total, quarantined, pages in rows]


def demo_materializations(home: str, build: BuildResult, reports: Sequence[Path],
                          report_window: tuple[date, date], since: date
                          ) -> list[dg.AssetMaterialization]:
    """What the demo materialized, upstream first: the collection and bill assets per day
    from `since`, every warehouse model the build wrote, and the reports it wrote (their
    actual window and files: the demo's, under reports/demo/)."""
    snapshot_days = _snapshot_days(home, since)
    keep = ("accounts", "snapshots", "records", "pages")
    out = [dg.AssetMaterialization(raw_snapshots.key, partition=day, description=DESCRIPTION,
                                   metadata={k: v for k, v in meta.items() if k in keep})
           for day, meta in snapshot_days]
    out += [dg.AssetMaterialization(landed_instance_snapshots.key, partition=day,
                                    description=DESCRIPTION,
                                    metadata={k: v for k, v in meta.items() if k != "records"})
            for day, meta in snapshot_days]
    out += [dg.AssetMaterialization(landed_billed_charges.key, partition=day,
                                    description=DESCRIPTION, metadata=meta)
            for day, meta in _bill_days(home, since)]
    out += _market(home)
    out += [dg.AssetMaterialization(_key(name), description=DESCRIPTION,
                                    metadata=build.model_metadata(name))
            for name in build.models]
    for kind, key in REPORT_ASSETS.items():
        paths = [p for p in reports if p.name.startswith(f"{kind}_")]
        if paths:
            out.append(dg.AssetMaterialization(key, description=DESCRIPTION,
                                               metadata=report_metadata(report_window, paths)))
    return out


def _market(home: str) -> list[dg.AssetMaterialization]:
    """The market asset as of the demo's newest market snapshot (the asset is not
    partitioned: one materialization, carrying that snapshot's log row)."""
    from pipeline.market.landing import newest_market_snapshot
    from pipeline.storage.store import Store

    newest = newest_market_snapshot(Store(home))
    if newest is None:
        return []
    return [dg.AssetMaterialization(landed_market_snapshots.key, description=DESCRIPTION,
                                    metadata={
        "snapshot_id": newest["snapshot_id"],
        "snapshot_at": newest["snapshot_at"].isoformat(),
        "gpu_names": ", ".join(newest["gpu_names"]),
        "requests": newest["requests"], "offers": newest["offers"],
        "quarantined_records": newest["quarantined_records"],
        "quarantined_values": newest["quarantined_values"],
        "new_fields": ", ".join(newest["new_fields"] or []) or "-",
        "incomplete": newest["incomplete"]})]


def record_demo(home: str, dagster_home: Path, build: BuildResult, reports: Sequence[Path],
                report_window: tuple[date, date], since: date) -> int:
    """Report the demo's materializations into the instance at `dagster_home`; returns how
    many were recorded (a few dozen events, not a run per snapshot)."""
    events = demo_materializations(home, build, reports, report_window, since)
    with _instance_at(dagster_home) as instance:
        for event in events:
            instance.report_runless_asset_event(event)
    return len(events)
