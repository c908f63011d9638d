"""What every raw zone shares: file names, times in headers, JSON bytes, zstd.

Why one home: the instance snapshots (`pipeline.landing.raw`), the billed charges
(`pipeline.billing.raw`) and the market snapshots each keep what the API sent as one
compressed file per fetch, named `<UTC time>_<id><suffix>` so a directory listing alone
sorts the files by time and gives their ids. Naming, parsing and encoding those files in
one place keeps the zones readable by the same code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime

import orjson

from pipeline.storage.store import Store

COMPRESSION = "zstd"
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_STEM_RE = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<id>[A-Za-z0-9.-]+)$")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive time is refused (it would land on the wrong day)."""
    if moment.tzinfo is None:
        raise ValueError("a raw file's time must be timezone-aware (UTC)")
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with microseconds and 'Z' (the headers' form)."""
    return utc(moment).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """The inverse of `format_time`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def raw_file_name(moment: datetime, file_id: str, suffix: str) -> str:
    """`20261126T171500.123456Z_<id><suffix>`: sorts by time, carries the id."""
    if not _ID_RE.match(file_id):
        raise ValueError(f"id {file_id!r} is not file-name safe")
    return f"{utc(moment).strftime(_STAMP)}_{file_id}{suffix}"


def raw_file_path(store: Store, dataset: str, account: str | None, day: date,
                  moment: datetime, file_id: str, suffix: str) -> str:
    """Where a raw file lives: its partition and its name."""
    return f"{store.partition_dir(dataset, account, day)}/{raw_file_name(moment, file_id, suffix)}"


def raw_files(store: Store, dataset: str, account: str | None, day: date,
              suffix: str) -> dict[str, str]:
    """id -> path of every raw file of one partition, oldest first (from names alone)."""
    found: dict[str, str] = {}
    for path in store.list_files(store.partition_dir(dataset, account, day), suffix):
        m = _STEM_RE.match(path.rsplit("/", 1)[-1].removesuffix(suffix))
        if m:
            found[m["id"]] = path
    return found


def raw_partitions(store: Store, dataset: str, accounts: Iterable[str] | None = None,
                   date_from: date | None = None,
                   date_to: date | None = None) -> list[tuple[str | None, date]]:
    """(account, day) of a raw zone's partitions within the filters (dates inclusive;
    `accounts=None`: all of them)."""
    wanted = set(accounts) if accounts is not None else None
    return [(acc, day) for acc, day in store.list_partitions(dataset)
            if (wanted is None or acc in wanted)
            and (date_from is None or day >= date_from) and (date_to is None or day <= date_to)]


def left_alone(days: list[tuple[str, date]], what: str) -> str:
    """` Left alone 2 <what>: a/2026-11-20, a/2026-11-21.` ('' for none): how a rebuild from
    a raw zone reports the days it kept because no raw file holds them."""
    if not days:
        return ""
    listed = ", ".join(f"{account}/{day}" for account, day in days)
    return f" Left alone {len(days)} {what}: {listed}."


def write_ndjson(store: Store, path: str, header_key: str, header: dict[str, object],
                 records: Iterable[object]) -> None:
    """Write `{header_key: header}` then one JSON line per record, zstd, atomically: the
    layout of the NDJSON raw zones (snapshots, market), complete or absent."""
    lines = [orjson.dumps({header_key: header})]
    lines += [dump_json(record) for record in records]
    lines.append(b"")
    store.write_bytes_atomic(path, b"\n".join(lines), compression=COMPRESSION)


def reason(exc: BaseException) -> str:
    """The first line of an error, short enough for a one-sentence message."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def dump_json(record: object) -> bytes:
    """One JSON value as bytes; integers beyond 64 bits kept exact as text."""
    try:
        return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # an integer beyond 64 bits, which orjson neither writes nor reads back
        return orjson.dumps(_wide_ints_as_text(record), option=orjson.OPT_NON_STR_KEYS)


def _wide_ints_as_text(value: object) -> object:
    """Integers outside 64 bits as their decimal text: exact in the raw zone, and flattening
    quarantines them (with that text) rather than reading back a rounded float."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {k: _wide_ints_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wide_ints_as_text(v) for v in value]
    return value
