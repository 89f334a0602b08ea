"""The LLMOps view's HTML without Airflow: every value from the registry or the store is escaped, the drift plot
scales its points into the plot, and only the buttons given are rendered."""

from __future__ import annotations

import re

from airflow_provider_llmops.plugins import render
from airflow_provider_llmops.plugins.state import (
    AuditState,
    DatasetState,
    DriftPoint,
    ModelState,
    SnapshotRow,
    VersionCard,
)

EVIL = "\"'><script>alert(1)</script>"


def test_every_value_from_the_registry_and_the_store_is_escaped():
    card = VersionCard(EVIL, EVIL, {EVIL: EVIL}, EVIL, EVIL, EVIL, EVIL, (EVIL,), EVIL, "javascript:" + EVIL)
    model = render.model_section(ModelState(EVIL, [card], canary_share=EVIL), "", {EVIL: EVIL})
    row = SnapshotRow(EVIL, EVIL, EVIL, None, None, EVIL, EVIL, (EVIL,), ("drift.json",))
    dataset = DatasetState(EVIL, [row], {EVIL: [DriftPoint(EVIL, EVIL, 0.5, True)]}, EVIL, EVIL)
    html = render.page(EVIL, [model, render.dataset_section(dataset, "/llmops/reports"), render.audit_section(
        AuditState(EVIL, True, False, EVIL, 1, EVIL, 0), EVIL)], EVIL)  # fmt: skip
    assert "<script" not in html and "javascript:" not in html  # a non-web MLflow link is not rendered at all
    assert html.count("&lt;script&gt;") >= 20
    # attributes never break out of their quotes: no raw quote from a value
    assert "\"'>" not in html and "&quot;&#x27;&gt;" in html


def test_the_drift_plot_scales_points_into_the_box_and_marks_drift():
    points = [DriftPoint("a", "t1", 0.0, False), DriftPoint("b", "t2", 0.1, False), DriftPoint("c", "t3", 0.4, True)]
    svg = render.sparkline(points, "length")
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)" r="3" fill="(#[0-9a-f]+)"', svg)
    xs = [float(x) for x, _, _ in circles]
    ys = [float(y) for _, y, _ in circles]
    assert xs == [render.PAD, render.PLOT_W / 2, render.PLOT_W - render.PAD]
    assert ys[0] == render.PLOT_H - render.PAD and ys[2] == render.PAD  # 0 at the bottom, the maximum at the top
    assert abs(ys[1] - (render.PLOT_H - render.PAD - 0.25 * (render.PLOT_H - 2 * render.PAD))) < 0.06
    assert [fill for _, _, fill in circles] == ["#2b6cb0", "#2b6cb0", "#c53030"]
    assert "<title>c t3: 0.4 drift</title>" in svg


def test_only_the_given_trigger_buttons_are_rendered_and_they_open_the_dag_page():
    html = render.model_section(ModelState("m"), "/base", {"Retrain": "llmops_retrain"})
    assert re.findall(r'<a class="button" data-dag="([^"]+)" href="([^"]+)" target="_top"', html) == [
        ("llmops_retrain", "/base/dags/llmops_retrain")
    ]
    assert "Roll back" not in render.model_section(ModelState("m"), "", {})
