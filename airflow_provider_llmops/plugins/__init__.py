"""Airflow UI plugins of the provider: the LLMOps view (`llmops_view.LLMOpsViewPlugin`), registered through the
provider info (`plugins`), so installing the provider is all it takes."""
