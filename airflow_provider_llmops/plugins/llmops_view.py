"""The Airflow 3 plugin of the LLMOps view: a FastAPI app mounted in the API server under `/llmops`
(`fastapi_apps`) and a top-level navigation entry that renders it inside the Airflow UI (`external_views`,
`url_route` `llmops`: the UI shows it at `/plugin/llmops`).

Registered through the provider info (`plugins: [{name: llmops_view, plugin-class: ...LLMOpsViewPlugin}]`), so
installing the provider is all it takes. This module is imported by every Airflow process that loads plugins
(scheduler, DAG processor, task processes), so it stays light: the app (`plugins/app.py`, which imports the API
server's security module) is built on its first request, in the API server only.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/llmops"


class LazyApp:
    """An ASGI app that builds the view's FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from airflow_provider_llmops.plugins.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class LLMOpsViewPlugin(AirflowPlugin):
    name = "llmops_view"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "LLMOps view"}]
    external_views = [
        {
            "name": "LLMOps",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "llmops",
            "nav_top_level": True,
        }
    ]
