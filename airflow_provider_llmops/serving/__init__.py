"""The inference service: FastAPI on uvicorn, serving the registry's `champion` (and `canary`) versions."""
