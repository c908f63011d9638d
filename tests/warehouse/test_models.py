"""Model discovery: build order from the SQL itself, header contract, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import WarehouseError
from pipeline.warehouse.models import discover_models


def _write_models(folder: Path, models: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in models.items():
        (folder / f"{name}.sql").write_text(sql)
    return folder


def test_real_models_are_ordered_after_their_inputs() -> None:
    models = discover_models()
    order = [m.name for m in models]
    for m in models:
        for dep in m.deps:
            assert order.index(dep) < order.index(m.name), (dep, m.name)
    by_name = {m.name: m for m in models}
    assert set(by_name["instance_intervals"].deps) >= {"instance_states", "snapshots"}
    assert set(by_name["instance_states"].deps) == {"instance_snapshots", "instance_latest"}
    assert "instance_intervals" in by_name["incidents"].deps
    assert by_name["instance_intervals"].materialized == "daily"
    assert "grain" in by_name["estimated_cost_daily"].header.lower()
    for required in ("instance_snapshots", "instance_intervals", "estimated_cost_daily",
                     "incidents", "reliability_alltime_by_instance",
                     "reliability_alltime_by_machine", "fleet_now", "idle_spend",
                     "price_changes"):
        assert required in by_name


def test_dependencies_come_from_identifiers_not_comments_or_strings(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {
        "zeta": "-- zeta: base\nselect 1 as x",
        "alpha": "-- alpha: reads zeta, not beta (comment)\n"
                 "select x, 'beta' as s from zeta /* beta */",
        "beta": "-- beta: reads alpha\nwith t as (select * from alpha) select * from t",
    })
    models = discover_models(sql_dir)
    assert [m.name for m in models] == ["zeta", "alpha", "beta"]
    assert models[1].deps == ("zeta",)
    assert models[2].deps == ("alpha",)


def test_cycle_is_a_clear_error(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {
        "a": "-- a\nselect * from b", "b": "-- b\nselect * from a",
    })
    with pytest.raises(WarehouseError, match="cycle"):
        discover_models(sql_dir)


def test_unknown_relation_is_a_clear_error(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {"a": "-- a\nselect * from nowhere"})
    with pytest.raises(WarehouseError, match=r"unknown relation.*nowhere"):
        discover_models(sql_dir)


def test_model_without_header_is_refused(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "sql", {"a": "select 1"})
    with pytest.raises(WarehouseError, match="must start with a comment"):
        discover_models(sql_dir)


def test_duckdb_setting_lines_are_parsed_and_malformed_ones_refused(tmp_path: Path) -> None:
    sql_dir = _write_models(tmp_path / "ok", {
        "a": "-- a: one row\n-- duckdb: disabled_optimizers = 'join_order'\n"
             "-- duckdb: threads = 1\nselect 1 as x",
        "b": "-- b: one row, no setting\nselect 1 as x",
    })
    by_name = {m.name: m for m in discover_models(sql_dir)}
    assert by_name["a"].settings == (("disabled_optimizers", "'join_order'"), ("threads", "1"))
    assert by_name["b"].settings == ()
    bad = _write_models(tmp_path / "bad", {
        "a": "-- a: one row\n-- duckdb: threads = 1; drop table x\nselect 1 as x",
    })
    with pytest.raises(WarehouseError, match="malformed `-- duckdb:` line"):
        discover_models(bad)


def test_instance_intervals_declares_its_join_order_setting() -> None:
    """The one model whose plan needs a setting (see its header for why)."""
    by_name = {m.name: m for m in discover_models()}
    assert by_name["instance_intervals"].settings == (("disabled_optimizers", "'join_order'"),)
