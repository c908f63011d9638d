"""Helpers (no tests) that write real billed-charges Parquet in the storage layout.

Why by hand and with the contract's schemas: the warehouse side of billed charges must be
tested on exactly the files `pipeline.billing.charges` writes (`BILLED_CHARGE_SCHEMA` rows under
`parquet/billed_charges/account=<a>/day=<d>/`, the day log `BILLED_DAY_SCHEMA` written
last as the commit record), including what a killed fetch leaves behind.
`simulated_week_home` instead fetches real bills with the collector (`pipeline.billing.charges`)
over HTTP from the simulator, for the end-to-end and validator tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.storage.schema import BILLED_CHARGE_SCHEMA, BILLED_DAY_SCHEMA, SCHEMA_VERSION
from tests.support.hive import write_day_file

HOURS_AT = "{q:.3f} hours at ${p:.3f}/hour"


def item(contract_id: int, item_type: str, amount: float, *, quantity: float | None = None,
         unit: str | None = None, unit_price: float | None = None,
         contract_type: str = "instance", label: str | None = None,
         description: str | None = None) -> dict[str, Any]:
    """One charge row (one item of one contract) before the fetch columns are added."""
    if description is None and quantity is not None and unit == "hours":
        description = HOURS_AT.format(q=quantity, p=unit_price or 0.0)
    elif description is None and quantity is not None and unit == "GB":
        description = f"{quantity:.3f} GB {'downloaded' if item_type == 'bwd' else 'uploaded'}"
    return {
        "contract_type": contract_type, "source": f"{contract_type}-{contract_id}",
        "contract_id": contract_id,
        "instance_id": contract_id if contract_type == "instance" else None,
        "label": label, "item_type": item_type, "item_description": description,
        "amount": amount, "quantity": quantity, "quantity_unit": unit,
        "unit_price": unit_price,
    }


def scenario_main_bill(day: date) -> list[dict[str, Any]]:
    """Account `main`'s bill of one day of the report scenario (instances 101 and 104, a
    volume), with a short instance 999 on 2026-11-17 that the history never saw."""
    rows = [
        item(101, "gpu", 19.20, quantity=24.0, unit="hours", unit_price=0.80, label="train-llm"),
        item(101, "disk", 0.48, quantity=24.0, unit="hours", unit_price=0.02),
        item(101, "bwd", 0.10, quantity=10.0, unit="GB"),
        item(101, "bwu", 0.05, quantity=5.0, unit="GB"),
        item(104, "gpu", 384.00, quantity=24.0, unit="hours", unit_price=16.0),
        item(104, "disk", 3.60, quantity=24.0, unit="hours", unit_price=0.15),
        item(900, "disk", 0.50, contract_type="volume", description="volume storage"),
    ]
    if day == date(2026, 11, 17):
        rows.append(item(999, "gpu", 0.42, quantity=0.1, unit="hours", unit_price=4.2,
                         label="blink"))
    return rows


def scenario_lab_bill() -> list[dict[str, Any]]:
    """Account `lab`'s bill of one day of the report scenario (instance 201)."""
    return [item(201, "gpu", 9.60, quantity=24.0, unit="hours", unit_price=0.40),
            item(201, "disk", 0.24, quantity=24.0, unit="hours", unit_price=0.01),
            item(201, "bwd", 0.20, quantity=20.0, unit="GB")]


def write_charges(home: Path, account: str, day: date, rows: list[dict[str, Any]], *,
                  fetch_id: str, fetched_at: datetime) -> None:
    """The day's charges file (replaced whole, like a fetch does); no log row."""
    start = datetime.combine(day, time(), UTC)
    full = []
    for row in rows:
        amount = sum(r["amount"] for r in rows if r["contract_id"] == row["contract_id"]
                     and r["contract_type"] == row["contract_type"])
        full.append({
            "fetch_id": row.get("fetch_id", fetch_id), "fetched_at": fetched_at,
            "contract_description": f"Instance {row['contract_id']} Charges - 1 days",
            "contract_start": start, "contract_end": start + timedelta(seconds=86399),
            "contract_amount": round(amount, 3), "item_start": start,
            "item_end": start + timedelta(seconds=86399), "template_id": None,
            "metadata": "{}", **{k: v for k, v in row.items() if k != "fetch_id"},
        })
    table = pa.Table.from_pylist(full, schema=BILLED_CHARGE_SCHEMA)
    write_day_file(home, "billed_charges", account, day, table)


def write_day_log(home: Path, account: str, day: date, rows: list[dict[str, Any]], *,
                  fetch_id: str, fetched_at: datetime) -> None:
    """The day's commit record (what a fetch writes last)."""
    start = datetime.combine(day, time(), UTC)
    committed = [r for r in rows if r.get("fetch_id", fetch_id) == fetch_id]
    table = pa.Table.from_pylist([{
        "fetch_id": fetch_id, "fetched_at": fetched_at, "window_start": start,
        "window_end": start + timedelta(seconds=86399),
        "contracts": len({(r["contract_type"], r["contract_id"]) for r in committed}),
        "items": len(committed), "total_amount": sum(r["amount"] for r in committed),
        "pages": 1, "quarantined": 0, "schema_version": SCHEMA_VERSION,
    }], schema=BILLED_DAY_SCHEMA)
    write_day_file(home, "billed_days", account, day, table)


def write_bill(home: Path, account: str, day: date, rows: list[dict[str, Any]], *,
               fetch_id: str, fetched_at: datetime) -> None:
    """A complete fetch of one account-day: the charges, then the log."""
    write_charges(home, account, day, rows, fetch_id=fetch_id, fetched_at=fetched_at)
    write_day_log(home, account, day, rows, fetch_id=fetch_id, fetched_at=fetched_at)


def day_end(day: date) -> datetime:
    """The UTC midnight that ends `day`."""
    return datetime.combine(day + timedelta(days=1), time(), UTC)


# --- a simulated week, its bills fetched by the real collector over HTTP ---------------

WEEK_END = datetime(2026, 11, 23, tzinfo=UTC)
WEEK_DAYS = [date(2026, 11, 16) + timedelta(days=i) for i in range(7)]
BILLED_DAYS = WEEK_DAYS[:-1]  # the last day is not billed yet: estimated


def simulated_week_home(home: Path, *, seed: int = 7, size: int = 40) -> Any:
    """A week of 15-minute snapshots of the seeded FleetModel (account `default`) and the
    bills of its first six days, fetched by `pipeline.billing.charges.fetch_day` through the real
    client from the simulator on 127.0.0.1 (its clock an hour after the week); returns the
    model. The caller builds the warehouse."""
    from pipeline.billing import fetch_day
    from pipeline.sim.fleet import FleetModel
    from pipeline.sim.simulator import SimulatorServer
    from pipeline.source.client import VastClient
    from pipeline.storage.store import Store
    from tests.support.report_fixtures import fleet_history

    fleet_history(home, end=WEEK_END, days=7, size=size, seed=seed)
    model = FleetModel(seed=seed, size=size)
    key = "bill-fixture-key-0123456789abcdef"
    clock = lambda: WEEK_END + timedelta(hours=1)  # noqa: E731
    with (SimulatorServer({key: model}, clock=clock) as sim,
          VastClient(key, sim.url, min_interval=0.0) as client):
        for day in BILLED_DAYS:
            fetch_day(client, Store(home), "default", day, source="simulator")
    return model
