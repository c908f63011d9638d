"""The stored bill of a day: the `charges` family's day files and how a bill replaces one.

The files, their encoding and atomic replacement are the storage layer's
(`pipeline.storage.dayfiles`); what is billing's own is the order of the steps, so that a
reader keeping only the logged fetch's rows sees one whole bill whenever the writer dies
(`write_bill`), and the readers that skip left-overs (`stored_bill`).

    parquet/billed_charges|billed_quarantine|billed_days/account=<a>/day=<YYYY-MM-DD>/part-0.parquet
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.billing.flatten import FlatBill
from pipeline.storage.datasets import CHARGE_FAMILY, family
from pipeline.storage.dayfiles import DayFamily, StaleDayFile
from pipeline.storage.schema import BILLED_CHARGE_SCHEMA
from pipeline.storage.store import Store

# The snapshots' compression and sizes, with the charge family's own encodings: its text
# columns repeat (one fetch_id, a few types and units per file), so they get dictionaries.
FAMILY = DayFamily(CHARGE_FAMILY, {
    "use_dictionary": sorted({f.name for d in family(CHARGE_FAMILY) for f in d.schema
                              if pa.types.is_string(f.type)}),
    "use_byte_stream_split": False,
})
_ROWS = ("billed_charges", "billed_quarantine")


def write_bill(store: Store, account: str, day: date, flat: FlatBill) -> None:
    """Replace the day's bill so that a reader joining on the log's fetch_id always sees
    one whole bill, whenever the writer dies; the caller holds the day's lock.

    When another fetch's bill is committed:
    1. the new rows are written beside the committed ones (a kill here: the log still
       names the old fetch, whose rows are all there);
    2. the log (the commit record) names the new fetch;
    3. the old rows are dropped (a kill before this leaves rows the log does not name,
       which readers skip and the next fetch or rebuild removes).
    When nothing is committed (never fetched, unreadable log) the rows go first and the
    log last: a kill in between leaves rows no log names, never a total without its rows.
    When the log already names this fetch (a rebuild of the landed raw file), step 1 would
    put each row there twice under the logged id: the files are replaced directly instead.
    """
    committed = _committed_tables(store, account, day, flat.log["fetch_id"][0].as_py())
    rows = {name: flat.tables[name] for name in _ROWS}
    if committed is None:
        FAMILY.write(store, account, day, rows)
        FAMILY.write(store, account, day, {"billed_days": flat.log})
        return
    beside = {name: pa.concat_tables([committed[name], rows[name]]) for name in committed}
    FAMILY.write(store, account, day, beside)
    FAMILY.write(store, account, day, {"billed_days": flat.log})
    FAMILY.write(store, account, day, rows)


def _committed_tables(store: Store, account: str, day: date,
                      fetch_id: str) -> dict[str, pa.Table] | None:
    """The rows of the day's logged fetch (charges and quarantine), or None if there are
    none to keep beside `fetch_id`'s: never fetched, files unreadable (then they are
    replaced), or the log already names `fetch_id` (its rows are the new ones)."""
    log = stored_day_log(store, account, day)
    if log is None or log["fetch_id"] == fetch_id:
        return None
    out = {}
    for name in _ROWS:
        try:
            table = FAMILY.read(store, name, account, day)
        except StaleDayFile:
            return None
        if table is None:
            return None
        out[name] = table.filter(pc.equal(table["fetch_id"], log["fetch_id"]))
    return out


def stored_day_log(store: Store, account: str, day: date) -> dict[str, Any] | None:
    """The `billed_days` row of a stored day, or None when the day was never fetched."""
    try:
        table = FAMILY.read(store, "billed_days", account, day)
    except StaleDayFile:
        return None
    rows = [] if table is None else table.to_pylist()
    return rows[-1] if rows else None


def stored_day_total(store: Store, account: str, day: date) -> float | None:
    """$ billed on a stored day (None when never fetched)."""
    log = stored_day_log(store, account, day)
    return None if log is None else log["total_amount"]


def stored_bill(store: Store, account: str, day: date) -> pa.Table:
    """The committed `billed_charges` rows of a day: those of the logged fetch only.

    Rows of another fetch_id are those of a fetch killed before or after its log was
    written (see `write_bill`); readers must skip them, as this does.
    """
    log = stored_day_log(store, account, day)
    path = FAMILY.path(store, "billed_charges", account, day)
    if log is None or not store.exists(path):
        return BILLED_CHARGE_SCHEMA.empty_table()
    table = store.read_parquet(path)
    return table.filter(pc.equal(table["fetch_id"], log["fetch_id"]))


def newest_bills(store: Store) -> dict[str, dict[str, Any]]:
    """account -> its newest stored day's `billed_days` row plus `day` (for `status`)."""
    newest: dict[str, date] = {}
    for account, day in store.list_partitions("billed_days"):
        assert account is not None  # the bills are an account's
        newest[account] = max(day, newest.get(account, day))
    out = {}
    for account, day in sorted(newest.items()):
        log = stored_day_log(store, account, day)
        if log is not None:
            out[account] = {**log, "day": day}
    return out
