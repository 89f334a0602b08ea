"""Validate OpenLineage events against the official schemas copied into tests/spec/openlineage/.

Every event is checked against `OpenLineage.json#/$defs/RunEvent`; every facet whose `_schemaURL` names an
official facet schema is checked against that schema (matched by file name; the version in the URL may be
older or newer than the copy, and the copy is what the project is held to).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).parent / "spec" / "openlineage"
# the provider's own facet schemas, which $ref the official spec
CUSTOM_DIR = Path(__file__).parents[1] / "airflow_provider_llmops" / "lineage" / "schemas"


def _load_all() -> tuple[Registry, dict[str, dict[str, Any]]]:
    resources = []
    by_file: dict[str, dict[str, Any]] = {}
    for path in [SPEC_DIR / "OpenLineage.json", *sorted((SPEC_DIR / "facets").glob("*.json")), *sorted(CUSTOM_DIR.glob("*.json"))]:
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
        by_file[path.name] = schema
    return Registry().with_resources(resources), by_file


REGISTRY, SCHEMAS = _load_all()
CORE = SCHEMAS["OpenLineage.json"]
CUSTOM = {path.name for path in CUSTOM_DIR.glob("*.json")}


def _validator(schema_id: str, pointer: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": f"{schema_id}#{pointer}"}
    return jsonschema.Draft202012Validator(schema, registry=REGISTRY, format_checker=jsonschema.FormatChecker())


def _facets(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for where, facets in (("run", event.get("run", {}).get("facets", {})), ("job", event.get("job", {}).get("facets", {}))):
        found += [(where, name, facet) for name, facet in facets.items()]
    for kind in ("inputs", "outputs"):
        for dataset in event.get(kind, []):
            for group in ("facets", "inputFacets", "outputFacets"):
                found += [(f"{kind}:{dataset['name']}:{group}", name, facet) for name, facet in dataset.get(group, {}).items()]
    return found


def validate_event(event: dict[str, Any]) -> list[str]:
    """Raise on any violation; return the names of the facets checked against an official or custom facet schema."""
    _validator(CORE["$id"], "/$defs/RunEvent").validate(event)
    checked = []
    for where, name, facet in _facets(event):
        url = facet.get("_schemaURL", "")
        parsed = urlparse(url)
        file_name = Path(parsed.path).name
        if file_name not in SCHEMAS or (parsed.netloc != "openlineage.io" and file_name not in CUSTOM):
            continue
        schema = SCHEMAS[file_name]
        pointer = parsed.fragment or ""
        try:
            _validator(schema["$id"], pointer).validate(facet)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"facet {name!r} at {where} violates {file_name}{'#' + pointer if pointer else ''}: {exc.message}") from exc
        checked.append(name)
    return checked


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
