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
    for path in [
        SPEC_DIR / "OpenLineage.json",
        *sorted((SPEC_DIR / "facets").glob("*.json")),
        *sorted(CUSTOM_DIR.glob("*.json")),
    ]:
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
    for where, facets in (
        ("run", event.get("run", {}).get("facets", {})),
        ("job", event.get("job", {}).get("facets", {})),
    ):
        found += [(where, name, facet) for name, facet in facets.items()]
    for kind in ("inputs", "outputs"):
        for dataset in event.get(kind, []):
            for group in ("facets", "inputFacets", "outputFacets"):
                found += [
                    (f"{kind}:{dataset['name']}:{group}", name, facet) for name, facet in dataset.get(group, {}).items()
                ]
    return found


def schema_for(url: str) -> tuple[dict[str, Any], str]:
    """The copied schema a facet's `_schemaURL` names, and the JSON pointer into it. Fails, never skips, when
    the URL names a schema that is not in the copied spec (official) or not shipped by the provider (custom)."""
    parsed = urlparse(url)
    file_name = Path(parsed.path).name
    if parsed.scheme != "https" or not file_name:
        raise AssertionError(f"_schemaURL {url!r} is not an https URL of a schema file")
    official = parsed.netloc == "openlineage.io"
    if official and file_name not in SCHEMAS:
        raise AssertionError(f"_schemaURL {url!r} names an official schema that is not in the copied spec {SPEC_DIR}")
    if not official and file_name not in CUSTOM:
        raise AssertionError(f"_schemaURL {url!r} names a schema that is neither official nor one of {sorted(CUSTOM)}")
    schema = SCHEMAS[file_name]
    if not official and url.split("#")[0] != schema["$id"]:
        raise AssertionError(f"_schemaURL {url!r} does not match the $id {schema['$id']!r} of the shipped {file_name}")
    return schema, parsed.fragment or ""


def validate_event(event: dict[str, Any]) -> list[str]:
    """Raise on any violation; return the names of the facets checked (every facet is checked against the schema
    its `_schemaURL` names, official or custom; a facet without one, or naming one that is missing, fails)."""
    _validator(CORE["$id"], "/$defs/RunEvent").validate(event)
    checked = []
    for where, name, facet in _facets(event):
        url = facet.get("_schemaURL")
        if not url:
            raise AssertionError(f"facet {name!r} at {where} has no _schemaURL")
        schema, pointer = schema_for(url)
        try:
            _validator(schema["$id"], pointer).validate(facet)
        except jsonschema.ValidationError as exc:
            raise AssertionError(f"facet {name!r} at {where} violates {url}: {exc.message}") from exc
        except Exception as exc:  # an unresolvable pointer: the URL names a definition the schema does not have
            raise AssertionError(
                f"facet {name!r} at {where}: {url!r} cannot be resolved in {schema['$id']}: {exc}"
            ) from exc
        checked.append(name)
    return checked


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
