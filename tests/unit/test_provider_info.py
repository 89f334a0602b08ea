"""The provider's metadata is valid for Airflow and reachable through the entry point."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_llmops.get_provider_info import get_provider_info
from airflow_provider_llmops.settings import SERVE_OPTIONS


def test_provider_info_matches_airflows_schema():
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_is_registered():
    (ep,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_llmops")
    ]
    assert ep.load()()["package-name"] == "airflow-provider-llmops"


def test_every_listed_module_and_class_imports():
    info = get_provider_info()
    for group in ("operators", "hooks"):
        for item in info[group]:
            for module in item["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        link = getattr(importlib.import_module(module), name)
        assert link.name.startswith("MLflow")


def test_operators_with_mlflow_pages_carry_the_extra_links():
    from airflow_provider_llmops.operators.promote import PromoteModelOperator
    from airflow_provider_llmops.operators.train import FineTuneOperator

    assert {link.name for link in FineTuneOperator.operator_extra_links} == {"MLflow run", "MLflow model version"}
    assert {link.name for link in PromoteModelOperator.operator_extra_links} == {"MLflow model version"}


def test_config_section_documents_every_setting_the_code_reads():
    options = get_provider_info()["config"]["llmops"]["options"]
    source = (Path(__file__).parents[2] / "airflow_provider_llmops" / "settings.py").read_text()
    readers = ('_airflow_option("', '_int("', '_json_mapping("', '_json_object("')
    read = {line.split(r)[1].split('"')[0] for line in source.splitlines() for r in readers if r in line}
    assert {"home", "max_row_bytes", "golden_sets", "allowed_uri_prefixes"} <= read
    read |= set(SERVE_OPTIONS)
    assert read == set(options)
    for key, (default, _) in SERVE_OPTIONS.items():
        assert options[key]["default"] == default, key


def test_mlflow_asset_uris_are_checked_and_become_the_lineage_datasets_of_model_versions():
    from urllib.parse import urlsplit

    import pytest

    from airflow_provider_llmops.assets import champion_asset, convert_mlflow_asset_to_openlineage, sanitize_mlflow_uri

    (entry,) = get_provider_info()["asset-uris"]
    assert entry["schemes"] == ["mlflow"]
    for path in (entry["handler"], entry["to_openlineage_converter"]):
        module, _, name = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))
    assert sanitize_mlflow_uri(urlsplit("mlflow://mlflow:5000/models/router")).netloc == "mlflow:5000"
    with pytest.raises(ValueError, match="mlflow://<tracking host>/models/<name>"):
        sanitize_mlflow_uri(urlsplit("mlflow://mlflow:5000/experiments/1"))
    dataset = convert_mlflow_asset_to_openlineage(champion_asset("router", "mlflow:5000"), None)
    assert (dataset.namespace, dataset.name) == ("mlflow://mlflow:5000", "models/router")
