"""Builders for OpenLineage datasets and standard facets. The OpenLineage client is imported lazily."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_llmops.lineage.naming import dataset_name


def schema_facet(columns: Iterable[tuple[str, str]]) -> Any:
    from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields

    return SchemaDatasetFacet(fields=[SchemaDatasetFacetFields(name=name, type=kind) for name, kind in columns])


def input_dataset(uri: str, *, facets: dict[str, Any] | None = None, input_facets: dict[str, Any] | None = None) -> Any:
    from openlineage.client.event_v2 import InputDataset

    namespace, name = dataset_name(uri)
    return InputDataset(namespace=namespace, name=name, facets=facets or {}, inputFacets=input_facets or {})


def output_dataset(
    uri: str, *, facets: dict[str, Any] | None = None, row_count: int | None = None, size: int | None = None
) -> Any:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet

    namespace, name = dataset_name(uri)
    output_facets = {}
    if row_count is not None:
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(rowCount=row_count, size=size)
    return OutputDataset(namespace=namespace, name=name, facets=facets or {}, outputFacets=output_facets)


def input_statistics(row_count: int, size: int | None = None) -> Any:
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet

    return InputStatisticsInputDatasetFacet(rowCount=row_count, size=size)


def data_quality_assertions(results: Iterable[dict[str, Any]]) -> Any:
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )

    return DataQualityAssertionsDatasetFacet(
        assertions=[
            Assertion(
                assertion=r["type"],
                success=bool(r["success"]),
                column=r.get("column"),
                severity="error",
                description=r.get("description"),
            )
            for r in results
        ]
    )


def data_quality_metrics(row_count: int, columns: dict[str, dict[str, Any]]) -> Any:
    from openlineage.client.generated.data_quality_metrics_input_dataset import (
        ColumnMetrics,
        DataQualityMetricsInputDatasetFacet,
    )

    return DataQualityMetricsInputDatasetFacet(
        rowCount=row_count,
        columnMetrics={name: ColumnMetrics(**metrics) for name, metrics in columns.items()},
    )


def model_version_dataset(tracking_uri: str, name: str, version: str, output: bool = False) -> Any:
    """A registered model version as an OpenLineage dataset: namespace `mlflow://<tracking host>`, name
    `models/<name>/versions/<n>`."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    from airflow_provider_llmops.core.model.registry import model_version_dataset as naming

    namespace, dataset = naming(tracking_uri, name, version)
    return (OutputDataset if output else InputDataset)(namespace=namespace, name=dataset)
