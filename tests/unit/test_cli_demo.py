"""What `llmops demo` prints at the end."""

from __future__ import annotations

from airflow_provider_llmops import cli


def test_the_demo_prints_the_champions_metrics_whatever_their_type():
    """Evaluation tags hold flags and unmeasured values beside numbers (the demo crashed on `True`)."""
    tags = {
        "llmops.eval.macro_f1": "0.98481", "llmops.eval.fairness_measured": "True", "llmops.eval.fairness_gap": "None",
        "llmops.eval.heldout:x.macro_f1": "0.5", "llmops.evaluation_sha256": "ab" * 32,
    }  # fmt: skip
    assert cli._champion_metrics(tags) == "fairness_gap None, fairness_measured True, macro_f1 0.9848"
