"""The FOCUS export judged by the FinOps Foundation's own validator (`focus-validator`,
FOCUS 1.2 rules shipped in the package), on a simulated week with bills.

The validator needs Python 3.12 and lives in its own venv (`make focus-validator`, which
`make test` runs first). A missing venv is a failure, not a skip: an unjudged export must
not pass as a judged one.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest

from pipeline.reports.focus import export_focus
from tests.support.bill_fixtures import WEEK_DAYS, simulated_week_home
from tests.support.report_fixtures import build_warehouse

ROOT = Path(__file__).resolve().parents[2]
FOCUS_VENV = ROOT / ".venv-focus"
SUMMARY = re.compile(r"Total: (\d+) \| Pass: (\d+) \| Fail: (\d+) \| Skipped: (\d+)")
VERDICT = re.compile(r"^\S+ (\S+): (PASS|FAIL|SKIPPED)\b", re.MULTILINE)


def _validator() -> tuple[Path, Path]:
    """(the focus-validator program, the site-packages folder it must run from)."""
    program = FOCUS_VENV / "bin" / "focus-validator"
    packages = sorted(FOCUS_VENV.glob("lib/python3*/site-packages"))
    if not program.is_file() or not packages or not (packages[-1] / "focus_validator").is_dir():
        pytest.fail(f"The FOCUS validator is not installed in {FOCUS_VENV}: run `make test` "
                    "(or `make focus-validator`) to create it.", pytrace=False)
    return program, packages[-1]


@pytest.fixture(scope="module")
def week_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("focus_week") / "home"
    home.mkdir()
    simulated_week_home(home)
    build_warehouse(home)
    out = home.parent / "focus.parquet"
    export_focus(home, date_from=WEEK_DAYS[0], date_to=WEEK_DAYS[-1], out=out)
    return out


def _validate(program: Path, packages: Path, data: Path) -> tuple[str, tuple[int, ...]]:
    # It opens its rules files by paths relative to the site-packages folder.
    proc = subprocess.run(
        [str(program), "--data-file", str(data), "--validate-version", "1.2",
         "--block-download"],
        cwd=packages, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    match = SUMMARY.search(output)
    assert match, f"no validation summary (exit {proc.returncode}):\n{output[-3000:]}"
    return output, tuple(int(g) for g in match.groups())


def _or_parents(packages: Path) -> dict[str, str]:
    """{rule: the OR rule it is one alternative of}, from the validator's FOCUS 1.2 model."""
    rules = json.loads(next((packages / "focus_validator" / "rules").glob("model-1.2*.json"))
                       .read_text(encoding="utf-8"))
    out: dict[str, str] = {}

    def visit(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                req = value.get("ValidationCriteria", {}).get("Requirement", {}) \
                    if isinstance(value, dict) else {}
                if isinstance(req, dict) and req.get("CheckFunction") == "OR":
                    for child in req.get("Items", []):
                        if child.get("CheckFunction") == "CheckModelRule":
                            out[child["ModelRuleId"]] = key
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(rules)
    return out


def real_failures(output: str, packages: Path) -> list[str]:
    """Failed rules, except an alternative of an OR rule that passed.

    Why: the validator reports every branch of an OR; for InvoiceId it checks "MUST be null"
    (C-004) and "MUST NOT be null" (C-005) as alternatives of C-003, so an export that fills
    InvoiceId passes C-003 and C-005 yet is also reported as failing C-004 (and one with
    InvoiceId NULL fails C-005). A branch counts only if its OR parent failed too.
    """
    verdicts = dict(VERDICT.findall(output))
    parents = _or_parents(packages)
    return [rule for rule, verdict in verdicts.items() if verdict == "FAIL"
            and verdicts.get(parents.get(rule, ""), "") != "PASS"]


def test_export_of_a_billed_week_passes_every_focus_rule(week_export: Path) -> None:
    program, packages = _validator()
    output, (total, passed, failed, _skipped) = _validate(program, packages, week_export)
    assert real_failures(output, packages) == [], output[-3000:]
    # The validator's own count: only the unchosen InvoiceId alternative (see real_failures).
    assert failed <= 1
    # Today 136 rules pass on this export; far fewer means the validator judged nothing.
    assert passed >= 130 and total > passed


def test_validator_catches_a_broken_export(week_export: Path, tmp_path: Path) -> None:
    """The same run finds a real failure when a mandatory column is NULL (the check can
    fail). InvoiceId NULL would not do: FOCUS allows it for charges not on an invoice."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    program, packages = _validator()
    table = pq.read_table(week_export)
    i = table.column_names.index("BillingCurrency")
    broken = table.set_column(i, "BillingCurrency", pa.nulls(table.num_rows, pa.string()))
    pq.write_table(broken, tmp_path / "broken2.parquet")
    output, _counts = _validate(program, packages, tmp_path / "broken2.parquet")
    assert any(r.startswith("BillingCurrency") for r in real_failures(output, packages))


def test_week_has_billed_and_estimated_rows(week_export: Path) -> None:
    import pyarrow.parquet as pq

    rows = pq.read_table(week_export, columns=["x_CostSource", "ChargePeriodStart",
                                               "InvoiceId", "ServiceCategory"]).to_pylist()
    billed_days = {r["ChargePeriodStart"].date() for r in rows if r["x_CostSource"] == "billed"}
    estimated_days = {r["ChargePeriodStart"].date() for r in rows
                      if r["x_CostSource"] == "estimated"}
    assert billed_days == set(WEEK_DAYS[:-1]) and estimated_days == {WEEK_DAYS[-1]}
    assert {r["InvoiceId"] for r in rows} == {"VAST-default-2026-11-PROVISIONAL"}
    assert "Networking" in {r["ServiceCategory"] for r in rows}
    assert date(2026, 11, 16) in billed_days
