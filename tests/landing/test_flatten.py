"""Flattening against the schema contract: exact typed values, drift, quarantine, extras."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.core.secrets import scrub
from pipeline.landing.flatten import flatten
from pipeline.storage.schema import QUARANTINE_SCHEMA, SNAPSHOT_SCHEMA

# The documented `show instance` example (Vast.ai API reference), kept in the repository.
EXAMPLE = Path(__file__).parents[1] / "data" / "show_instance_example.json"
AT = datetime(2026, 11, 26, 17, 15, tzinfo=UTC)


def example() -> dict:
    return json.loads(EXAMPLE.read_text())["instances"]


def one(record: object, **kw: object) -> tuple[dict, list[dict], object]:
    result = flatten([record], "snap1", AT)
    rows = result.table.to_pylist()
    return (rows[0] if rows else {}), result.quarantine.to_pylist(), result


def test_documented_example_lands_with_exact_types() -> None:
    raw = example()
    row, quarantine, result = one(scrub(raw))
    assert result.table.schema.equals(SNAPSHOT_SCHEMA, check_metadata=True)
    assert quarantine == []
    assert row["id"] == 883 and row["snapshot_id"] == "snap1" and row["snapshot_at"] == AT
    assert row["search__disk_hour"] == 0.002074074074074074
    assert row["search__gpu_cost_per_hour"] == 1.0
    assert row["instance__gpu_cost_per_hour"] == 0.0
    assert row["search__discounted_total_per_hour"] == 1.0020740740740741
    assert row["start_date"] == datetime(2025, 10, 21, 1, 3, 38, 225083, tzinfo=UTC)
    assert row["end_date"] == datetime.fromtimestamp(2034617753, tz=UTC)
    assert row["dph_base"] == 1.0 and isinstance(row["dph_base"], float)
    assert row["cpu_ram"] == 128576 and row["static_ip"] is True and row["is_bid"] is False
    assert row["ports"] == [8080, 8081]
    assert row["image_args"] == []
    assert row["local_ipaddrs"] == ["10.2.202.31", "172.17.0.1"]
    assert row["os_version"] == "18.04"  # a number where the contract says text
    assert row["has_jupyter_token"] is True and row["extra_env_names"] == []
    assert row["label"] is None and row["gpu_util"] is None
    assert row["extra_fields"] is None and result.new_fields == set()
    assert row["quarantined_values"] == 0


@pytest.mark.parametrize(
    ("field", "sent", "column", "expected"),
    [
        ("cuda_max_good", "12.4", "cuda_max_good", 12.4),
        ("hosting_type", "1", "hosting_type", 1),
        ("cpu_ram", 128576.0, "cpu_ram", 128576),
        ("static_ip", 0, "static_ip", False),
        ("rentable", "true", "rentable", True),
        ("start_date", "1761008618.5", "start_date", datetime(2025, 10, 21, 1, 3, 38, 500000,
                                                              tzinfo=UTC)),
        ("start_date", "2025-10-21T01:03:38Z", "start_date", datetime(2025, 10, 21, 1, 3, 38,
                                                                      tzinfo=UTC)),
        ("image_args", "--port 8080", "image_args", ["--port 8080"]),
        ("ports", {"8080/tcp": [{"HostPort": "41080"}], "22/tcp": None}, "ports", [8080, 22]),
        ("local_ipaddrs", ["10.0.0.1"], "local_ipaddrs", ["10.0.0.1"]),
        ("gpu_util", 57.3, "gpu_util", 57.3),  # percent kept as is: SQL normalises it
        ("os_version", None, "os_version", None),
    ],
)
def test_lossless_drift_is_coerced(field: str, sent: object, column: str, expected: object) -> None:
    record = scrub(example())
    record[field] = sent
    row, quarantine, _ = one(record)
    assert quarantine == []
    assert row[column] == expected
    assert row["quarantined_values"] == 0


@pytest.mark.parametrize(
    ("field", "sent", "reason_start"),
    [
        ("cuda_max_good", "abc", "expected number, got string 'abc'"),
        ("cpu_ram", 1.5, "expected integer, got number 1.5"),
        ("cpu_ram", 2**70, "expected integer, got number"),
        ("dph_total", True, "expected number, got boolean"),
        ("static_ip", 2, "expected boolean, got number 2"),
        ("gpu_name", {"x": 1}, "expected string, got object"),
        ("ports", ["http"], "expected array of integers"),
        ("ports", [1.5], "expected array of integers"),
        ("start_date", "yesterday", "expected epoch seconds"),
        ("search", "cheap", "expected object, got string 'cheap'"),
    ],
)
def test_lossy_values_go_to_quarantine(field: str, sent: object, reason_start: str) -> None:
    record = scrub(example())
    record[field] = sent
    row, quarantine, result = one(record)
    assert len(quarantine) == 1
    q = quarantine[0]
    assert q["instance_id"] == 883 and q["field"] == field
    assert json.loads(q["original_value"]) == sent
    assert q["reason"].startswith(reason_start)
    assert row["quarantined_values"] == 1 and result.quarantined_values == 1
    if field == "search":
        assert row["search__total_hour"] is None
    else:
        assert row[field] is None
    assert result.quarantine.schema.equals(QUARANTINE_SCHEMA, check_metadata=True)


def test_boolean_in_float_column_is_refused_whatever_its_position() -> None:
    records = []
    for i, v in enumerate([2.5, True, 3.0]):
        r = scrub(example())
        r["id"], r["dph_total"] = i, v
        records.append(r)
    result = flatten(records, "s", AT)
    assert result.table.column("dph_total").to_pylist() == [2.5, None, 3.0]
    assert result.quarantine.column("instance_id").to_pylist() == [1]


def test_broken_records_are_quarantined_and_the_rest_lands() -> None:
    good = scrub(example())
    other = copy.deepcopy(good)
    other["id"] = 884
    bad_id = dict(good, id="abc")
    records = [good, "instance 7 unavailable", bad_id, 17, other, dict(good), {"no": "id"}]
    result = flatten(records, "s", AT)
    assert result.table.column("id").to_pylist() == [883, 884]
    reasons = result.quarantine.column("reason").to_pylist()
    assert reasons == [
        "record is not an object, got string 'instance 7 unavailable'",
        "expected integer id, got string 'abc'",
        "record is not an object, got number 17",
        "duplicate id 883 in this snapshot",
        "expected integer id, got none",
    ]
    assert result.quarantine.column("field").null_count == 5
    assert result.quarantined_records == 5


def test_pricing_object_missing_keys_are_null() -> None:
    record = scrub(example())
    record["instance"] = {"diskHour": 0.5}
    record["search"] = None
    row, quarantine, _ = one(record)
    assert quarantine == []
    assert row["instance__disk_hour"] == 0.5
    assert row["instance__gpu_cost_per_hour"] is None and row["instance__total_hour"] is None
    assert row["search__disk_hour"] is None


def test_unknown_fields_are_kept_and_reported() -> None:
    record = scrub(example())
    record["zeta_new"] = {"b": 2, "a": 1}
    record["alpha_new"] = "x"
    record["search"] = dict(record["search"], newRate=0.3)
    row, quarantine, result = one(record)
    assert quarantine == []
    assert result.new_fields == {"zeta_new", "alpha_new", "search.newRate"}
    assert row["extra_fields"] == '{"alpha_new":"x","search.newRate":0.3,"zeta_new":{"a":1,"b":2}}'


def test_secrets_are_stripped_defensively() -> None:
    record = example()  # not scrubbed
    record["extra_env"] = [["HF_TOKEN", "hf_very_secret_value"]]
    result = flatten([record], "s", AT)
    text = json.dumps(result.table.to_pylist(), default=str)
    assert record["jupyter_token"] not in text and "hf_very_secret_value" not in text
    assert result.table.column("extra_env_names").to_pylist() == [["HF_TOKEN"]]


def test_empty_snapshot_gives_empty_typed_tables() -> None:
    result = flatten([], "s", AT)
    assert result.table.num_rows == 0 and result.quarantine.num_rows == 0
    assert result.table.schema.equals(SNAPSHOT_SCHEMA)


def test_missing_keys_are_null_and_types_stay_fixed() -> None:
    result = flatten([{"id": 5}], "s", AT)
    row = result.table.to_pylist()[0]
    assert row["id"] == 5 and row["dph_total"] is None and row["ports"] is None
    assert result.table.schema.field("ports").type == pa.list_(pa.int64())


def test_fleet_records_flatten_to_one_row_per_served_object() -> None:
    from pipeline.sim.fleet import FleetModel

    fleet = FleetModel(seed=11, size=60, drift_rate=0.2, new_field_rate=0.1, broken_rate=0.05)
    records = [scrub(r) for r in fleet.records_at(AT)]
    result = flatten(records, "s", AT)
    usable = [r for r in records if isinstance(r, dict) and type(r.get("id")) is int]
    assert result.table.num_rows == len(usable)
    assert result.quarantined_records == len(records) - len(usable)
    assert result.coerced_values > 0  # drift at 20% is really there and converted
    clean = {r["id"]: r for r in fleet.clean_records_at(AT)}
    for row in result.table.to_pylist():
        assert row["dph_base"] == pytest.approx(clean[row["id"]]["dph_base"])
