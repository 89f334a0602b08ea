"""`llmops`: run the embedded default, open the UI, install DAG files.

    llmops demo [--source URI] [--dataset NAME]   set up the embedded Airflow and run the whole loop on the samples
    llmops mlflow [--port 5000]                   the MLflow UI on the embedded default's store
    llmops ui [--port 8080]                       the Airflow UI (airflow standalone) on the embedded default
    llmops env                                    shell exports of the embedded default: eval "$(llmops env)"
    llmops dags install DIR                       copy the provider's DAG files into a DAGs folder
    llmops audit verify [--path PATH]             check the hash chain of the audit trail (exit 0 ok, 1 broken, 2 missing)
    llmops audit show [--path PATH] [--last N]    print the last N audit records
"""

from __future__ import annotations

import argparse
import json
import os
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
    print(f"Airflow UI on http://127.0.0.1:{args.port} (AIRFLOW_HOME={env['AIRFLOW_HOME']}); Ctrl-C stops it.", flush=True)
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
    results = {ti.task_id: {"state": str(getattr(ti.state, "value", ti.state)), "xcom": ti.xcom_pull(task_ids=ti.task_id)} for ti in run.get_task_instances()}
    return str(getattr(run.state, "value", run.state)), results


def _print_ingest(results: dict[str, Any]) -> None:
    ingest = results.get("ingest", {}).get("xcom") or {}
    validate = results.get("validate", {}).get("xcom") or {}
    if ingest:
        print(f"  snapshot    {ingest['snapshot_uri']}  ({'new' if ingest['created'] else 'already existed'})")
        print(f"  rows        {ingest['rows_read']} read, {ingest['accepted']} accepted, {ingest['quarantined']} quarantined {ingest['quarantine_reasons'] or ''}")
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
        print(f"  embedding   {'drift' if e['drift'] else 'no drift'}: centroid distance {e['centroid_cosine_distance']:.3f}, MMD p={e['mmd_pvalue']:.3f}, domain AUC {e['domain_auc']:.3f}")
    branch = "request_retrain" if results.get("request_retrain", {}).get("state") == "success" else "no_drift"
    print(f"  branch      {branch}")
    print(f"  report      {drift['html_uri']}")


def _print_retrain(results: dict[str, Any], names: dict[str, str]) -> None:
    decision = results.get("should_retrain", {}).get("state")
    if results.get("fine_tune", {}).get("state") != "success":
        print(f"  decision    no retraining (should_retrain: {decision}; its reason is printed above and in its task log)")
        return
    trained = results["fine_tune"]["xcom"] or {}
    training = trained.get("training") or {}
    print(f"  trained     {trained['model_name']} v{trained['version']} on {len(trained['snapshots'])} snapshot(s): {training.get('samples')} samples, {training.get('samples_per_second', 0):.1f} samples/s, stopped by {training.get('stopped_by')}")
    evaluation = results.get("evaluate", {}).get("xcom") or {}
    promote = results.get("promote", {}).get("xcom") or {}
    if evaluation:
        champion = evaluation.get("champion") or {}
        challenger = evaluation["challenger"]
        against = f" vs champion v{evaluation['champion_version']}" if evaluation.get("champion_version") else " (no champion yet)"
        print(f"  evaluated   on {evaluation['eval_set']['rows']} rows ({', '.join(f'{_part_name(k, names)}={v}' for k, v in evaluation['eval_set']['parts'].items())}){against}")
        for metric in ("macro_f1", "accuracy", "ece", "fairness_gap", "latency_p95_ms"):
            old = champion.get(metric)
            print(f"    {metric:<16} {_fmt(challenger.get(metric))}" + (f"   (champion {_fmt(old)})" if evaluation.get("champion_version") else ""))
        for key, value in challenger.items():
            if key.endswith(".macro_f1") and key.startswith("heldout:"):
                part = key[: -len(".macro_f1")]
                old = champion.get(key)
                print(f"    macro_f1 on {_part_name(part, names):<24} {_fmt(value)}" + (f"   (champion {_fmt(old)})" if evaluation.get("champion_version") else ""))
    if promote:
        verdict = "PROMOTED" if promote["promoted"] else "REJECTED"
        print(f"  gate        {verdict}: champion is now v{promote['champion']}" + (f", previous-champion v{promote['champion_before']}" if promote.get("champion_before") and promote["promoted"] else ""))
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
    from airflow_provider_llmops.resources import sample_data_dir

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
    embedded.apply(env)
    print(f"[llmops] embedded Airflow under {env['AIRFLOW_HOME']} (SQLite, LocalExecutor); migrating the metadata DB ...", flush=True)
    embedded.prepare(home, env)
    samples = sample_data_dir()
    sources = [args.source] if args.source else [str(samples / f) for f in ("tickets_reference.jsonl", "tickets_batch_same.jsonl", "tickets_batch_drift.jsonl")]
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
            state, results = _run_dag("llmops_drift", home / "dags", {"dataset": args.dataset, "snapshot_id": validate["snapshot_id"]})
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
    if not args.no_train and not args.no_drift:
        _print_champion(args.model_name, last_drift)
    print(f"lineage       {embedded.lineage_file(home)} (OpenLineage events, one JSON per line)")
    print(f"audit         {home / 'audit' / 'audit.jsonl'} (verify: {_command_path('llmops')} audit verify)")
    print(f"metrics       {home / 'metrics'} (Prometheus textfiles; set [llmops] pushgateway_url to push)")
    print(f"MLflow        {home / 'mlflow'} (UI: {_command_path('llmops')} mlflow, then http://127.0.0.1:5000)")
    print(f"UI            {_command_path('llmops')} ui   (then http://127.0.0.1:8080)")
    return 0 if failures == 0 else 1


def _print_champion(model_name: str, drift: dict[str, Any]) -> None:
    from airflow_provider_llmops.operators._common import open_registry

    registry = open_registry()
    aliases = registry.aliases(model_name)
    if not aliases.get("champion"):
        print(f"champion      {model_name}: none")
        return
    version = registry.get_version(model_name, aliases["champion"])
    metrics = {k[len("llmops.eval."):]: v for k, v in version.tags.items() if k.startswith("llmops.eval.") and "." not in k[len("llmops.eval."):]}
    shown = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()))
    print(f"champion      {model_name} v{version.version} ({shown})" + (f"; previous-champion v{aliases['previous-champion']}" if aliases.get("previous-champion") else ""))
    if drift:
        print(f"drift         last batch: {drift['verdict'].upper()} ({', '.join(drift['drifting_features']) or 'no drifting features'})")


def cmd_mlflow(args: argparse.Namespace) -> int:
    """The MLflow UI on the embedded default's SQLite store (127.0.0.1 only)."""
    home = _home(args)
    root = home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "ui", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(args.port)]
    print(f"MLflow UI on http://127.0.0.1:{args.port} (store {root}); Ctrl-C stops it.", flush=True)
    os.execv(command[0], command)
    return 0  # not reached


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit 0: no drift; 1: drift; 2: bad input (the message says what and where)."""
    from airflow_provider_llmops.core import drift as D
    from airflow_provider_llmops.core.batches import iter_chunks
    from airflow_provider_llmops.core.profile import ReferenceProfile, ScoreOptions, build_profile, score
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
    text = render(report, f"Drift of {Path(args.current).name}") if args.format == "html" else json.dumps(report, indent=1, allow_nan=False)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    print(f"llmops drift: {report['verdict']} ({', '.join(report['drifting_features']) or 'no drifting feature'})", file=sys.stderr)
    return 1 if report["drift"] else 0


def cmd_audit(args: argparse.Namespace) -> int:
    """`audit verify`: exit 0 intact, 1 broken, 2 no trail. `audit show`: the last records, one per line."""
    from collections import deque

    from airflow_provider_llmops.core import audit

    path = Path(args.path).expanduser() if args.path else audit.default_audit_path(_state_home(args))
    if not path.is_file():
        print(f"llmops audit: {path}: no audit trail (file does not exist)", file=sys.stderr)
        return 2
    if args.audit_command == "verify":
        result = audit.verify(path)
        if result.ok:
            print(f"audit trail {path}: OK, {result.records} records, last hash {result.last_hash or 'none'}")
            return 0
        print(f"audit trail {path}: BROKEN at line {result.bad_line}: {result.reason} ({result.records} valid records before it)")
        return 1
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description="airflow-provider-llmops command line")
    parser.add_argument("--home", help="embedded home (default: $LLMOPS_HOME or ./.llmops)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="set up the embedded Airflow and run the pipeline on the sample data")
    demo.add_argument("--source", help="one source URI (default: the shipped reference, same-distribution and drifted samples)")
    demo.add_argument("--dataset", default="support_tickets")
    demo.add_argument("--verbose", action="store_true", help="show Airflow's task logs")
    demo.add_argument("--no-drift", action="store_true", help="only ingest and validate")
    demo.add_argument("--no-train", action="store_true", help="ingest, validate and score drift, but do not train")
    demo.add_argument("--model-name", default="support_ticket_router")
    demo.add_argument("--max-train-minutes", type=float, default=None, help="training budget per run (default: the DAG's, 30)")
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

    drift = sub.add_parser("drift", help="score two files for drift without Airflow (exit 0 no drift, 1 drift, 2 bad input)")
    drift.add_argument("--reference", required=True, help="reference JSONL/CSV/Parquet file, or a saved profile directory")
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
    audit_verify = audit_sub.add_parser("verify", help="check the hash chain (exit 0 intact, 1 broken, 2 no trail)")
    audit_verify.add_argument("--path", help="audit trail file (default: <home>/audit/audit.jsonl)")
    audit_verify.set_defaults(func=cmd_audit)
    audit_show = audit_sub.add_parser("show", help="print the last records, one per line")
    audit_show.add_argument("--path", help="audit trail file (default: <home>/audit/audit.jsonl)")
    audit_show.add_argument("--last", type=int, default=20, help="how many records (default 20)")
    audit_show.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
