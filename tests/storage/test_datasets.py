"""The dataset registry names everything the home holds, and callers take paths from it."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from pipeline.storage import datasets
from pipeline.storage.datasets import DATASETS, dataset
from pipeline.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]
KINDS = {v for k, v in vars(datasets).items() if k.startswith("KIND_")}
# How the registered folders used to be spelled at their callers.
SPELLED = re.compile(r"""["'](_locks|alerts/state\.json|alerts/log|parquet/models)["']"""
                     r"""|/ ["'](reports|exports)["']|Path\(["']parquet["']\) / ["']models""")


def test_every_entry_has_a_kind_and_the_home_is_covered() -> None:
    assert {d.kind for d in DATASETS.values()} <= KINDS
    assert {"alert_log", "alert_state", "locks", "models", "reports", "exports"} <= set(DATASETS)
    assert dataset("alert_log").partition_columns == ("day",)
    assert dataset("reports").local and dataset("exports").local
    assert not dataset("models").local and dataset("models").kind == datasets.KIND_MODELS


def test_the_store_puts_its_locks_where_the_registry_says(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.lock("acct", date(2026, 11, 20)), store.lock(None, date(2026, 11, 20)):
        pass
    found = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.lock"))
    folder = dataset("locks").folder
    assert found == [f"{folder}/_shared/2026-11-20.lock", f"{folder}/acct/2026-11-20.lock"]


def test_no_module_spells_a_registered_path_itself() -> None:
    """Everything below the registry takes these paths from it (`dataset(name).folder`)."""
    offenders = []
    for path in sorted([*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "assets").rglob("*.py")]):
        if path == ROOT / "pipeline" / "storage" / "datasets.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SPELLED.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_check_above_sees_a_spelled_path() -> None:
    assert SPELLED.search('lock_dir = Path(root) / "_locks"')
    assert SPELLED.search("out = local_dir(home) / 'reports' / name")
    assert not SPELLED.search('out = local_dir(home) / dataset("reports").folder')
