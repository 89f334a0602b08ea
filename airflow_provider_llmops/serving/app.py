"""The inference service: a FastAPI app that serves the registry's champion (and canary) of one model.

Routes (OpenAPI at `/docs` and `/openapi.json`):

* `GET /healthz` — the process is up (answers before any model exists); `GET /readyz` — 200 only with a model
  loaded, else 503; both without authentication. `GET /metrics` — Prometheus text (see `serving.metrics`).
* `POST /v1/predict` (scope `predict`) — `{"text": "..."}` or `{"texts": [...]}`: per text the label, the scores,
  and the guardrail decisions; the model version and role (champion, canary, fallback) that answered.
* `POST /v1/generate` (scope `predict`) — `{"prompt": "...", "max_new_tokens": n}` for a causal LM version:
  generated text with the guardrails applied to prompt and output.
* `POST /v1/jobs`, `GET /v1/jobs/{job_id}` (scope `predict`, only with `serve_redis_url`) — queue texts on Redis for
  `llmops serve --worker` processes; a client reads only its own jobs.
* `POST /v1/admin/reload`, `PUT /v1/admin/canary` (scope `admin`) — converge on the registry now; set the canary's
  traffic share (written to the registry, which every replica reads).

Errors never carry a stack trace, a token or a key: 401/403 (with `WWW-Authenticate`) for authentication, 413 for
a body over `serve_max_body_bytes`, 422 for malformed JSON, wrong types or texts over the bounds (the offending input
is not echoed back), 429 with `Retry-After` for a spent quota, 503 with `Retry-After` while the queue is full or no
model is loaded, 500 `{"detail": "internal error", "request_id": ...}` for anything else (logged by type only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_llmops.errors import LLMOpsError
from airflow_provider_llmops.serving.auth import AuthError, Principal, TokenVerifier
from airflow_provider_llmops.serving.batching import Overloaded, RequestTooLarge
from airflow_provider_llmops.serving.config import ServeConfig
from airflow_provider_llmops.serving.guardrails import Guardrails
from airflow_provider_llmops.serving.metrics import ServeMetrics
from airflow_provider_llmops.serving.models import CLASSIFIER, GENERATOR, ModelManager, NoModelLoaded
from airflow_provider_llmops.serving.quotas import QuotaBook, QuotaExceeded, QuotaUnavailable

log = logging.getLogger("airflow_provider_llmops.serving")

ROUTES = {
    "/healthz", "/readyz", "/metrics", "/v1/predict", "/v1/generate", "/v1/jobs", "/v1/jobs/{job_id}",
    "/v1/admin/reload", "/v1/admin/canary", "/docs", "/openapi.json",
}  # fmt: skip


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = Field(None, description="One text to classify.")
    texts: list[StrictStr] | None = Field(None, description="Several texts, answered in order.")


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: StrictStr
    max_new_tokens: StrictInt | None = Field(None, ge=1, description="Bounded by serve_max_new_tokens.")


class CanaryShare(BaseModel):
    model_config = ConfigDict(extra="forbid")
    share: StrictFloat | StrictInt = Field(..., ge=0, le=1, description="Share of traffic for the canary, 0..1.")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr]


class Services:
    """What a request handler needs, built once per app."""

    def __init__(
        self,
        config: ServeConfig,
        manager: ModelManager,
        verifier: TokenVerifier,
        metrics: ServeMetrics,
        guardrails: Guardrails,
        quotas: QuotaBook | None,
        audit: Any,
        jobs: Any,
        registry_writer: Any,
    ) -> None:
        self.config, self.manager, self.verifier, self.metrics = config, manager, verifier, metrics
        self.guardrails, self.quotas, self.audit, self.jobs = guardrails, quotas, audit, jobs
        self.registry_writer = registry_writer


_BEARER = HTTPBearer(auto_error=False, description="A JWT with scope predict (or admin for /v1/admin).")


def _principal_for(scope: str) -> Any:
    """A dependency: the verified principal of the request's bearer token holding `scope` (AuthError otherwise).
    The `credentials` parameter only documents the scheme in OpenAPI; the header is verified as sent. A coroutine:
    verifying is CPU work without I/O (well under a millisecond), and FastAPI would run a plain function in its
    thread pool, a round trip between threads per request that doubled the service's own time on 2 busy cores."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
    ) -> Principal:
        principal = request.app.state.services.verifier.verify(request.headers.get("authorization"), scope)
        request.state.client = principal.subject
        return principal

    return dependency


CanPredict = Annotated[Principal, Depends(_principal_for("predict"))]
CanAdmin = Annotated[Principal, Depends(_principal_for("admin"))]


def _error(status: int, detail: str, request: Request | None = None, **headers: str) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if request is not None and getattr(request.state, "request_id", None):
        body["request_id"] = request.state.request_id
    return JSONResponse(body, status_code=status, headers={k.replace("_", "-"): v for k, v in headers.items()})


class Guard:
    """Outermost ASGI layer: request id, body size limit (413, before the body is read into memory), one metrics
    sample per request (route, status, version, role, latency), and a last-resort 500 that hides the exception."""

    def __init__(self, app: Any, metrics: ServeMetrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        state["request_id"] = uuid.uuid4().hex
        status = {"code": 500, "started": False}
        path = scope.get("path", "")
        route = path if path in ROUTES else ("/v1/jobs/{job_id}" if path.startswith("/v1/jobs/") else "other")

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message.setdefault("headers", []).append((b"x-request-id", state["request_id"].encode()))
            await send(message)

        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = False
        if declared is not None:
            try:
                too_large = int(declared) > self.max_body_bytes
            except ValueError:
                too_large = True
        received = 0

        async def receive_limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            if too_large:
                raise _BodyTooLarge
            await self.app(scope, receive_limited, send_wrapper)
        except _BodyTooLarge:
            self.metrics.rejections.labels(reason="too_large").inc()
            if not status["started"]:
                await _error(413, f"request body over {self.max_body_bytes} bytes")(scope, receive, send_wrapper)
        except Exception as exc:  # anything a handler did not turn into a response: no trace to the client
            log.error("request %s failed: %s", state["request_id"], type(exc).__name__)
            if not status["started"]:
                response = JSONResponse({"detail": "internal error", "request_id": state["request_id"]}, 500)
                await response(scope, receive, send_wrapper)
        finally:
            version, role = state.get("model_version", "none"), state.get("role", "none")
            code = str(status["code"])
            self.metrics.requests.labels(route=route, status=code, model_version=version, role=role).inc()
            self.metrics.latency.labels(route=route, model_version=version, role=role).observe(
                time.perf_counter() - start
            )


class _BodyTooLarge(Exception):
    pass


def create_app(services: Services) -> FastAPI:
    """The FastAPI app over `services` (see `build_services` for the configured ones)."""
    config, manager, metrics = services.config, services.manager, services.metrics

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services.audit is not None:
            services.audit.start()
        await manager.start()
        try:
            yield
        finally:
            await manager.aclose()
            if services.audit is not None:
                await asyncio.to_thread(services.audit.close)

    app = FastAPI(
        title="llmops inference service",
        description="Serves the registry's champion and canary of one model; see the provider's README.",
        version="1",
        lifespan=lifespan,
    )
    app.state.services = services

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> JSONResponse:
        metrics.rejections.labels(reason="forbidden" if exc.status == 403 else "unauthorized").inc()
        return _error(exc.status, str(exc), request, WWW_Authenticate=exc.www_authenticate)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body FastAPI could not even decode (not UTF-8 JSON): the same 422 as bad JSON
            metrics.rejections.labels(reason="invalid").inc()
            return _error(422, "the request body is not valid JSON (UTF-8)", request)
        return _error(
            exc.status_code,
            str(exc.detail),
            request,
            **{k.replace("-", "_"): v for k, v in (exc.headers or {}).items()},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejections.labels(reason="invalid").inc()
        # the offending input is not echoed back (it may hold personal data)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors[:20], "request_id": request.state.request_id}, status_code=422)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        metrics.rejections.labels(reason="overloaded").inc()
        retry = str(max(1, math.ceil(exc.retry_after_s)))
        return _error(503, "the model's queue is full; retry later", request, Retry_After=retry)

    @app.exception_handler(QuotaExceeded)
    async def _quota(request: Request, exc: QuotaExceeded) -> JSONResponse:
        metrics.rejections.labels(reason="quota").inc()
        metrics.quota.labels(limit=exc.limit).inc()
        return _error(429, str(exc), request, Retry_After=str(int(exc.retry_after_s)))

    @app.exception_handler(QuotaUnavailable)
    async def _quota_down(request: Request, exc: QuotaUnavailable) -> JSONResponse:
        metrics.rejections.labels(reason="quota_unavailable").inc()
        return _error(503, "quota accounting is unavailable; retry later", request, Retry_After="5")

    @app.exception_handler(NoModelLoaded)
    async def _no_model(request: Request, exc: NoModelLoaded) -> JSONResponse:
        metrics.rejections.labels(reason="no_model").inc()
        return _error(503, str(exc), request, Retry_After=str(max(1, math.ceil(config.poll_interval_s))))

    @app.exception_handler(RequestTooLarge)
    async def _too_many(request: Request, exc: RequestTooLarge) -> JSONResponse:
        metrics.rejections.labels(reason="invalid").inc()
        return _error(422, str(exc), request)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> JSONResponse:
        state = manager.state()
        return JSONResponse({"ready": manager.ready, **state}, status_code=200 if manager.ready else 503)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        for served in list(manager.served.values()):
            if served.batcher is not None:
                metrics.queue_depth.labels(model_version=served.version).set(served.batcher.queue_depth)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def _charge(client: str, texts: list[str]) -> None:
        quotas = services.quotas
        if quotas is not None and quotas.enabled:
            chars = sum(len(t) for t in texts)
            if config.redis_url:  # a network round trip: off the event loop
                await asyncio.to_thread(quotas.charge, client, 1, chars)
            else:
                quotas.charge(client, 1, chars)

    def _check_texts(texts: list[str], what: str = "text") -> None:
        if not texts:
            raise _Unprocessable(f"give a non-empty {what} or texts")
        if len(texts) > config.max_texts:
            raise _Unprocessable(f"at most {config.max_texts} texts per request, got {len(texts)}")
        for i, text in enumerate(texts):
            if not text.strip():
                raise _Unprocessable(f"{what} {i} is empty")
            if len(text) > config.max_text_chars:
                raise _Unprocessable(f"{what} {i} has {len(text)} characters; the limit is {config.max_text_chars}")

    @app.exception_handler(_Unprocessable)
    async def _unprocessable(request: Request, exc: _Unprocessable) -> JSONResponse:
        metrics.rejections.labels(reason="invalid").inc()
        return _error(422, str(exc), request)

    def _count_decisions(decisions: list[Any]) -> None:
        for decision in decisions:
            metrics.guardrails.labels(rule=decision.rule, action=decision.action).inc()

    @app.post("/v1/predict", tags=["inference"])
    async def predict(request: Request, body: PredictRequest, principal: CanPredict) -> dict[str, Any]:
        if (body.text is None) == (body.texts is None):
            raise _Unprocessable("give exactly one of text or texts")
        texts = [body.text] if body.text is not None else list(body.texts or [])
        _check_texts(texts)
        await _charge(principal.subject, texts)
        started = time.perf_counter()
        request_id = request.state.request_id
        served, fallback = manager.route(request_id)
        request.state.model_version, request.state.role = served.version, served.role
        if served.kind != CLASSIFIER:
            raise _Unprocessable(f"version {served.version} is a text generator: use /v1/generate")
        inputs = [services.guardrails.check_input(text) for text in texts]
        for result in inputs:
            _count_decisions(result.decisions)
        allowed = [i for i, result in enumerate(inputs) if not result.blocked]
        answers = await manager.classify(served, [inputs[i].text for i in allowed]) if allowed else []
        by_index = dict(zip(allowed, answers, strict=True))
        predictions = []
        for i, result in enumerate(inputs):
            if result.blocked:
                predictions.append({"label": None, "scores": None, "blocked": True, "route_to_human": False,
                                    "guardrails": {"input": result.to_dict(), "output": None}})  # fmt: skip
                continue
            answer = by_index[i]
            output = services.guardrails.check_output_label(
                answer["label"], max(answer["scores"].values()), text=result.text, request_id=request_id,
                client=principal.subject,
            )  # fmt: skip
            _count_decisions(output.decisions)
            predictions.append({
                "label": answer["label"], "scores": answer["scores"], "blocked": False,
                "route_to_human": output.route_to_human,
                "guardrails": {"input": result.to_dict(), "output": output.to_dict()},
            })  # fmt: skip
        target = manager.mirror_target(served)
        if target is not None and allowed:
            manager.mirror(target, [inputs[i].text for i in allowed], [a["label"] for a in answers])
        latency_ms = (time.perf_counter() - started) * 1000
        _audit(request, principal, "/v1/predict", served, texts, latency_ms, predictions)
        return {
            "request_id": request_id,
            "model": config.model_name,
            "model_version": served.version,
            "role": served.role,
            "backend": served.backend,
            "fallback": fallback,
            "latency_ms": round(latency_ms, 3),
            "predictions": predictions,
        }

    @app.post("/v1/generate", tags=["inference"])
    async def generate(request: Request, body: GenerateRequest, principal: CanPredict) -> dict[str, Any]:
        _check_texts([body.prompt], "prompt")
        max_new = min(body.max_new_tokens or config.max_new_tokens, config.max_new_tokens)
        await _charge(principal.subject, [body.prompt])
        started = time.perf_counter()
        served, fallback = manager.route(request.state.request_id)
        request.state.model_version, request.state.role = served.version, served.role
        if served.kind != GENERATOR:
            raise _Unprocessable(f"version {served.version} is a classifier: use /v1/predict")
        checked = services.guardrails.check_input(body.prompt)
        _count_decisions(checked.decisions)
        text, output = None, None
        if not checked.blocked:
            raw = await manager.generate(served, checked.text, max_new)
            result = services.guardrails.check_output_text(raw)
            _count_decisions(result.decisions)
            text, output = (None if result.blocked else result.text), result.to_dict()
        latency_ms = (time.perf_counter() - started) * 1000
        _audit(request, principal, "/v1/generate", served, [body.prompt], latency_ms, [{"blocked": checked.blocked}])
        return {
            "request_id": request.state.request_id,
            "model": config.model_name,
            "model_version": served.version,
            "role": served.role,
            "backend": served.backend,
            "fallback": fallback,
            "latency_ms": round(latency_ms, 3),
            "text": text,
            "max_new_tokens": max_new,
            "blocked": checked.blocked or bool(output and output["blocked"]),
            "guardrails": {"input": checked.to_dict(), "output": output},
        }

    def _audit(
        request: Request, principal: Principal, route: str, served: Any, texts: list[str], latency_ms: float,
        outcomes: list[dict[str, Any]],
    ) -> None:  # fmt: skip
        if services.audit is None:
            return
        services.audit.record(
            {
                "request_id": request.state.request_id,
                "client": principal.subject,
                "route": route,
                "model": config.model_name,
                "model_version": served.version,
                "role": served.role,
                "backend": served.backend,
                "latency_ms": round(latency_ms, 3),
                "labels": [o.get("label") for o in outcomes],
                "blocked": [bool(o.get("blocked")) for o in outcomes],
                "route_to_human": [bool(o.get("route_to_human")) for o in outcomes],
                "guardrails": [o.get("guardrails") for o in outcomes],
            },
            texts,
        )

    @app.post("/v1/admin/reload", tags=["admin"])
    async def reload(principal: CanAdmin) -> dict[str, Any]:
        try:
            return await manager.sync(wait=True)
        except LLMOpsError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)  # type: ignore[return-value]
        except Exception as exc:
            log.warning("reload: registry unreachable: %s", type(exc).__name__)
            return JSONResponse({"detail": "the registry is unreachable; serving what is loaded"}, 503)  # type: ignore[return-value]

    @app.put("/v1/admin/canary", tags=["admin"])
    async def canary_share(body: CanaryShare, principal: CanAdmin) -> dict[str, Any]:
        if services.registry_writer is None:
            raise _Unprocessable("this service has no registry to write the canary share to")
        await asyncio.to_thread(services.registry_writer, float(body.share))
        log.info("canary share set to %s by %s", body.share, principal.subject)
        return await manager.sync(wait=True)

    if services.jobs is not None:
        from airflow_provider_llmops.serving.jobs import InvalidJobRequest, JobQueueUnavailable

        @app.exception_handler(InvalidJobRequest)
        async def _bad_job(request: Request, exc: InvalidJobRequest) -> JSONResponse:
            metrics.rejections.labels(reason="invalid").inc()
            return _error(422, str(exc), request)

        @app.exception_handler(JobQueueUnavailable)
        async def _queue_down(request: Request, exc: JobQueueUnavailable) -> JSONResponse:
            return _error(503, "the job queue is unavailable; retry later", request, Retry_After="5")

        @app.post("/v1/jobs", tags=["jobs"], status_code=202)
        async def submit_job(body: JobRequest, principal: CanPredict) -> dict[str, Any]:
            _check_texts(list(body.texts))
            await _charge(principal.subject, list(body.texts))
            job_id = await asyncio.to_thread(services.jobs.enqueue, list(body.texts), principal.subject)
            metrics.jobs.labels(outcome="queued").inc()
            return {"job_id": job_id, "status": "queued"}

        @app.get("/v1/jobs/{job_id}", tags=["jobs"])
        async def read_job(job_id: str, principal: CanPredict) -> dict[str, Any]:
            from airflow_provider_llmops.serving.jobs import validate_job_id

            try:
                validate_job_id(job_id)
            except InvalidJobRequest:
                return _error(404, "no such job")  # type: ignore[return-value]
            job = await asyncio.to_thread(services.jobs.get, job_id, principal.subject)
            if job is None:
                return _error(404, "no such job")  # type: ignore[return-value]
            return job

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip
    app.add_middleware(Guard, metrics=metrics, max_body_bytes=config.max_body_bytes)
    return app


class _Unprocessable(LLMOpsError):
    """A well-formed request the service cannot process (422)."""
