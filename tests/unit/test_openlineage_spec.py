"""The test helper that holds every emitted event to the copied OpenLineage spec must fail, never skip."""

from __future__ import annotations

import copy
import uuid

import jsonschema
import pytest

from tests.openlineage_spec import validate_event

PRODUCER = "https://github.com/airflow-provider-llmops/airflow-provider-llmops"
OFFICIAL = "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet"


def _event(facet_url: str | None, **facet_fields: object) -> dict:
    facet = {"_producer": PRODUCER, **facet_fields}
    if facet_url is not None:
        facet["_schemaURL"] = facet_url
    return {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-27T08:00:00Z",
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4()), "facets": {"nominalTime": facet}},
        "job": {"namespace": "llmops", "name": "dag.task"},
        "inputs": [],
        "outputs": [],
    }


def test_a_valid_official_facet_is_checked():
    assert validate_event(_event(OFFICIAL, nominalStartTime="2026-11-27T08:00:00Z")) == ["nominalTime"]


def test_a_facet_that_violates_its_schema_fails():
    with pytest.raises(AssertionError, match="violates"):
        validate_event(_event(OFFICIAL, nominalStartTime=42))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://openlineage.io/spec/facets/1-0-0/NoSuchFacet.json#/$defs/NoSuchFacet", "not in the copied spec"),
        ("https://example.com/schemas/Whatever.json#/$defs/Whatever", "neither official nor one of"),
        (None, "not valid"),  # the core schema already requires a _schemaURL of every run facet
        ("https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/Missing", "cannot be resolved"),
    ],
)
def test_a_facet_naming_a_schema_outside_the_copy_fails(url, message):
    event = _event(url, nominalStartTime="2026-11-27T08:00:00Z")
    with pytest.raises((AssertionError, jsonschema.ValidationError), match=message):
        validate_event(copy.deepcopy(event))
