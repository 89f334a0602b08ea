"""Custom OpenLineage facets of this provider. Their JSON schemas ship in `lineage/schemas/`; each facet's
`_schemaURL` is the schema's `$id` plus the `$defs` pointer. The OpenLineage client is imported lazily."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_url(name: str) -> str:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    return f"{schema['$id']}#/$defs/{name}"


@cache
def _drift_facet_class() -> type:
    import attr
    from openlineage.client.generated.base import RunFacet

    url = schema_url("LlmopsDriftRunFacet")

    @attr.define
    class LlmopsDriftRunFacet(RunFacet):
        verdict: str
        drift: bool
        rows: int
        profileId: str  # noqa: N815 (OpenLineage field names are camelCase)
        statistic: str
        features: list[dict[str, Any]]
        referenceSnapshotIds: list[str] = attr.field(factory=list)  # noqa: N815
        embedding: dict[str, Any] | None = None

        @staticmethod
        def _get_schema() -> str:
            return url

    return LlmopsDriftRunFacet


def drift_run_facet(report: dict[str, Any]) -> Any:
    """The `llmopsDrift` run facet of a drift report (see `core.profile.score`)."""
    statistic = report["rules"]["statistic"]
    features = [
        {
            "name": name,
            "psi": f["scores"]["psi"],
            "js": f["scores"]["js"],
            "kl": f["scores"]["kl"],
            "klSymmetric": f["scores"]["kl_symmetric"],
            "calibratedThreshold": f["calibrated_thresholds"][statistic],
            "fixedThreshold": f["fixed_thresholds"][statistic],
            "drift": f["verdict"]["drift"],
            "rule": f["verdict"]["rule"],
        }
        for name, f in report["features"].items()
    ]
    embedding = report.get("embedding")
    return _drift_facet_class()(
        verdict=report["verdict"],
        drift=report["drift"],
        rows=report["rows"],
        profileId=report["reference"]["profile_id"],
        statistic=statistic,
        features=features,
        referenceSnapshotIds=list(report["reference"].get("snapshot_ids", [])),
        embedding=None
        if not embedding
        else {
            "drift": embedding["drift"],
            "centroidCosineDistance": embedding["centroid_cosine_distance"],
            "mmd2": embedding["mmd2"],
            "mmdPvalue": embedding["mmd_pvalue"],
            "domainAuc": embedding["domain_auc"],
            "rows": embedding["rows"],
        },
    )
