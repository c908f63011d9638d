"""What ships beside the exporter: the example alerting rules and the Grafana dashboard,
checked by Prometheus's promtool and against a real scrape."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.metrics.catalog import METRICS, exported_name
from tests.support.metrics_fixtures import metric_names_in, metrics_home, parse, scrape, serving

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
RULES_TEST = REPO / "deploy" / "prometheus" / "rules_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "vast-pipeline.json"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Sample name -> its label names, as a real scrape of a built warehouse shows them."""
    home = tmp_path_factory.mktemp("deploy") / "home"
    home.mkdir()
    with serving(metrics_home(home)) as url:
        samples = parse(scrape(url))
    return {name: {k for labels, _ in rows for k in labels} for name, rows in samples.items()}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_promtool_accepts_the_rules() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


def test_each_rule_fires_on_its_recorded_series() -> None:
    tested = _promtool("test", "rules", str(RULES_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    alerts = {t["alertname"] for t in yaml.safe_load(RULES_TEST.read_text())["tests"][0][
        "alert_rule_test"] if t["exp_alerts"]}
    rules = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"]
             for r in g["rules"]}
    assert alerts == rules == {"VastInstanceDown", "VastCollectionStale", "VastRunwayShort"}


def test_rules_and_their_series_are_shaped_as_the_endpoint_exports(
        exported: dict[str, set[str]]) -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            names = metric_names_in(rule["expr"]) | metric_names_in(
                json.dumps(rule.get("annotations", {})))
            assert names and names <= exported.keys(), rule["alert"]
    for series in yaml.safe_load(RULES_TEST.read_text())["tests"][0]["input_series"]:
        name, labels = re.fullmatch(r"(\w+)\{(.*)\}", series["series"]).groups()
        assert name in exported, name
        assert set(re.findall(r"(\w+)=", labels)) == exported[name], series["series"]


def _expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs + [v["query"]["query"] for v in dashboard["templating"]["list"]]


def test_every_dashboard_query_reads_an_exported_metric(exported: dict[str, set[str]],
                                                       tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _expressions(dashboard)
    assert len(exprs) > 15
    for expr in exprs:
        names = metric_names_in(expr)
        assert names, expr
        assert names <= exported.keys(), (expr, names - exported.keys())
    # every declared metric is on the dashboard somewhere
    assert {exported_name(m) for m in METRICS} <= set().union(*map(metric_names_in, exprs))
    # and every panel query is PromQL Prometheus parses (as a recording rule, with the
    # dashboard's $account variable at its All value)
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": q.replace("$account", ".*")}
        for n, q in enumerate(queries)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboard_panels_are_distinct() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
