"""`llmops`: run the embedded default, open the UI, install DAG files, and run stages from a shell.

llmops demo [--source URI] [--dataset NAME]   set up the embedded Airflow and run the whole loop on the samples
llmops mlflow [--port 5000]                   the MLflow UI on the embedded default's store
llmops ui [--port 8080]                       the Airflow UI, scheduler, DAG processor and triggerer on the embedded
                                              default, on 127.0.0.1, stopped together by Ctrl-C or SIGTERM
llmops env                                    shell exports of the embedded default: eval "$(llmops env)"
llmops dags install DIR                       copy the provider's DAG files into a DAGs folder
llmops drift --reference FILE|DIR --current FILE [--format json|html] [--out FILE] [--no-embeddings]
                                              score two files (or a saved profile) for drift without Airflow
                                              (exit 0 no drift, 1 drift, 2 bad input)
llmops audit verify [--path PATH] [--conn-id ID] [--no-anchors]
                                              check the audit trail's chain, HMACs and registry anchors
                                              (exit 0 ok, 1 broken, 2 missing or cannot verify)
llmops audit show [--path PATH] [--last N]    print the last N audit records
llmops ingest SOURCE --dataset NAME [--format F] [--column-map JSON] [--conn-id ID]
                                              ingest a batch into a snapshot as the ingest operator does, with the
                                              same [llmops] settings and allow-lists (exit 0 committed, 1 every row
                                              rejected, 2 source unusable or refused)
llmops validate --dataset NAME [--snapshot ID] [--suite NAME]
                                              validate a snapshot (default: the newest) with a suite found by name
                                              (default: the dataset's configured suite); writes validation.json
                                              beside it (exit 0 passed, 1 failed, 2 bad input)
llmops suite init --from FILE_OR_SNAPSHOT [--name NAME] [--out PATH] [--force]
                                              profile a reference batch (file, or [DATASET/]SNAPSHOT_ID) into a
                                              starter suite <home>/expectations/NAME.json, usable by name
llmops serve [--host H] [--port P] [--backend torch|onnx] [--worker]
                                              the inference service (FastAPI on uvicorn) for the registry's
                                              champion and canary of [llmops] model_name; --worker drains
                                              /v1/jobs from Redis instead
llmops token --sub NAME [--scope predict|admin ...] [--ttl SECONDS]
                                              mint a bearer token for llmops serve with the local key (or the
                                              configured HS secret)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from airflow_provider_llmops import embedded


def _home(args: argparse.Namespace) -> Path:
    """The embedded default's home (demo, ui, env, mlflow create it): --home, else $LLMOPS_HOME or ./.llmops."""
    return Path(args.home).expanduser().resolve() if args.home else embedded.default_home()


def _state_home(args: argparse.Namespace) -> Path:
    """The home the operators write to (audit trail, store): --home, else the same resolution as the operators."""
    from airflow_provider_llmops.settings import llmops_home

    return Path(args.home).expanduser().resolve() if args.home else llmops_home()


def cmd_env(args: argparse.Namespace) -> int:
    for key, value in embedded.embedded_env(_home(args), args.port).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def cmd_dags_install(args: argparse.Namespace) -> int:
    for path in embedded.install_dag_files(Path(args.directory)):
        print(path)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from airflow_provider_llmops import embedded_ui

    home = _home(args)
    env = embedded.embedded_env(home, args.port)
    embedded.prepare(home, env)
    print(
        f"Airflow UI on http://127.0.0.1:{args.port} (AIRFLOW_HOME={env['AIRFLOW_HOME']}); Ctrl-C stops it.", flush=True
    )
    return embedded_ui.run(env, args.port)


def _command_path(name: str) -> str:
    """How to call one of this environment's console scripts (a full path unless it is on PATH)."""
    candidate = Path(sys.executable).with_name(name)
    on_path = shutil.which(name)
    return name if on_path and Path(on_path).resolve() == candidate.resolve() else str(candidate)


def _run_dag(dag_id: str, dags_folder: Path, conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    run = dag.test(run_conf=conf)
    results = {
        ti.task_id: {"state": str(getattr(ti.state, "value", ti.state)), "xcom": ti.xcom_pull(task_ids=ti.task_id)}
        for ti in run.get_task_instances()
    }
    return str(getattr(run.state, "value", run.state)), results


def _print_ingest(results: dict[str, Any]) -> None:
    ingest = results.get("ingest", {}).get("xcom") or {}
    validate = results.get("validate", {}).get("xcom") or {}
    if ingest:
        print(f"  snapshot    {ingest['snapshot_uri']}  ({'new' if ingest['created'] else 'already existed'})")
        print(
            f"  rows        {ingest['rows_read']} read, {ingest['accepted']} accepted, "
            f"{ingest['quarantined']} quarantined {ingest['quarantine_reasons'] or ''}"
        )
        print(f"  quarantine  {ingest['quarantine_uri']}")
    if validate:
        print(f"  validation  {validate['status']}: {validate['successful']}/{validate['evaluated']} expectations met")
        print(f"  report      {validate['report_uri']}")
        for line in validate.get("failed", []):
            print(f"  failed      {line}")


def _print_drift(results: dict[str, Any]) -> None:
    drift = results.get("score_drift", {}).get("xcom") or {}
    if not drift:
        return
    top = ", ".join(f"{f['feature']} psi={f['psi']:.3f}" for f in drift["top_features"][:3])
    print(f"  verdict     {drift['verdict'].upper()}  drifting: {', '.join(drift['drifting_features']) or 'none'}")
    print(f"  top         {top}")
    if drift.get("embedding"):
        e = drift["embedding"]
        print(
            f"  embedding   {'drift' if e['drift'] else 'no drift'}: "
            f"centroid distance {e['centroid_cosine_distance']:.3f}, MMD p={e['mmd_pvalue']:.3f}, "
            f"domain AUC {e['domain_auc']:.3f}"
        )
    branch = "request_retrain" if results.get("request_retrain", {}).get("state") == "success" else "no_drift"
    print(f"  branch      {branch}")
    print(f"  report      {drift['html_uri']}")


def _print_retrain(results: dict[str, Any], names: dict[str, str]) -> None:
    decision = results.get("should_retrain", {}).get("state")
    if results.get("fine_tune", {}).get("state") != "success":
        print(
            f"  decision    no retraining (should_retrain: {decision}; its reason is printed above and in its task log)"
        )
        return
    trained = results["fine_tune"]["xcom"] or {}
    training = trained.get("training") or {}
    print(
        f"  trained     {trained['model_name']} v{trained['version']} on {len(trained['snapshots'])} snapshot(s): "
        f"{training.get('samples')} samples, {training.get('samples_per_second', 0):.1f} samples/s, "
        f"stopped by {training.get('stopped_by')}"
    )
    evaluation = results.get("evaluate", {}).get("xcom") or {}
    promote = results.get("promote", {}).get("xcom") or {}
    if evaluation:
        champion = evaluation.get("champion") or {}
        challenger = evaluation["challenger"]
        against = (
            f" vs champion v{evaluation['champion_version']}"
            if evaluation.get("champion_version")
            else " (no champion yet)"
        )
        print(
            f"  evaluated   on {evaluation['eval_set']['rows']} rows ("
            f"{', '.join(f'{_part_name(k, names)}={v}' for k, v in evaluation['eval_set']['parts'].items())}"
            f"){against}"
        )
        for metric in ("macro_f1", "accuracy", "ece", "fairness_gap", "latency_p95_ms"):
            old = champion.get(metric)
            print(
                f"    {metric:<16} {_fmt(challenger.get(metric))}"
                + (f"   (champion {_fmt(old)})" if evaluation.get("champion_version") else "")
            )
        for key, value in challenger.items():
            if key.endswith(".macro_f1") and key.startswith("heldout:"):
                part = key[: -len(".macro_f1")]
                old = champion.get(key)
                print(
                    f"    macro_f1 on {_part_name(part, names):<24} {_fmt(value)}"
                    + (f"   (champion {_fmt(old)})" if evaluation.get("champion_version") else "")
                )
    if promote and promote.get("candidate"):
        print(
            f"  gate        PASSED: v{promote['candidate']} is the candidate for deployment "
            f"(champion stays v{promote['champion']} until its canary passes)"
        )
    elif promote:
        verdict = "PROMOTED" if promote["promoted"] else "REJECTED"
        print(
            f"  gate        {verdict}: champion is now v{promote['champion']}"
            + (
                f", previous-champion v{promote['champion_before']}"
                if promote.get("champion_before") and promote["promoted"]
                else ""
            )
        )
        for reason in promote.get("reasons", []):
            print(f"    reason    {reason}")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _part_name(part: str, names: dict[str, str]) -> str:
    snapshot = part.rsplit("/", 1)[-1]
    return names.get(snapshot, part)


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole loop on the sample data: reference -> first model; same-distribution batch -> no drift, no
    retraining; drifted batch -> drift -> retrain -> evaluate against the champion -> promote."""

    home = _home(args)
    env = embedded.embedded_env(home)
    if not args.verbose:
        env.update(
            {
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                "TRANSFORMERS_VERBOSITY": "error",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
                "MLFLOW_LOGGING_LEVEL": "WARNING",
            }
        )
    serving = not (args.no_train or args.no_drift or args.no_serve)
    if serving:
        port = _free_port(args.serve_port)
        env.update(demo_serve_env(port))
    embedded.apply(env)
    print(
        f"[llmops] embedded Airflow under {env['AIRFLOW_HOME']} (SQLite, LocalExecutor); migrating the metadata DB ...",
        flush=True,
    )
    embedded.prepare(home, env)
    service = _start_service(home, env) if serving else None
    try:
        return _demo_loop(args, home, service)
    finally:
        if service is not None:
            _stop_service(service)


def _demo_loop(args: argparse.Namespace, home: Path, service: Any) -> int:
    from airflow_provider_llmops.resources import sample_data_dir

    samples = sample_data_dir()
    sources = (
        [args.source]
        if args.source
        else [
            str(samples / f)
            for f in ("tickets_reference.jsonl", "tickets_batch_same.jsonl", "tickets_batch_drift.jsonl")
        ]
    )
    failures = 0
    names: dict[str, str] = {}
    retrain_conf: dict[str, Any] = {"dataset": args.dataset, "model_name": args.model_name}
    if args.max_train_minutes:
        retrain_conf["max_train_minutes"] = args.max_train_minutes
    last_drift: dict[str, Any] = {}
    for index, source in enumerate(sources):
        name = Path(source).name
        conf = {"dataset": args.dataset, "source_uri": source}
        print(f"[llmops] llmops_ingest_validate on {name} ...", flush=True)
        state, results = _run_dag("llmops_ingest_validate", home / "dags", conf)
        print(f"llmops_ingest_validate ({name}): {state}")
        _print_ingest(results)
        failures += state != "success"
        validate = results.get("validate", {}).get("xcom") or {}
        if validate.get("status") != "passed" or args.no_drift:
            continue
        names[validate["snapshot_id"][:12]] = name
        if index > 0 or len(sources) == 1:
            print(f"[llmops] llmops_drift on {name} ...", flush=True)
            state, results = _run_dag(
                "llmops_drift", home / "dags", {"dataset": args.dataset, "snapshot_id": validate["snapshot_id"]}
            )
            print(f"llmops_drift ({name}): {state}")
            _print_drift(results)
            failures += state != "success"
            last_drift = results.get("score_drift", {}).get("xcom") or last_drift
        if args.no_train:
            continue
        print(f"[llmops] llmops_retrain after {name} (training on CPU takes minutes) ...", flush=True)
        state, results = _run_dag("llmops_retrain", home / "dags", retrain_conf)
        print(f"llmops_retrain (after {name}): {state}")
        _print_retrain(results, names)
        failures += state != "success"
        candidate = (results.get("promote", {}).get("xcom") or {}).get("candidate")
        if candidate and service is not None:
            failures += _demo_deploy(home, service, candidate, samples / "tickets_batch_drift.jsonl")
    if not args.no_train and not args.no_drift:
        _print_champion(args.model_name, last_drift)
        failures += _demo_sanity(home)
    print(f"lineage       {embedded.lineage_file(home)} (OpenLineage events, one JSON per line)")
    print(f"audit         {home / 'audit' / 'audit.jsonl'} (verify: {_command_path('llmops')} audit verify)")
    print(f"metrics       {home / 'metrics'} (Prometheus textfiles; set [llmops] pushgateway_url to push)")
    print(f"MLflow        {home / 'mlflow'} (UI: {_command_path('llmops')} mlflow, then http://127.0.0.1:5000)")
    if service is not None:
        print(
            f"service       {service['url']} served the demo (stopped now; run it: {_command_path('llmops')} serve, "
            f"token: {_command_path('llmops')} token --sub me); inference audit {home / 'serving'}"
        )
    print(f"UI            {_command_path('llmops')} ui   (then http://127.0.0.1:8080)")
    print("LLMOps view   http://127.0.0.1:8080/plugin/llmops (in the Airflow UI's navigation: LLMOps)")
    return 0 if failures == 0 else 1


def _run_built_dag(dag: Any, conf: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    run = dag.test(run_conf=conf)
    results = {}
    for ti in run.get_task_instances():
        results[ti.task_id] = {
            "state": str(getattr(ti.state, "value", ti.state)),
            "xcom": ti.xcom_pull(task_ids=ti.task_id),
            "sanity": ti.xcom_pull(task_ids=ti.task_id, key="sanity_result"),
        }
    return str(getattr(run.state, "value", run.state)), results


def _demo_sanity(home: Path) -> int:
    """The nightly sanity checks on the demo's state (while its service still runs). The DAG is built here with no
    deadline alert: `dag.test()` of Airflow 3.3 cannot finish a run of a DAG that has one."""
    from airflow_provider_llmops.dags.sanity import build_sanity_dag

    print("[llmops] llmops_nightly_sanity on the demo's state ...", flush=True)
    state, results = _run_built_dag(build_sanity_dag(deadline_minutes=None), {})
    print(f"llmops_nightly_sanity: {state}")
    for task_id, result in results.items():
        checked = result.get("sanity") or {}
        if checked:
            print(f"  {task_id:<11} {'ok  ' if checked.get('ok') else 'FAIL'} {checked.get('message', '')}")
    report = (results.get("report", {}).get("xcom") or {}).get("html")
    if report:
        print(f"  report      {report}")
    return int(state != "success")


# The demo's canary policy: short windows and few requests, so the rollout takes seconds on the embedded default
# (a production DAG keeps the defaults: 60 s windows, 50 requests). Disagreement is bounded loosely because the
# demo's candidate is trained on the drifted traffic it is judged on, where it is meant to differ from the old champion.
DEMO_POLICY = {
    "step_weights": [0.1, 0.5, 1.0],
    "analysis_interval_s": 3,
    "min_requests": 8,
    "max_error_rate": 0.01,
    "max_p95_latency_ms": 2000,
    "max_disagreement": 0.35,
    "failure_threshold": 2,
    "progress_deadline_s": 120,
}


def demo_serve_env(port: int) -> dict[str, str]:
    """Settings the demo adds to the embedded default when it runs the inference service."""
    return {
        "AIRFLOW__LLMOPS__SERVE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__LLMOPS__SERVE_PORT": str(port),
        "AIRFLOW__LLMOPS__SERVE_POLL_INTERVAL": "1",
        "AIRFLOW__LLMOPS__DEPLOY_POLICY": json.dumps(DEMO_POLICY),
    }


def _free_port(preferred: int) -> int:
    import socket

    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SystemExit("no free port on 127.0.0.1")


def _start_service(home: Path, env: dict[str, str]) -> dict[str, Any]:
    """`llmops serve` in its own process group, logging to <home>/serving/serve.log; waits for /healthz."""
    import subprocess
    import time

    import httpx

    log_path = home / "serving" / "serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    url = env["AIRFLOW__LLMOPS__SERVE_URL"]
    print(f"[llmops] starting the inference service at {url} (log {log_path}) ...", flush=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_llmops.cli", "serve"], env={**os.environ, **env},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llmops serve exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return {"process": process, "url": url, "home": home}
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    _stop_service({"process": process})
    raise SystemExit(f"llmops serve did not answer within 120 s; see {log_path}")


def _die_with_parent() -> None:
    """In the service's child process (Linux): SIGTERM when the demo dies, however it dies (no orphaned server)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop_service(service: dict[str, Any]) -> None:
    import signal
    import subprocess

    process = service["process"]
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _demo_deploy(home: Path, service: dict[str, Any], candidate: str, traffic_file: Path) -> int:
    """Run llmops_deploy for the candidate while a thread sends the service tickets (bounded in count and time);
    print the steps, checks and decision. Returns 1 when the deploy run failed."""
    import threading
    import time

    import httpx

    from airflow_provider_llmops.serving.auth import local_auth_config, mint_token

    url = service["url"]
    texts = [json.loads(line)["text"] for line in traffic_file.read_text().splitlines()[:400]]
    headers = {"Authorization": f"Bearer {mint_token(local_auth_config(home), 'llmops-demo', ['predict'], ttl_s=900)}"}
    stop = threading.Event()
    counts: dict[str, int] = {}

    def traffic() -> None:
        started = time.monotonic()
        with httpx.Client(timeout=10) as client:
            for i in range(20_000):
                if stop.is_set() or time.monotonic() - started > 600:
                    return
                try:
                    r = client.post(f"{url}/v1/predict", json={"text": texts[i % len(texts)]}, headers=headers)
                    key = (
                        f"{r.status_code} v{r.json().get('model_version')}"
                        if r.status_code == 200
                        else str(r.status_code)
                    )
                except (httpx.HTTPError, ValueError):
                    key = "error"
                counts[key] = counts.get(key, 0) + 1
                time.sleep(0.02)

    waited = time.monotonic()
    while time.monotonic() - waited < 120:  # the service loads the champion on its next registry poll
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    print(f"[llmops] llmops_deploy: canary v{candidate} behind {url}, with demo traffic (tickets) ...", flush=True)
    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        state, results = _run_dag("llmops_deploy", home / "dags", {})
    finally:
        stop.set()
        thread.join(15)
    print(f"llmops_deploy (v{candidate}): {state}")
    deploy = results.get("deploy", {}).get("xcom") or {}
    _print_deploy(deploy, candidate, state)
    print(
        f"  traffic     {sum(counts.values())} requests: " + ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))
    )
    return int(state != "success")


def _print_deploy(deploy: dict[str, Any], candidate: str, state: str) -> None:
    for step in deploy.get("steps") or []:
        share = float(step.get("share") or 0)
        checks = ", ".join(
            f"{c.get('name')} {'ok' if c.get('passed') else 'FAIL'}"
            + (f" ({c.get('detail')})" if c.get("detail") else "")
            for c in step.get("checks") or []
        )
        print(f"  step        {share:.0%}: {step.get('status')}  {checks}")
    if deploy.get("decision") == "promoted":
        print(f"  canary      PASSED: champion is now v{deploy.get('version')}, previous-champion "
              f"v{deploy.get('champion_before')}")  # fmt: skip
    else:
        print(f"  canary      ROLLED BACK: v{candidate} stays out of service ({state}); see the deploy task's log")


def _champion_metrics(tags: dict[str, str]) -> str:
    """The overall `llmops.eval.*` tags of a version for one line: numbers to 4 decimals, anything else (a flag
    such as `fairness_measured`, an unmeasured `None`) as it is."""
    from airflow_provider_llmops.core.model.contract import TAG_EVAL_PREFIX

    prefix = TAG_EVAL_PREFIX
    metrics = {k[len(prefix) :]: v for k, v in tags.items() if k.startswith(prefix) and "." not in k[len(prefix) :]}

    def show(value: str) -> str:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return f"{number:.4f}"

    return ", ".join(f"{k} {show(v)}" for k, v in sorted(metrics.items()))


def _print_champion(model_name: str, drift: dict[str, Any]) -> None:
    from airflow_provider_llmops.operators._common import open_registry

    registry = open_registry()
    aliases = registry.aliases(model_name)
    if not aliases.get("champion"):
        print(f"champion      {model_name}: none")
        return
    version = registry.get_version(model_name, aliases["champion"])
    shown = _champion_metrics(version.tags)
    print(
        f"champion      {model_name} v{version.version} ({shown})"
        + (f"; previous-champion v{aliases['previous-champion']}" if aliases.get("previous-champion") else "")
    )
    if drift:
        print(
            f"drift         last batch: {drift['verdict'].upper()} "
            f"({', '.join(drift['drifting_features']) or 'no drifting features'})"
        )


def cmd_mlflow(args: argparse.Namespace) -> int:
    """The MLflow UI on the embedded default's SQLite store (127.0.0.1 only)."""
    home = _home(args)
    root = home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow),
        "ui",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(args.port),
    ]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (store {root}); Ctrl-C stops it.", flush=True)
    os.execv(command[0], command)
    return 0  # not reached


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit 0: no drift; 1: drift; 2: bad input (the message says what and where)."""
    from airflow_provider_llmops.core.data.batches import iter_chunks
    from airflow_provider_llmops.core.drift import statistics as D
    from airflow_provider_llmops.core.drift.profile import ReferenceProfile, ScoreOptions, build_profile, score
    from airflow_provider_llmops.core.report_html import render
    from airflow_provider_llmops.errors import LLMOpsError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    try:
        for path in (args.reference, args.current):
            if not Path(path).exists():
                raise LLMOpsError(f"{path}: does not exist")
        reference = Path(args.reference)
        if reference.is_dir():
            profile = ReferenceProfile.load(reference)
        else:
            profile = build_profile(
                lambda: iter_chunks(str(reference), args.reference_format),
                text_column=args.text_column,
                label_column=args.label_column or None,
                embedding_sample=0 if args.no_embeddings else args.embedding_sample,
                model_dir=args.model_dir,
            )
        if args.save_profile:
            profile.save(args.save_profile)
        options = ScoreOptions(
            rules=D.DriftRules(statistic=args.statistic, mode=args.mode),
            embeddings=not args.no_embeddings,
            embedding_sample=args.embedding_sample,
        )
        report = score(profile, iter_chunks(args.current, args.current_format), options)
    except (LLMOpsError, ValueError, OSError) as exc:
        print(f"llmops drift: bad input: {exc}", file=sys.stderr)
        return 2
    report["current"] = str(args.current)
    text = (
        render(report, f"Drift of {Path(args.current).name}")
        if args.format == "html"
        else json.dumps(report, indent=1, allow_nan=False)
    )
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    print(
        f"llmops drift: {report['verdict']} ({', '.join(report['drifting_features']) or 'no drifting feature'})",
        file=sys.stderr,
    )
    return 1 if report["drift"] else 0


UNKEYED_MODE = (
    "UNKEYED hash chain (embedded default): proves order and integrity against accidents, not against someone who "
    "can write the file"
)


def _audit_registry(settings: Any, home: Path) -> tuple[Any, str]:
    """(registry or None, where) to read the anchors from: the operators' registry (`[llmops] mlflow_conn_id`, else
    `mlflow_tracking_uri`, else the embedded SQLite store under <home>/mlflow; None when that does not exist)."""
    from airflow_provider_llmops.core.model.registry import MlflowConfig, ModelRegistry

    if settings.mlflow_conn_id:
        from airflow_provider_llmops.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=settings.mlflow_conn_id).get_conn(), f"connection {settings.mlflow_conn_id}"
    if settings.mlflow_tracking_uri:
        uri = settings.mlflow_tracking_uri
        return ModelRegistry.from_config(MlflowConfig(tracking_uri=uri)), uri
    db = home / "mlflow" / "mlflow.db"
    return (ModelRegistry(f"sqlite:///{db}") if db.is_file() else None), f"sqlite:///{db}"


def _read_anchors(registry: Any, models: list[str], scan_registry: bool) -> tuple[dict[str, str], list[str]]:
    """({model: anchor} for the models that have one, [models without one]): `models`, plus (with
    `scan_registry`) every registered model carrying the anchor tag, so a model whose records were all cut off is
    still checked."""
    from airflow_provider_llmops.core.model.contract import TAG_AUDIT_HEAD

    client = registry.client
    names = list(models)
    if scan_registry:
        token = None
        for _ in range(10_000):  # pages of 200: bounded
            page = client.search_registered_models(max_results=200, page_token=token)
            names += [m.name for m in page if TAG_AUDIT_HEAD in (m.tags or {}) and m.name not in names]
            token = page.token
            if not token:
                break
    anchors: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        try:
            tags = client.get_registered_model(name).tags or {}
        except Exception as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            tags = {}
        if tags.get(TAG_AUDIT_HEAD):
            anchors[name] = tags[TAG_AUDIT_HEAD]
        else:
            missing.append(name)
    return anchors, missing


def _audit_verify(args: argparse.Namespace, path: Path) -> int:
    """Verify the chain (and the HMACs with the key of `--conn-id` / `[llmops] audit_conn_id`), then compare the
    registry's anchors (`llmops.audit_head` of each model) with the file. Prints what it proved; never the key."""
    from airflow_provider_llmops.core.governance import audit
    from airflow_provider_llmops.errors import LLMOpsError
    from airflow_provider_llmops.settings import load_settings

    home = _state_home(args)
    try:
        settings = load_settings()
        conn_ids = args.conn_id or ([settings.audit_conn_id] if settings.audit_conn_id else [])
        keys = None
        if conn_ids:
            from airflow_provider_llmops.operators._common import audit_key

            keys = [audit_key(c) for c in conn_ids]
    except LLMOpsError as exc:
        print(f"llmops audit verify: {exc}", file=sys.stderr)
        return 2
    result = audit.verify(path, keys=keys)
    if keys:
        given = ", ".join(f"{c} (key id {audit.key_id(k)})" for c, k in zip(conn_ids, keys, strict=True))
        mode = f"keyed (HMAC-SHA256, key from connection {given})"
        if result.first_keyed_seq:
            mode += (
                f"; records 0-{result.first_keyed_seq - 1} were written before the key was configured (unkeyed; the "
                f"HMAC of record {result.first_keyed_seq} covers them from then on)"
            )
    elif result.keyed:
        mode = f"keyed (key id {', '.join(result.key_ids)}) but no key given"
    else:
        mode = UNKEYED_MODE
    if result.status in ("broken", "unkeyed"):
        where = f" at line {result.bad_line}" if result.bad_line else ""
        before = f" ({result.records} valid records before it)" if result.bad_line else ""
        print(f"audit trail {path}: BROKEN{where}: {result.reason}{before}")
        print(f"  mode: {mode}")
        return 1
    anchor_lines: list[str] = []
    problems: list[str] = []
    anchors_unchecked = ""
    if args.no_anchors:
        anchor_lines.append("anchors: not checked (--no-anchors)")
    else:
        try:
            registry, where = _audit_registry(settings, home)
            scan = path.resolve() == audit.default_audit_path(home).resolve()
            if registry is None:
                if result.models:
                    named = ", ".join(result.models)
                    anchors_unchecked = f"no registry at {where} although the trail names model(s) {named}"
                else:
                    anchor_lines.append(f"anchors: none (no registry at {where})")
            else:
                anchors, unanchored = _read_anchors(registry, list(result.models), scan)
                for check in audit.check_anchors(path, anchors):
                    (anchor_lines if check.ok else problems).append(check.message)
                anchor_lines += [
                    f"model {m}: no anchor in the registry (not registered there, or its records predate anchoring)"
                    for m in unanchored
                ]
        except Exception as exc:  # a registry that cannot be reached or read
            anchors_unchecked = f"the registry cannot be read ({type(exc).__name__}: {exc})"
    if problems:
        for problem in problems:
            print(f"audit trail {path}: BROKEN: {problem}")
        print(f"  (the chain itself is intact: {result.records} records, last hash {result.last_hash or 'none'})")
        print(f"  mode: {mode}")
        return 1
    if result.status == "unverifiable":
        print(f"audit trail {path}: CANNOT VERIFY: {result.reason}")
        print("  set [llmops] audit_conn_id (or --conn-id) to the connection whose password is the audit key")
        code = 2
    else:
        print(f"audit trail {path}: OK, {result.records} records, last hash {result.last_hash or 'none'}")
        code = 0
    print(f"  mode: {mode}")
    for line in anchor_lines:
        print(f"  {line}")
    if anchors_unchecked:
        print(f"  anchors: NOT CHECKED: {anchors_unchecked} (--no-anchors to skip)")
        code = 2
    return code


def cmd_audit(args: argparse.Namespace) -> int:
    """`audit verify`: exit 0 intact, 1 broken (chain, HMAC or anchors), 2 no trail or cannot verify (keyed trail
    without the key, anchors unreadable). `audit show`: the last records, one per line."""
    from collections import deque

    from airflow_provider_llmops.core.governance import audit

    path = Path(args.path).expanduser() if args.path else audit.default_audit_path(_state_home(args))
    if not path.is_file():
        print(f"llmops audit: {path}: no audit trail (file does not exist)", file=sys.stderr)
        return 2
    if args.audit_command == "verify":
        return _audit_verify(args, path)
    if args.last < 1:
        print("llmops audit show: --last must be at least 1", file=sys.stderr)
        return 2
    last: deque[dict[str, Any]] = deque(maxlen=args.last)
    error = None
    try:
        for record in audit.records(path):
            last.append(record)
    except audit.AuditError as exc:
        error = exc
    for r in last:
        data = json.dumps(r["data"], separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        data = data if len(data) <= 160 else data[:157] + "..."
        print(f"{r['seq']:>6}  {r['ts']}  {r['event']}  {r['actor'] or '-'}  {data}")
    if error is not None:
        print(f"llmops audit show: {error}", file=sys.stderr)
        return 1
    return 0


# --- ingest, validate and suite init from a shell: the same core and [llmops] settings as the operators ---------


def _cli_settings(args: argparse.Namespace) -> Any:
    """`[llmops]` settings as the operators read them; a global `--home` sets `[llmops] home` for this process."""
    from airflow_provider_llmops.settings import load_settings

    if args.home:
        os.environ["AIRFLOW__LLMOPS__HOME"] = str(Path(args.home).expanduser().resolve())
    return load_settings()


def _column_map(raw: str | None) -> dict[str, str] | None:
    from airflow_provider_llmops.errors import ConfigurationError

    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        example = """--column-map '{"body": "text"}'"""
        raise ConfigurationError(f"--column-map is not JSON ({exc}); e.g. {example}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigurationError(f"--column-map must map source column names to canonical names, got {raw!r}")
    return value or None


def _source_kwargs(conn_id: str | None, source: str) -> dict[str, Any]:
    """`read_source`'s connection arguments for `--conn-id`, exactly as IngestBatchOperator builds them
    (`source_access`: S3 client, HTTP credentials, the hosts the connection is bound to). Airflow's connections
    are looked up only when a connection is given."""
    from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError
    from airflow_provider_llmops.operators._common import s3_client_for

    if not conn_id:
        from urllib.parse import urlsplit

        try:
            is_s3 = urlsplit(source.strip()).scheme.lower() == "s3"
        except ValueError:
            is_s3 = False
        return {"s3_client": s3_client_for(None) if is_s3 else None}
    from airflow_provider_llmops.operators.ingest import source_access

    try:
        access = source_access(conn_id, source)
    except LLMOpsError:  # refusals say what to change: pass them on as they are
        raise
    except Exception as exc:  # AirflowNotFoundException, secrets-backend errors: name the connection, not its values
        raise ConfigurationError(f"--conn-id {conn_id!r} cannot be read: {type(exc).__name__}: {exc}") from None
    if access.conn_id and access.credential_hosts is None:
        print(
            f"llmops ingest: connection {conn_id!r} is not bound to hosts (extra allowed_hosts or Host): its"
            " credentials may go to any source that [llmops] allowed_uri_prefixes admits",
            file=sys.stderr,
        )
    return {
        "s3_client": access.s3_client() if access.is_s3 else None,
        "http_headers": access.http_headers,
        "credential_hosts": access.credential_hosts,
        "credential_setting": access.credential_setting,
    }


def cmd_ingest(args: argparse.Namespace) -> int:
    """Exit 0: the snapshot committed with accepted rows; 1: every row was quarantined (the snapshot commits, with
    its quarantine); 2: the source is unusable or refused, or an argument is bad."""
    from airflow_provider_llmops.core.data.ingest import ingest
    from airflow_provider_llmops.core.data.records import ColumnMapping
    from airflow_provider_llmops.core.data.sources import read_source
    from airflow_provider_llmops.core.data.store import check_dataset_name
    from airflow_provider_llmops.errors import LLMOpsError
    from airflow_provider_llmops.operators._common import open_store

    try:
        settings = _cli_settings(args)
        check_dataset_name(args.dataset)
        mapping = ColumnMapping.from_config(_column_map(args.column_map))
        blob = read_source(
            args.source,
            allowed_roots=settings.allowed_roots,
            allowed_uri_prefixes=settings.allowed_uri_prefixes,
            file_format=args.format,
            max_bytes=settings.max_source_bytes,
            **_source_kwargs(args.conn_id, args.source),
        )
        store = open_store(settings.store_uri, settings.store_conn_id)
        result = ingest(
            blob, store, args.dataset, mapping, max_row_bytes=settings.max_row_bytes, run_info={"cli": "llmops ingest"}
        )
    except (LLMOpsError, ValueError, OSError) as exc:
        print(f"llmops ingest: refused: {exc}", file=sys.stderr)
        return 2
    reasons = ", ".join(f"{k}={v}" for k, v in result.reasons.items())
    state = "committed" if result.created else "already committed"
    print(
        f"llmops ingest: {state} snapshot {result.snapshot.snapshot_id} of {args.dataset}: {result.rows_read} read, "
        f"{result.accepted} accepted, {result.quarantined} quarantined"
        + (f" ({reasons})" if reasons else "")
        + f"; {result.snapshot.uri}"
    )
    if result.accepted == 0:
        quarantine = result.snapshot.quarantine_uri
        print(f"llmops ingest: every row was rejected; reasons per row in {quarantine}", file=sys.stderr)
        return 1
    return 0


def _newest_snapshot(store: Any, dataset: str) -> str:
    """The committed snapshot of `dataset` created last (by its manifest's `created_at`)."""
    from airflow_provider_llmops.errors import ConfigurationError

    ids = store.list_snapshots(dataset)
    if not ids:
        raise ConfigurationError(
            f"dataset {dataset!r} has no committed snapshot in {store.uri}; ingest one first (llmops ingest)"
        )
    return max(ids, key=lambda i: (str(store.read_manifest(dataset, i).get("created_at", "")), i))


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0: validation passed; 1: it failed (the report says which expectations); 2: unknown snapshot or suite,
    or a bad argument."""
    from airflow_provider_llmops.core.data.store import check_dataset_name, check_snapshot_id
    from airflow_provider_llmops.core.data.validation import choose_configured_suite, validate_snapshot
    from airflow_provider_llmops.errors import LLMOpsError
    from airflow_provider_llmops.operators._common import open_store

    try:
        settings = _cli_settings(args)
        check_dataset_name(args.dataset)
        choice = choose_configured_suite(args.suite, args.dataset, settings)
        store = open_store(settings.store_uri, settings.store_conn_id)
        snapshot_id = check_snapshot_id(args.snapshot) if args.snapshot else _newest_snapshot(store, args.dataset)
        done = validate_snapshot(store, args.dataset, snapshot_id, choice)
    except (LLMOpsError, ValueError, OSError) as exc:
        print(f"llmops validate: {exc}", file=sys.stderr)
        return 2
    outcome = done.outcome
    total = outcome.evaluated + len(outcome.skipped)
    print(
        f"llmops validate: {done.status} snapshot {snapshot_id} of {args.dataset} with suite {choice.name} "
        f"(by {choice.source}): {outcome.successful} passed, {len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped of {total} expectations on {outcome.row_count} rows; report {done.report_uri}"
    )
    for line in outcome.failed:
        print(f"  failed   {line}")
    for item in outcome.skipped:
        print(f"  skipped  {item['type']} on column {item['column']!r}: {item['note']}")
    return 0 if outcome.success else 1


_SNAPSHOT_REF = re.compile(r"^(?:(?P<dataset>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})/)?(?P<id>[0-9a-f]{16,64})$")


def _suite_name_from(stem: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).replace("..", "_").lstrip("._-")[:128]
    return name or "suite"


def _reference_frame(args: argparse.Namespace, settings: Any) -> tuple[Any, str, str]:
    """(canonical records as a DataFrame, what they were read from, default suite name) for `suite init --from`."""
    import hashlib

    import pandas as pd

    from airflow_provider_llmops.core.data.ingest import build_batch
    from airflow_provider_llmops.core.data.records import ColumnMapping
    from airflow_provider_llmops.core.data.sources import SourceBlob, detect_format
    from airflow_provider_llmops.errors import ConfigurationError, SourceError
    from airflow_provider_llmops.operators._common import open_store

    source = args.source
    path = Path(source).expanduser()
    if path.is_file():
        size = path.stat().st_size
        if size > settings.max_source_bytes:
            limit = settings.max_source_bytes
            raise SourceError(source, f"is {size} bytes, over the limit of {limit} ([llmops] max_source_bytes)")
        data = path.read_bytes()
        fmt = detect_format(source, args.format)
        blob = SourceBlob(source, str(path.resolve()), data, hashlib.sha256(data).hexdigest(), fmt)
        batch = build_batch(blob, ColumnMapping.from_config(_column_map(args.column_map)), settings.max_row_bytes)
        if batch.quarantine:
            print(
                f"llmops suite init: {len(batch.quarantine)} of {batch.rows_read} rows rejected as ingest would"
                f" ({batch.reasons}); profiling the rest",
                file=sys.stderr,
            )
        return pd.DataFrame(batch.records, columns=batch.columns), str(path.resolve()), _suite_name_from(path.stem)
    match = _SNAPSHOT_REF.match(source)
    if match is None:
        raise ConfigurationError(
            f"--from {source!r} is neither a file nor a snapshot (SNAPSHOT_ID or DATASET/SNAPSHOT_ID)"
        )
    dataset = match["dataset"] or args.dataset or settings.dataset
    store = open_store(settings.store_uri, settings.store_conn_id)
    frame = store.read_table(dataset, match["id"]).to_pandas()
    return frame, f"snapshot {match['id']} of {dataset} ({store.ref(dataset, match['id']).uri})", dataset


def cmd_suite_init(args: argparse.Namespace) -> int:
    """Profile a reference batch into a starter suite; exit 0 written, 2 refused (bad input, exists, shadowed)."""
    from airflow_provider_llmops.core.data.suite_init import build_suite, write_suite
    from airflow_provider_llmops.core.data.validation import available_suites, check_suite_name
    from airflow_provider_llmops.errors import ConfigurationError, LLMOpsError

    try:
        settings = _cli_settings(args)
        frame, source, default_name = _reference_frame(args, settings)
        name = check_suite_name(args.name or default_name)
        if args.out and args.out.endswith(".json"):
            target = Path(args.out).expanduser().resolve()
            if args.name and target.stem != args.name:
                raise ConfigurationError(
                    f"--out {args.out} would be suite {target.stem!r} (suites are named by file),"
                    f" not --name {args.name!r}"
                )
            name = check_suite_name(target.stem)
        else:
            folder = Path(args.out).expanduser() if args.out else settings.home / "expectations"
            target = folder.resolve() / f"{name}.json"
        existing = available_suites(settings.suites_dirs).get(name)
        if existing is not None and existing != target:
            raise ConfigurationError(
                f"a suite named {name!r} already exists at {existing}, and validation finds suites by name:"
                " choose another --name"
            )
        suite = build_suite(frame, name, source)
        write_suite(suite, target, force=args.force)
    except (LLMOpsError, ValueError, OSError) as exc:
        print(f"llmops suite init: {exc}", file=sys.stderr)
        return 2
    print(
        f"llmops suite init: wrote suite {name!r} ({len(suite['expectations'])} expectations, profiled from {source},"
        f" {len(frame)} rows) to {target}"
    )
    for item in suite["expectations"]:
        when = f" [when {item['when']}]" if item.get("when") else ""
        print(f"  {item['type']}{when}: {item['meta']['why']}")
    if available_suites(settings.suites_dirs).get(name) == target:
        print(f"use it: llmops validate --dataset DATASET --suite {name}, or map a dataset to it: dataset_suites")
    else:
        dirs = list(settings.suites_dirs)
        print(f"note: {target.parent} is not in [llmops] suites_dirs {dirs}; add it to use {name!r} by name")
    return 0


def _use_home(args: argparse.Namespace) -> None:
    if args.home:
        os.environ["LLMOPS_HOME"] = str(Path(args.home).expanduser().resolve())


def cmd_serve(args: argparse.Namespace) -> int:
    from airflow_provider_llmops.errors import LLMOpsError
    from airflow_provider_llmops.serving import server

    _use_home(args)
    try:
        config = server.serve_config(host=args.host, port=args.port, backend=args.backend)
        if args.worker:
            return server.run_worker(config, max_jobs=args.max_jobs)
        return server.run(config)
    except LLMOpsError as exc:
        print(f"llmops serve: {exc}", file=sys.stderr)
        return 2


def cmd_token(args: argparse.Namespace) -> int:
    from airflow_provider_llmops.errors import LLMOpsError
    from airflow_provider_llmops.serving.auth import AuthConfig, mint_token
    from airflow_provider_llmops.settings import llmops_home, serve_options

    _use_home(args)
    try:
        config = AuthConfig.from_mapping(serve_options(), llmops_home())
        if config.secret is None:
            print(
                "llmops token: the service checks tokens from your identity provider (serve_jwt_public_key_file or "
                "serve_jwt_jwks_file); mint them there",
                file=sys.stderr,
            )
            return 2
        print(mint_token(config, args.sub, args.scope or ["predict"], ttl_s=args.ttl))
    except LLMOpsError as exc:
        print(f"llmops token: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description="airflow-provider-llmops command line")
    parser.add_argument("--home", help="embedded home (default: $LLMOPS_HOME or ./.llmops)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="set up the embedded Airflow and run the pipeline on the sample data")
    demo.add_argument(
        "--source", help="one source URI (default: the shipped reference, same-distribution and drifted samples)"
    )
    demo.add_argument("--dataset", default="support_tickets")
    demo.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    demo.add_argument("--no-drift", action="store_true", help="only ingest and validate")
    demo.add_argument("--no-train", action="store_true", help="ingest, validate and score drift, but do not train")
    demo.add_argument("--no-serve", action="store_true", help="no inference service: promotion moves champion directly")
    demo.add_argument("--serve-port", type=int, default=8765, help="port of the demo's inference service")
    demo.add_argument("--model-name", default="support_ticket_router")
    demo.add_argument(
        "--max-train-minutes", type=float, default=None, help="training budget per run (default: the DAG's, 30)"
    )
    demo.set_defaults(func=cmd_demo)

    mlflow_ui = sub.add_parser("mlflow", help="the MLflow UI on the embedded default's store")
    mlflow_ui.add_argument("--port", type=int, default=5000)
    mlflow_ui.set_defaults(func=cmd_mlflow)

    ui = sub.add_parser("ui", help="run the Airflow UI and scheduler (airflow standalone) on the embedded default")
    ui.add_argument("--port", type=int, default=8080)
    ui.set_defaults(func=cmd_ui)

    env = sub.add_parser("env", help="print the embedded default as shell exports")
    env.add_argument("--port", type=int, default=8080)
    env.set_defaults(func=cmd_env)

    drift = sub.add_parser(
        "drift", help="score two files for drift without Airflow (exit 0 no drift, 1 drift, 2 bad input)"
    )
    drift.add_argument(
        "--reference", required=True, help="reference JSONL/CSV/Parquet file, or a saved profile directory"
    )
    drift.add_argument("--current", required=True, help="current JSONL/CSV/Parquet file")
    drift.add_argument("--text-column", default="text")
    drift.add_argument("--label-column", default="label", help="empty to ignore labels")
    drift.add_argument("--format", choices=["json", "html"], default="json")
    drift.add_argument("--out", help="write the report here instead of stdout")
    drift.add_argument("--statistic", choices=list(("psi", "js", "kl", "kl_symmetric")), default="psi")
    drift.add_argument("--mode", choices=["both", "fixed", "calibrated"], default="both")
    drift.add_argument("--no-embeddings", action="store_true", help="skip embedding drift (no model load)")
    drift.add_argument("--embedding-sample", type=int, default=1000)
    drift.add_argument("--model-dir", help="tokenizer/encoder checkpoint (default: the packaged all-MiniLM-L6-v2)")
    drift.add_argument("--save-profile", help="also save the reference profile to this directory")
    drift.add_argument("--reference-format", choices=["jsonl", "csv", "parquet"])
    drift.add_argument("--current-format", choices=["jsonl", "csv", "parquet"])
    drift.set_defaults(func=cmd_drift)

    dags = sub.add_parser("dags", help="DAG files")
    dags_sub = dags.add_subparsers(dest="dags_command", required=True)
    install = dags_sub.add_parser("install", help="copy the provider's DAG files into a DAGs folder")
    install.add_argument("directory")
    install.set_defaults(func=cmd_dags_install)

    audit = sub.add_parser("audit", help="the hash-chained audit trail (<home>/audit/audit.jsonl)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_verify = audit_sub.add_parser(
        "verify",
        help="check the chain, its HMACs and the registry's anchors (exit 0 intact, 1 broken, 2 cannot verify)",
    )
    audit_verify.add_argument("--path", help="audit trail file (default: <home>/audit/audit.jsonl)")
    audit_verify.add_argument(
        "--conn-id",
        action="append",
        help="connection whose password is the HMAC key (default: [llmops] audit_conn_id); repeat it to give the "
        "keys of a trail whose key was rotated",
    )
    audit_verify.add_argument("--no-anchors", action="store_true", help="do not compare with the registry's anchors")
    audit_verify.set_defaults(func=cmd_audit)
    audit_show = audit_sub.add_parser("show", help="print the last records, one per line")
    audit_show.add_argument("--path", help="audit trail file (default: <home>/audit/audit.jsonl)")
    audit_show.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    audit_show.set_defaults(func=cmd_audit)

    ingest = sub.add_parser(
        "ingest", help="ingest a batch into a snapshot, as the ingest operator (exit 0 ok, 1 all rejected, 2 refused)"
    )
    ingest.add_argument("source", help="path, file://, s3:// or http(s):// URI, as [llmops] allowed_roots/... allow")
    ingest.add_argument("--dataset", required=True, help="dataset name: snapshots go under snapshots/<dataset>/")
    ingest.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="default: from the suffix")
    ingest.add_argument("--column-map", help="""JSON: source column -> canonical column, e.g. '{"body": "text"}'""")
    ingest.add_argument("--conn-id", help="Airflow connection: llmops_s3 for s3://, basic/bearer auth for http(s)://")
    ingest.set_defaults(func=cmd_ingest)

    validate = sub.add_parser(
        "validate", help="validate a snapshot as the validate operator does (exit 0 passed, 1 failed, 2 bad input)"
    )
    validate.add_argument("--dataset", required=True)
    validate.add_argument("--snapshot", help="snapshot id (default: the newest committed snapshot of the dataset)")
    validate.add_argument("--suite", help="suite name in [llmops] suites_dirs (default: dataset_suites, default_suite)")
    validate.set_defaults(func=cmd_validate)

    suite = sub.add_parser("suite", help="Great Expectations suites")
    suite_sub = suite.add_subparsers(dest="suite_command", required=True)
    suite_init = suite_sub.add_parser("init", help="profile a reference batch into a starter suite")
    suite_init.add_argument(
        "--from", dest="source", required=True, help="JSONL/CSV/Parquet file, or [DATASET/]SNAPSHOT_ID in the store"
    )
    suite_init.add_argument("--name", help="suite name (default: the file's stem, or the snapshot's dataset)")
    suite_init.add_argument("--out", help="folder, or NAME.json file, to write (default: <home>/expectations/)")
    suite_init.add_argument("--force", action="store_true", help="overwrite an existing suite file")
    suite_init.add_argument("--dataset", help="dataset of a bare SNAPSHOT_ID (default: [llmops] dataset)")
    suite_init.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="default: from the suffix")
    suite_init.add_argument("--column-map", help="JSON: source column -> canonical column, as for ingest")
    suite_init.set_defaults(func=cmd_suite_init)

    serve = sub.add_parser("serve", help="the inference service for the registry's champion and canary")
    serve.add_argument("--host", help="bind address (default [llmops] serve_host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default [llmops] serve_port, 8765)")
    serve.add_argument("--backend", choices=("torch", "onnx"), help="default [llmops] serve_backend")
    serve.add_argument("--worker", action="store_true", help="drain /v1/jobs from Redis instead of serving HTTP")
    serve.add_argument("--max-jobs", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="mint a bearer token for llmops serve (local key)")
    token.add_argument("--sub", required=True, help="the client's name (quotas and the audit log use it)")
    token.add_argument(
        "--scope", action="append", choices=("predict", "admin"), help="repeat for several (default: predict)"
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
