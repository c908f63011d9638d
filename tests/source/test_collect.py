"""End to end over real HTTP: simulator -> client -> raw zone -> Parquet history.

Checks what a user relies on: every served instance lands exactly once per snapshot,
secrets are nowhere under the data home (inside compressed and Parquet files too), drift
and broken records are kept or quarantined without failing the batch, and a failed
collection writes nothing at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from pipeline.core.config import load_settings
from pipeline.core.errors import ApiUnreachableError, AuthError
from pipeline.sim.fleet import FleetModel
from pipeline.sim.simulator import SimulatorServer
from pipeline.source.collect import collect
from tests.support.stored_text import stored_text

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEY = "test-key-0123456789abcdef"


class Clock:
    """The simulator's and the collector's shared notion of now, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _settings(home: Path, url: str, key: str = KEY):
    return load_settings({"VAST_PIPELINE_HOME": str(home), "VAST_API_KEY": key,
                          "VAST_URL": url})


def _accounts_config(path: Path, url: str, accounts: tuple[tuple[str, str], ...]) -> Path:
    """A config file naming each (account, key variable), all served by `url`."""
    path.write_text("".join(
        f'[[accounts]]\nname = "{name}"\nkey_env = "{env}"\nurl = "{url}"\n'
        for name, env in accounts))
    return path


def _collect_at(settings, clock: Clock, moments: list[datetime]):
    results = []
    for moment in moments:
        clock.now = moment
        results += collect(settings, now=moment)
    return results


def _rows(home: Path) -> list[tuple]:
    glob = f"{home}/parquet/instance_snapshots/*/*/*.parquet"
    return duckdb.execute(f"""select snapshot_at, id, account from read_parquet('{glob}',
        hive_partitioning = true) order by snapshot_at, id""").fetchall()


def _history_files(home: Path) -> list[Path]:
    """Files under home except the alert state (a failed collection records its failure
    there for `collection_failing`) and lock files."""
    return [p for p in home.rglob("*") if p.is_file()
            and p.relative_to(home).parts[0] not in ("alerts", "_locks")]


def test_snapshots_land_every_served_instance_once(home: Path) -> None:
    fleet = FleetModel(seed=3, size=60)
    clock = Clock(START)
    moments = [START + timedelta(minutes=15 * i) for i in range(3)]
    # Three snapshots, the last one on the next UTC day, so two day partitions are written.
    moments[-1] = datetime(2026, 3, 3, 0, 5, tzinfo=UTC)
    with SimulatorServer({KEY: fleet}, clock=clock) as server:
        results = _collect_at(_settings(home, server.url), clock, moments)
    expected = sorted((m, r["id"], "default") for m in moments for r in fleet.records_at(m))
    assert _rows(home) == expected
    assert [r.records for r in results] == [len(fleet.records_at(m)) for m in moments]
    assert all(r.pages == -(-r.records // 25) for r in results)


def test_no_secret_reaches_any_file(home: Path) -> None:
    fleet = FleetModel(seed=5, size=40)
    clock = Clock(START)
    moments = [START + timedelta(minutes=15 * i) for i in range(2)]
    with SimulatorServer({KEY: fleet}, clock=clock) as server:
        _collect_at(_settings(home, server.url), clock, moments)
    secrets = set().union(*(fleet.secret_values_at(m) for m in moments))
    assert len(secrets) > 40  # tokens and extra_env values were really served
    everything = stored_text(home).text
    leaked = sorted(s for s in secrets if s in everything)
    assert leaked == []
    assert KEY not in everything
    # What is kept instead: the presence of a token and the variable names.
    glob = f"{home}/parquet/instance_snapshots/*/*/*.parquet"
    kept = duckdb.execute(f"select bool_or(has_jupyter_token), max(len(extra_env_names)) "
                      f"from read_parquet('{glob}')").fetchone()
    assert kept[0] is True and kept[1] >= 1


def test_drift_and_broken_records_are_kept_or_quarantined(home: Path) -> None:
    fleet = FleetModel(seed=11, size=80, drift_rate=0.3, new_field_rate=0.2, broken_rate=0.05)
    clock = Clock(START)
    with SimulatorServer({KEY: fleet}, clock=clock) as server:
        [result] = _collect_at(_settings(home, server.url), clock, [START])
    served = fleet.records_at(START)
    broken = [r for r in served if not isinstance(r, dict) or not isinstance(r.get("id"), int)]
    assert broken, "the fleet was asked for broken records"
    assert result.quarantined_records == len(broken)
    assert result.rows_landed == len(served) - len(broken)
    assert result.new_fields  # unknown keys were surfaced
    q_glob = f"{home}/parquet/quarantine/*/*/*.parquet"
    reasons = duckdb.execute(f"select count(*), count(reason) from read_parquet('{q_glob}') "
                         "where field is null").fetchone()
    assert reasons == (len(broken), len(broken))
    # Analysts see the same quarantine in the warehouse, values and records apart.
    from pipeline.warehouse.query import query
    from tests.support.warehouse import build_at_cadence

    build_at_cadence(home)
    kinds = dict(query(str(home), "select kind, count(*) from quarantine group by kind").rows)
    assert kinds.get("record") == len(broken)
    assert kinds.get("value", 0) == result.quarantined_values


def test_refused_key_writes_nothing(home: Path) -> None:
    with SimulatorServer({KEY: FleetModel(seed=1, size=30)}) as server, \
            pytest.raises(AuthError) as caught:
        collect(_settings(home, server.url, key="wrong-key-secret-value"))
    assert "wrong-key-secret-value" not in str(caught.value)
    assert _history_files(home) == []
    assert "wrong-key-secret-value" not in stored_text(home).text


def test_dead_url_is_unreachable_and_writes_nothing(home: Path) -> None:
    server = SimulatorServer(FleetModel(seed=1, size=5)).start()
    dead_url = server.url
    server.stop()  # the port is closed now: connections are refused
    settings = _settings(home, dead_url)
    with pytest.raises(ApiUnreachableError, match="Could not connect"):
        collect(settings)
    assert _history_files(home) == []


def test_several_accounts_each_land_their_own_fleet(home: Path, tmp_path: Path) -> None:
    fleets = {"key-research": FleetModel(seed=21, size=30),
              "key-ops": FleetModel(seed=22, size=12)}
    clock = Clock(START)
    with SimulatorServer(fleets, clock=clock) as server:
        config = _accounts_config(tmp_path / "accounts.toml", server.url,
                                  (("research", "KEY_R"), ("ops", "KEY_O")))
        settings = load_settings({"VAST_PIPELINE_HOME": str(home), "KEY_R": "key-research",
                                  "KEY_O": "key-ops", "VAST_PIPELINE_CONFIG": str(config)})
        results = collect(settings, now=START)
        only_ops = collect(settings, "ops", now=START + timedelta(minutes=15))
    assert [r.account for r in results] == ["research", "ops"]
    assert [r.account for r in only_ops] == ["ops"]
    rows = _rows(home)
    for account, key in (("research", "key-research"), ("ops", "key-ops")):
        ids = sorted(i for _, i, a in rows if a == account and _ == START)
        assert ids == sorted(r["id"] for r in fleets[key].records_at(START))
    assert {a for t, _, a in rows if t > START} == {"ops"}


def test_one_failing_account_does_not_cost_the_others_their_snapshot(
        home: Path, tmp_path: Path) -> None:
    fleet = FleetModel(seed=23, size=10)
    with SimulatorServer({"good-key": fleet}, clock=Clock(START)) as server:
        config = _accounts_config(tmp_path / "accounts.toml", server.url,
                                  (("broken", "KEY_B"), ("fine", "KEY_F")))
        settings = load_settings({"VAST_PIPELINE_HOME": str(home), "KEY_B": "revoked-key",
                                  "KEY_F": "good-key", "VAST_PIPELINE_CONFIG": str(config)})
        told: list[tuple[dict[str, str | None], datetime, bool]] = []
        with pytest.raises(AuthError, match=r"1 of 2 accounts failed\. Account broken: "):
            collect(settings, now=START, report=lambda _settings, outcomes, at, *, landed:
                    told.append((dict(outcomes), at, landed)))
    assert {a for _, _, a in _rows(home)} == {"fine"}
    # the report (the alerts, as the app layer wires them) hears every account, failed too
    [(outcomes, at, landed)] = told
    assert outcomes["fine"] is None and "refused the API key" in (outcomes["broken"] or "")
    assert (at, landed) == (START, True)
    assert "revoked-key" not in stored_text(home).text
