"""The shipped monitoring configuration: include/prometheus/ (scrape config, recording and alerting rules, promtool
unit tests), include/alertmanager/ and include/grafana/ (provisioning and dashboards).

* promtool and amtool (Debian packages prometheus and prometheus-alertmanager) check the files and run the rule unit
  tests; a missing binary fails the test with the install line.
* Every alert has a promtool test where it fires and one where it does not, a severity and annotations.
* Every PromQL query (alert and recording rules, Grafana panels and variables, promtool input series) names only
  metrics the project exports, with labels those metrics carry. The list is built from the code: `ServeMetrics()`
  with one child per labelled collector, and the drift registry of a small report (the same function the drift task
  pushes). Metrics that are proposed but not yet exported are listed in PENDING with their labels; a test fails once
  the code exports one of them, so the list shrinks as they land.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring import PENDING, TARGET_LABELS, exported_metrics
from tests.promql import analyse

ROOT = Path(__file__).parents[2]
PROM = ROOT / "include" / "prometheus"
RULES = PROM / "rules" / "llmops.rules.yml"
PROM_TESTS = sorted((PROM / "tests").glob("*.test.yml"))
ALERTMANAGER = ROOT / "include" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "include" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
INSTALL = (
    "install the Debian packages with `apt-get install -y prometheus prometheus-pushgateway "
    "prometheus-alertmanager` (scripts/setup.sh does)"
)


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str]]:
    return exported_metrics()


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


@pytest.fixture(scope="module")
def catalog(exported: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Exported + pending metrics, Prometheus' own series, and the recording rules' outputs (labels inferred)."""
    names = {**exported, **{name: labels | TARGET_LABELS for name, labels in PENDING.items()}}
    names["up"] = TARGET_LABELS
    # the Pushgateway's record of each pushed group: job + the grouping key the drift task pushes with
    names["push_time_seconds"] = TARGET_LABELS | {"dataset"}
    alert_labels = {"alertname", "alertstate"}
    for rule in _rules():
        value, problems, _ = analyse(rule["expr"], names)
        assert problems == [], f"{rule.get('record') or rule.get('alert')}: {problems}"
        if "record" in rule:
            names[rule["record"]] = value.labels
        else:
            alert_labels |= value.labels | set(rule.get("labels", {}))
    names["ALERTS"] = frozenset(alert_labels)
    return names


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {INSTALL}")
    return path


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


# ---- promtool / amtool -----------------------------------------------------------------------------------------------


def test_promtool_checks_the_scrape_config_and_its_rule_files() -> None:
    done = _run(_tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_checks_the_rules() -> None:
    done = _run(_tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout
    assert len(_alerts()) == 16


@pytest.mark.slow
def test_promtool_rule_unit_tests_pass() -> None:
    assert [p.name for p in PROM_TESTS] == ["batch.test.yml", "serving.test.yml"]
    done = _run(_tool("promtool"), "test", "rules", *[str(p) for p in PROM_TESTS])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(PROM_TESTS), done.stdout


def test_promtool_unit_tests_fail_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: the same drift input expecting no alert is reported as a failure."""
    broken = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'llmops_drift_detected{dataset="tickets"}', "values": "1x5"}],
                "alert_rule_test": [{"eval_time": "2m", "alertname": "LLMOpsDriftDetected", "exp_alerts": []}],
            }
        ],
    }
    path = tmp_path / "broken.test.yml"
    path.write_text(yaml.safe_dump(broken))
    done = _run(_tool("promtool"), "test", "rules", str(path))
    assert done.returncode == 1 and "FAILED" in done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in PROM_TESTS:
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../rules/llmops.rules.yml"], path
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts without a test where they fire"
    assert names - quiet == set(), "alerts without a test where they do not fire"
    assert (firing | quiet) - names == set(), "tests for alerts that do not exist"


def test_every_alert_says_how_bad_and_where_to_look() -> None:
    for rule in _alerts():
        name = rule["alert"]
        assert name.startswith("LLMOps"), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["labels"]["component"] in {
            "serving",
            "drift",
            "validation",
            "canary",
            "sanity",
            "pipeline",
            "monitoring",
        }, name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        assert 20 < len(rule["annotations"]["summary"]) < 120, name
        assert len(rule["annotations"]["description"]) > 120, name


def test_alertmanager_config_is_valid_and_routes_every_severity_to_the_webhook() -> None:
    amtool = _tool("amtool")
    done = _run(amtool, "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert {"alertname", "model"} <= set(config["route"]["group_by"])
    [receiver] = config["receivers"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"].startswith("http://127.0.0.1:") and webhook["send_resolved"] is True
    severities = {rule["labels"]["severity"] for rule in _alerts()}
    assert severities == {"critical", "warning", "info"}
    for severity in sorted(severities):
        routed = _run(
            amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}",
            f"--verify.receivers={receiver['name']}", "alertname=LLMOpsDriftDetected", f"severity={severity}",
        )  # fmt: skip
        assert routed.returncode == 0, routed.stdout + routed.stderr
        assert routed.stdout.strip().splitlines()[-1] == receiver["name"]


def test_amtool_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = yaml.safe_load(ALERTMANAGER.read_text())
    broken["route"]["receiver"] = "nobody"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(broken))
    assert _run(_tool("amtool"), "check-config", str(path)).returncode != 0


def test_scrape_config_targets_the_service_and_the_pushgateway() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    serve, gateway = jobs["llmops-serve"], jobs["pushgateway"]
    assert serve["metrics_path"] == "/metrics"
    assert serve["static_configs"][0]["targets"] == ["127.0.0.1:8765"]
    assert gateway["honor_labels"] is True
    assert gateway["static_configs"][0]["targets"] == ["127.0.0.1:9091"]
    assert config["rule_files"] == ["rules/*.rules.yml"]
    # the alert rules select on these job names
    text = RULES.read_text()
    assert 'up{job="llmops-serve"}' in text and 'up{job="pushgateway"}' in text


# ---- metric names and labels -----------------------------------------------------------------------------------------


def test_the_exported_list_is_built_from_the_code(exported: dict[str, frozenset[str]]) -> None:
    assert exported["llmops_serve_requests_total"] == {"route", "status", "model_version", "role"} | TARGET_LABELS
    assert exported["llmops_serve_request_latency_seconds_bucket"] == {"route", "model_version", "role", "le"} | (
        TARGET_LABELS
    )
    assert exported["llmops_serve_canary_share"] == TARGET_LABELS
    assert exported["llmops_drift_score"] == {"dataset", "feature", "statistic"} | TARGET_LABELS
    assert exported["llmops_drift_detected"] == {"dataset"} | TARGET_LABELS
    assert len([name for name in exported if name.startswith("llmops_serve_")]) >= 30


def test_pending_metrics_are_not_exported_yet(exported: dict[str, frozenset[str]]) -> None:
    landed = sorted(set(PENDING) & set(exported))
    assert landed == [], (
        f"{landed} are exported now: remove them from PENDING in {Path(__file__).name} (checking their labels "
        "against the code instead of the proposal)"
    )


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule.get("record") or rule.get("alert"))
def test_rule_queries_use_exported_metrics_and_labels(rule: dict[str, Any], catalog: dict[str, frozenset[str]]) -> None:
    value, problems, metrics = analyse(rule["expr"], catalog)
    assert problems == []
    assert metrics, "a rule that reads no metric"
    assert value.kind == "vector"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _grafana_queries() -> list[tuple[str, str]]:
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                queries.append((f"{path.stem}: {panel['title']} [{target['refId']}]", target["expr"]))
        for variable in dashboard["templating"]["list"]:
            queries.append((f"{path.stem}: variable {variable['name']}", variable["query"]["query"]))
    return queries


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[a-zA-Z_]\w*)\)$")


@pytest.mark.parametrize(("where", "query"), _grafana_queries(), ids=[w for w, _ in _grafana_queries()])
def test_grafana_queries_use_exported_metrics_and_labels(
    where: str, query: str, catalog: dict[str, frozenset[str]]
) -> None:
    variables = LABEL_VALUES.match(query)
    if variables:  # a Grafana variable: label_values(selector, label)
        value, problems, _ = analyse(variables["selector"], catalog)
        assert problems == []
        assert variables["label"] in value.labels, f"{variables['label']} is not a label of {variables['selector']}"
        return
    value, problems, metrics = analyse(query, catalog)
    assert problems == []
    assert metrics and value.kind == "vector"


def test_promtool_input_series_are_series_the_project_exports(catalog: dict[str, frozenset[str]]) -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    inputs = 0
    for path in PROM_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test["input_series"]:
                value, problems, metrics = analyse(series["series"], catalog)
                assert problems == [], f"{path.name}: {series['series']}"
                assert not metrics & recorded, f"{path.name}: feed the rules raw series, not {metrics & recorded}"
                inputs += 1
    assert inputs >= 60


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("llmops_serve_requests_totl", "is not exported"),
        ('llmops_serve_requests_total{model="x"}', "label 'model'"),
        ("sum by (dataset) (rate(llmops_serve_requests_total[5m]))", "label 'dataset'"),
        ("histogram_quantile(0.9, sum by (role) (rate(llmops_serve_request_latency_seconds_bucket[5m])))", "'le'"),
        ("llmops_drift_score / llmops_drift_threshold", "no series would ever match"),
        ("llmops_drift_score / on(statistic) llmops_drift_threshold", "label 'statistic'"),
        ("sum(rate(llmops_serve_requests_total[5m])) by (route) > bogus_fn(1)", "cannot parse"),
    ],
)  # fmt: skip
def test_the_query_checker_finds_mistakes(expr: str, problem: str, catalog: dict[str, frozenset[str]]) -> None:
    problems = analyse(expr, catalog)[1]
    assert len(problems) == 1 and problem in problems[0], problems


# ---- Grafana ---------------------------------------------------------------------------------------------------------


def test_grafana_provisioning_and_dashboards_fit_together() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "llmops.yml").read_text())
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://127.0.0.1:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "llmops.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].endswith("/llmops")

    titles = {}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] == path.stem and dashboard["schemaVersion"] >= 39
        titles[dashboard["title"]] = dashboard
        panels = _panels(dashboard)
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        variables = {variable["name"] for variable in dashboard["templating"]["list"]}
        for panel in panels:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]
                used = set(re.findall(r"\$(?!__)(\w+)", target["expr"] + panel["title"]))
                assert used <= variables, f"{path.name}: {panel['title']} uses undefined variables {used - variables}"
    assert set(titles) == {
        "LLMOps pipeline health",
        "LLMOps drift",
        "LLMOps model metrics",
        "LLMOps serving",
        "LLMOps canary",
    }
