"""Read-only access: `query`, its output formats, and the confined connection that
`vast-pipeline sql`, the reports and the mart checks share: it can read the warehouse and
the Parquet under `$HOME/parquet/`, and nothing else, whatever the SQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.core.errors import QueryError, WarehouseError, first_line
from pipeline.reports.source import open_warehouse
from pipeline.warehouse import build as warehouse
from pipeline.warehouse.models import discover_models
from pipeline.warehouse.query import format_result, open_read_only, query, query_each
from tests.support.sql_fixtures import RUN, every, instance_rows, write_history
from tests.support.warehouse import build_at_cadence


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("built")
    rows = instance_rows("a", 1, every("2024-05-01 10:00", 3), [RUN] * 3, dph_base=1.0,
                         storage_total_cost=0.5, label="x,y")
    write_history(home, rows)
    build_at_cadence(home)
    return home


def test_missing_warehouse(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match=r"No warehouse at .*run `vast-pipeline build`"):
        query(tmp_path, "SELECT 1")
    with pytest.raises(WarehouseError, match=r"^No warehouse at .*run `vast-pipeline build`"):
        open_read_only(tmp_path)


def test_open_read_only_is_read_only_and_utc(built: Path) -> None:
    con = open_read_only(built)
    try:
        assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
        assert con.execute("SELECT count(*) FROM estimated_cost_daily").fetchone() == (1,)
        with pytest.raises(duckdb.Error, match=r"read.only"):
            con.execute("CREATE TABLE t AS SELECT 1")
    finally:
        con.close()


def test_warehouse_open_for_writing_is_one_sentence(tmp_path: Path) -> None:
    writer = duckdb.connect(str(tmp_path / warehouse.DB_NAME))  # an analyst's session
    try:
        with pytest.raises(WarehouseError) as err:
            open_read_only(tmp_path)
    finally:
        writer.close()
    message = str(err.value)
    assert message.startswith(f"Cannot open {tmp_path.resolve() / warehouse.DB_NAME} read-only (")
    assert message.endswith("close that and try again.") and "\n" not in message


def test_first_line_drops_hints_and_the_final_period() -> None:
    assert first_line(ValueError("Binder Error: no such column.\nLINE 1: x")) == (
        "Binder Error: no such column")
    assert first_line(ValueError("")) == "ValueError"


@pytest.mark.parametrize("sql", [
    "CREATE TABLE mine AS SELECT 1",
    "INSERT INTO fleet_now SELECT * FROM fleet_now",
    "DROP VIEW estimated_cost_daily",
    "COPY (SELECT 1) TO 'out.csv'",
    "ATTACH 'other.duckdb' AS other",
    "SELECT 1; DELETE FROM incidents",
])
def test_query_refuses_writes(built: Path, sql: str) -> None:
    with pytest.raises(WarehouseError, match="read-only"):
        query(built, sql)
    assert query(built, "SELECT count(*) FROM estimated_cost_daily").rows == [(1,)]


def test_unknown_table_names_the_known_ones(built: Path) -> None:
    with pytest.raises(QueryError) as err:
        query(built, "SELECT * FROM estimated_cost_dialy")
    message = str(err.value)
    assert message.startswith("Table 'estimated_cost_dialy' does not exist (did you mean "
                              "\"estimated_cost_daily\"?); known tables: ")
    assert "estimated_cost_daily" in message and "\n" not in message and err.value.exit_code == 2


def _duckdb_error(built: Path, sql: str) -> str:
    """The message DuckDB itself gives for `sql` on the warehouse."""
    with duckdb.connect(str(built / warehouse.DB_NAME), read_only=True) as con, \
            pytest.raises(duckdb.Error) as err:
        con.execute(sql)
    return str(err.value)


@pytest.mark.parametrize(("sql", "hint"), [
    ("SELECT totl_cost FROM estimated_cost_daily", "candidate bindings: "),
    ("SELECT nosuchfn(total_cost) FROM estimated_cost_daily", "did you mean "),
    ("SELECT 'a' - 1", "candidate functions: "),
])
def test_duckdbs_hints_stay_in_the_one_sentence(built: Path, sql: str, hint: str) -> None:
    """DuckDB puts what to do below its first line; the sentence keeps it (without the
    LINE/caret excerpt), and a mistake in the SQL is the user's to correct (exit 2)."""
    own = _duckdb_error(built, sql).splitlines()
    [shown] = [line.strip() for line in own[1:] if line.strip()[:1].isalpha()
               and not line.startswith("LINE ")][:1]
    with pytest.raises(QueryError) as err:
        query(built, sql)
    message = str(err.value)
    assert "\n" not in message and "LINE 1" not in message and "^" not in message
    assert message.startswith("The query failed: " + own[0].rstrip(".!")[:40])
    assert f"({hint}" in message and shown[len(hint):].split(",")[0] in message
    assert message.endswith(").") and err.value.exit_code == 2


def test_a_long_list_of_candidates_is_cut(built: Path) -> None:
    items = [line for line in _duckdb_error(built, "SELECT abs()").splitlines()
             if line.startswith("\t") and "(" in line]
    assert len(items) > 6
    with pytest.raises(QueryError) as err:
        query(built, "SELECT abs()")
    message = str(err.value)
    assert items[5].strip() in message and items[6].strip() not in message
    assert f" and {len(items) - 6} more)." in message


def test_a_failure_of_the_data_is_a_run_time_error(built: Path) -> None:
    with pytest.raises(WarehouseError) as err:
        query(built, "SELECT CAST(label AS INTEGER) FROM estimated_cost_daily")
    assert not isinstance(err.value, QueryError) and err.value.exit_code == 1
    assert str(err.value).startswith("The query failed: Conversion Error")


def test_several_statements_run_in_turn(built: Path) -> None:
    sql = "SELECT count(*) AS n FROM estimated_cost_daily;\n  SELECT 2 AS two, 'x' AS x ;"
    first, second = query_each(built, sql)
    assert (first.columns, first.rows, first.sql) == (
        ["n"], [(1,)], "SELECT count(*) AS n FROM estimated_cost_daily")
    assert (second.columns, second.rows, second.sql) == (["two", "x"], [(2, "x")],
                                                         "SELECT 2 AS two, 'x' AS x")
    assert [(r.number, r.count) for r in (first, second)] == [(1, 2), (2, 2)]
    with pytest.raises(QueryError, match=r"^The query holds 2 statements; give one"):
        query(built, sql)
    with pytest.raises(QueryError, match=r"^one please$"):
        list(query_each(built, sql, single_result="one please"))
    results = query_each(built, "SELECT 1; SELECT nope FROM estimated_cost_daily; SELECT 3")
    assert next(results).rows == [(1,)]
    with pytest.raises(QueryError, match=r'^Statement 2 of 3: The query failed: Binder Error'):
        next(results)


def test_bad_sql_is_one_sentence(built: Path) -> None:
    with pytest.raises(WarehouseError) as err:
        query(built, "SELEC 1")
    assert "\n" not in str(err.value) and "parsed" in str(err.value)


def test_query_with_params(built: Path) -> None:
    res = query(built, "SELECT instance_id FROM estimated_cost_daily WHERE account = ?",
                          params=["a"])
    assert res.columns == ["instance_id"] and res.rows == [(1,)]


def test_csv_json_and_table_formats(built: Path) -> None:
    res = query(built, "SELECT account, instance_id, label, total_cost, "
                          "cost_per_gpu_hour FROM estimated_cost_daily")
    # 2 intervals of .25 h at $1 GPU + $.5 storage = $.75
    assert format_result(res, "csv") == (
        "account,instance_id,label,total_cost,cost_per_gpu_hour\na,1,\"x,y\",0.75,\n")
    assert '"total_cost": 0.75' in format_result(res, "json")
    table = format_result(res, "table").splitlines()
    assert table[0].split() == res.columns and table[-1] == "(1 row)"
    assert "NULL" in table[2]
    with pytest.raises(WarehouseError, match="Unknown format"):
        format_result(res, "xml")


def test_works_from_any_working_directory(built: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect(str(built / warehouse.DB_NAME), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM instance_intervals").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM instance_snapshots").fetchone() == (3,)
    finally:
        con.close()


def test_plain_duckdb_cli_opens_the_warehouse(built: Path, tmp_path: Path) -> None:
    """Analysts use the `duckdb` command, a release behind the Python package on PyPI."""
    cli = Path(sys.executable).with_name("duckdb")
    assert cli.exists(), "the duckdb CLI (PyPI duckdb-cli, a dependency) is missing: make install"
    result = subprocess.run(
        [str(cli), "-readonly", "-csv", str(built / warehouse.DB_NAME), "-c",
         "select count(*) as n from instance_intervals; "
         "select round(sum(total_cost), 6) as usd from estimated_cost_daily"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    expected = query(built, "select round(sum(total_cost), 6) from estimated_cost_daily").rows
    lines = result.stdout.split()
    assert lines[:3] == ["n", "2", "usd"]
    assert float(lines[3]) == pytest.approx(expected[0][0])


# --------------------------------------------------------------------------- confinement


def _outside(tmp_path: Path) -> Path:
    """A readable file that is not under the data home."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("not for the warehouse\n")
    return secret


def _one_sentence(err: pytest.ExceptionInfo[WarehouseError]) -> str:
    message = str(err.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_every_model_reads_through_the_confined_connection(built: Path) -> None:
    """Every model, macros called over the whole built span, answers with its columns."""
    span = query(built, "SELECT min(day), max(day) FROM spend_daily").rows[0]
    assert span[0] is not None
    args = (f"DATE '{span[0]}'", f"DATE '{span[1]}'")
    for model in discover_models():
        result = query(built, f"SELECT * FROM {model.call(*args)} LIMIT 1")
        assert result.columns, model.name


def test_reading_the_homes_parquet_works(built: Path) -> None:
    glob = f"{built.resolve()}/parquet/instance_snapshots/*/*/*.parquet"
    assert query(built, f"SELECT count(*) FROM read_parquet('{glob}')").rows == [(3,)]
    models = f"{built.resolve()}/parquet/models/instance_intervals/*/*/*.parquet"
    assert query(built, f"SELECT count(*) FROM read_parquet('{models}')").rows == [(2,)]


@pytest.mark.parametrize("where", ["outside", "home", "parquet"])
def test_explain_analyze_copy_writes_nothing(built: Path, tmp_path: Path, where: str) -> None:
    folder = {"outside": tmp_path, "home": built, "parquet": built / "parquet"}[where]
    target = folder / f"x-{where}.csv"
    sql = f"EXPLAIN ANALYZE COPY (SELECT 42) TO '{target}'"
    with pytest.raises(WarehouseError, match="EXPLAIN of something other than a SELECT") as err:
        query(built, sql)
    _one_sentence(err)
    assert not target.exists()


def test_explain_with_options_of_a_copy_is_refused(built: Path, tmp_path: Path) -> None:
    target = built / "parquet" / "opts.csv"
    with pytest.raises(WarehouseError, match="EXPLAIN"):
        query(built, f"/* hi */ EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1) TO '{target}'")
    assert not target.exists()


def test_the_connection_itself_cannot_write_outside_the_parquet(built: Path,
                                                                 tmp_path: Path) -> None:
    """Without the statement check: the connection alone refuses files outside $HOME/parquet."""
    targets = [tmp_path / "copy.csv", built / "copy.csv"]
    con = open_read_only(built)
    try:
        for target in targets:
            with pytest.raises(duckdb.PermissionException):
                con.execute(f"EXPLAIN ANALYZE COPY (SELECT 42) TO '{target}'")
            with pytest.raises(duckdb.PermissionException):
                con.execute(f"COPY (SELECT 42) TO '{target}'")
    finally:
        con.close()
    assert not any(t.exists() for t in targets)


def test_read_text_outside_the_parquet_is_refused(built: Path, tmp_path: Path) -> None:
    for path in (_outside(tmp_path), built / "warehouse_state.json"):
        assert path.is_file()
        with pytest.raises(WarehouseError, match="reads only the warehouse") as err:
            query(built, f"SELECT content FROM read_text('{path}')")
        assert str(path) in _one_sentence(err)
    with pytest.raises(WarehouseError, match="reads only the warehouse"):
        query(built, f"SELECT * FROM glob('{tmp_path}/*')")
    traversal = f"{built.resolve()}/parquet/../warehouse_state.json"
    with pytest.raises(WarehouseError, match="reads only the warehouse"):
        query(built, f"SELECT content FROM read_text('{traversal}')")


@pytest.mark.parametrize(("sql", "kind"), [
    ("ATTACH ':memory:' AS scratch", "ATTACH"),
    ("ATTACH '{home}/parquet/new.duckdb' AS other", "ATTACH"),
    ("DETACH warehouse", "DETACH"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET threads = 1", "SET"),
    ("SET enable_external_access = true", "SET"),
    ("RESET TimeZone", "SET"),
    ("USE memory", "SET"),
    ("PRAGMA enable_profiling", "PRAGMA"),
    ("PRAGMA profile_output = '{home}/parquet/profile.txt'", "SET"),
    ("CALL pragma_version()", "CALL"),
    ("EXPORT DATABASE '{home}/parquet/export'", "EXPORT"),
    ("COPY estimated_cost_daily TO '{home}/parquet/c.csv'", "COPY"),
    ("CREATE TEMP TABLE scratch AS SELECT 1", "CREATE"),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')", "CREATE"),
])
def test_statements_that_are_not_reads_are_refused(built: Path, sql: str, kind: str) -> None:
    before = sorted(p.name for p in (built / "parquet").iterdir())
    with pytest.raises(WarehouseError, match=f"^Refused a {kind} statement: .*read-only") as err:
        query(built, sql.format(home=built.resolve()))
    _one_sentence(err)
    assert sorted(p.name for p in (built / "parquet").iterdir()) == before


def test_the_connection_itself_refuses_settings_and_extensions(built: Path,
                                                               tmp_path: Path) -> None:
    con = open_read_only(built)
    try:
        for sql in ("SET threads = 1", "SET enable_external_access = true",
                    "PRAGMA enable_profiling", "SET TimeZone = 'Europe/Paris'"):
            with pytest.raises(duckdb.InvalidInputException, match="locked"):
                con.execute(sql)
        for sql in ("INSTALL httpfs", "LOAD httpfs",
                    f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
                    f"SELECT * FROM read_text('{_outside(tmp_path)}')"):
            with pytest.raises(duckdb.PermissionException):
                con.execute(sql)
        assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    finally:
        con.close()
    assert not (tmp_path / "other.duckdb").exists()


@pytest.mark.parametrize("sql", [
    "EXPLAIN SELECT * FROM estimated_cost_daily",
    "EXPLAIN ANALYZE SELECT count(*) FROM instance_intervals",
    "-- a comment first\nexplain analyze with t as (select 1) select * from t",
    "DESCRIBE estimated_cost_daily",
    "SHOW TABLES",
    "SUMMARIZE estimated_cost_daily",
    "VALUES (1), (2)",
    "FROM estimated_cost_daily",
    "EXPLAIN DESCRIBE estimated_cost_daily",
])
def test_reads_are_allowed(built: Path, sql: str) -> None:
    assert query(built, sql).rows


def test_reports_use_the_same_confined_connection(built: Path, tmp_path: Path) -> None:
    with open_warehouse(built) as con:
        assert con.execute("SELECT count(*) FROM estimated_cost_daily").fetchone() == (1,)
        with pytest.raises(duckdb.PermissionException):
            con.execute(f"SELECT * FROM read_text('{_outside(tmp_path)}')")


def test_an_analysts_own_connection_is_unaffected(built: Path, tmp_path: Path) -> None:
    """Confinement belongs to our connection: a `duckdb.connect` the analyst opened on the
    same file in the same process keeps its full powers, before, during and after."""
    secret = _outside(tmp_path)
    analyst = duckdb.connect(str(built / warehouse.DB_NAME), read_only=True)
    try:
        con = open_read_only(built)
        try:
            assert con.execute("SELECT count(*) FROM estimated_cost_daily").fetchone() == (1,)
            # a second confined connection at the same time (a report during a check)
            assert query(built, "SELECT count(*) FROM estimated_cost_daily").rows == [(1,)]
            analyst.execute("SET threads = 1")
            got = analyst.execute(f"SELECT content FROM read_text('{secret}')").fetchone()
            assert got == ("not for the warehouse\n",)
        finally:
            con.close()
        assert analyst.execute("SELECT current_setting('enable_external_access')"
                               ).fetchone() == (True,)
        assert analyst.execute("SELECT count(*) FROM estimated_cost_daily").fetchone() == (1,)
    finally:
        analyst.close()
    # and one opened after ours is as free
    con = open_read_only(built)
    try:
        later = duckdb.connect(str(built / warehouse.DB_NAME), read_only=True)
        assert later.execute(f"SELECT count(*) FROM read_text('{secret}')").fetchone() == (1,)
        later.close()
    finally:
        con.close()


def test_cli_sql_refuses_the_explain_analyze_copy(built: Path, tmp_path: Path) -> None:
    from tests.support.cli import assert_one_sentence_error, run_cli

    target = tmp_path / "x.csv"
    result = run_cli("sql", f"EXPLAIN ANALYZE COPY (SELECT 42) TO '{target}'", home=built)
    assert_one_sentence_error(result, "EXPLAIN")
    assert not target.exists()
    result = run_cli("sql", f"SELECT * FROM read_text('{_outside(tmp_path)}')", home=built)
    assert_one_sentence_error(result, "reads only the warehouse")
    ok = run_cli("sql", "select count(*) as n from estimated_cost_daily", "--format", "csv",
                 home=built)
    assert ok.returncode == 0 and ok.stdout.split() == ["n", "1"]


def test_cli_sql_shows_each_statements_result_and_keeps_duckdbs_hint(built: Path,
                                                                    tmp_path: Path) -> None:
    from tests.support.cli import assert_one_sentence_error, run_cli

    sql = "select count(*) as n from estimated_cost_daily; select 'b' as letter"
    both = run_cli("sql", sql, home=built)
    assert both.returncode == 0, both.stderr
    assert both.stdout.split("\n\n") == [
        "-- select count(*) as n from estimated_cost_daily\n" + format_result(
            query(built, "select count(*) as n from estimated_cost_daily")).rstrip("\n"),
        "-- select 'b' as letter\n" + format_result(
            query(built, "select 'b' as letter")).rstrip("\n"),
        ""]
    one = run_cli("sql", "select 'b' as letter", home=built)
    assert one.stdout == format_result(query(built, "select 'b' as letter")) + "\n"
    for fmt in ("csv", "json"):
        refused = run_cli("sql", sql, "--format", fmt, home=built)
        assert_one_sentence_error(refused, f"--format {fmt} prints one result",
                                  "--format table")
        assert refused.returncode == 2 and refused.stdout == ""
    stopped = run_cli("sql", "select 1 as one; select totl_cost from estimated_cost_daily",
                      home=built)
    assert_one_sentence_error(stopped, "Statement 2 of 2:", 'candidate bindings: "total_cost"')
    assert stopped.returncode == 2 and stopped.stdout.startswith("-- select 1 as one\none\n")
    typo = run_cli("sql", "select * from estimated_cost_dail", home=built)
    assert_one_sentence_error(typo, 'did you mean "estimated_cost_daily"?')
    assert typo.returncode == 2
    missing = run_cli("sql", "select 1", home=tmp_path)
    assert_one_sentence_error(missing, "No warehouse", "vast-pipeline build")
    assert missing.returncode == 1
