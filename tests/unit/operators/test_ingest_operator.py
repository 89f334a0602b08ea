"""IngestBatchOperator.execute with an empty context (no metadata DB needed), and its lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_llmops.core.data.store import DatasetStore
from airflow_provider_llmops.errors import NoValidRowsError, PathNotAllowedError, SourceError
from airflow_provider_llmops.operators.ingest import IngestBatchOperator


def test_execute_returns_a_small_summary(allow_tmp: Path, sample_dir: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri=str(sample_dir / "golden.jsonl"), dataset="golden")
    summary = op.execute(context={})
    assert summary["accepted"] == summary["rows_read"] == 70 and summary["quarantined"] == 0
    assert summary["created"] is True
    assert len(json.dumps(summary)) < 2000  # XCom carries references, not data
    assert DatasetStore(str(allow_tmp / "store")).exists("golden", summary["snapshot_id"])


def test_column_map_from_a_rendered_param(allow_tmp: Path):
    (allow_tmp / "export.csv").write_text("ticket,body,queue\n1,Refund my order,returns_refunds\n")
    op = IngestBatchOperator(
        task_id="ingest",
        source_uri=str(allow_tmp / "export.csv"),
        dataset="export",
        column_map='{"ticket": "id", "body": "text", "queue": "label"}',
    )
    assert op.execute(context={})["accepted"] == 1


def test_all_rows_bad_fails_but_keeps_the_quarantine(allow_tmp: Path):
    (allow_tmp / "bad.jsonl").write_text('{"id": "1"}\n{"id": "2", "text": ""}\nnot json\n')
    op = IngestBatchOperator(task_id="ingest", source_uri=str(allow_tmp / "bad.jsonl"), dataset="bad")
    with pytest.raises(NoValidRowsError, match=r"none of 3 rows is valid .*quarantine.jsonl") as caught:
        op.execute(context={})
    assert "empty_text=1" in str(caught.value) and "malformed_row=1" in str(caught.value)
    store = DatasetStore(str(allow_tmp / "store"))
    (snapshot_id,) = store.list_snapshots("bad")
    assert len(store.read_quarantine("bad", snapshot_id)) == 3


def test_path_outside_allowed_roots_is_refused(allow_tmp: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri="/etc/passwd.jsonl", dataset="x")
    with pytest.raises(PathNotAllowedError, match="'/etc/passwd.jsonl'.*outside the allowed roots"):
        op.execute(context={})
    assert not (allow_tmp / "store").exists()


def test_empty_file_fails_naming_the_source(allow_tmp: Path):
    (allow_tmp / "empty.jsonl").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.jsonl.*is empty"):
        IngestBatchOperator(task_id="ingest", source_uri=str(allow_tmp / "empty.jsonl"), dataset="x").execute(
            context={}
        )


def test_lineage_names_source_snapshot_and_quarantine(allow_tmp: Path, sample_dir: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri=str(sample_dir / "golden.jsonl"), dataset="golden")
    summary = op.execute(context={})
    lineage = op.get_openlineage_facets_on_complete(None)
    (source,) = lineage.inputs
    assert (source.namespace, source.name) == ("file", str(sample_dir / "golden.jsonl"))
    assert source.inputFacets["inputStatistics"].rowCount == 70
    snapshot, quarantine = lineage.outputs
    assert snapshot.name.endswith(f"/snapshots/golden/{summary['snapshot_id']}") and snapshot.namespace == "file"
    assert snapshot.outputFacets["outputStatistics"].rowCount == 70
    assert [f.name for f in snapshot.facets["schema"].fields][:4] == ["id", "text", "label", "timestamp"]
    assert quarantine.outputFacets["outputStatistics"].rowCount == 0


def test_lineage_on_failure_still_names_the_input(allow_tmp: Path):
    op = IngestBatchOperator(task_id="ingest", source_uri=str(allow_tmp / "missing.jsonl"), dataset="x")
    with pytest.raises(SourceError):
        op.execute(context={})
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [d.name for d in lineage.inputs] == [str(allow_tmp / "missing.jsonl")] and lineage.outputs == []


def test_templated_fields_cover_what_users_template():
    assert {"source_uri", "dataset", "file_format", "column_map", "store_uri"} <= set(
        IngestBatchOperator.template_fields
    )


# ------------------------------------------------------------------------------------ source connections and hosts
# Two real HTTP servers on 127.0.0.1 (tests/source_servers.py): a "good" host and an "evil" host.

SECRET = "pw-9f3c1e-never-in-a-log"


@pytest.fixture
def servers():
    from tests.source_servers import good_and_evil

    with good_and_evil() as pair:
        yield pair


def _connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> str:
    fields.setdefault("conn_type", "http")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    return conn_id


def _basic(login: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def _templated(uri: str, conn_id: str, allowed: tuple[str, ...] | None = None) -> IngestBatchOperator:
    """An ingest task whose connection comes from a run's Param, rendered the way a run renders it."""
    op = IngestBatchOperator(
        task_id="ingest",
        source_uri="{{ params.source_uri }}",
        dataset="remote",
        source_conn_id="{{ params.source_conn_id }}",
        allowed_conn_ids=allowed,
    )
    op.render_template_fields({"params": {"source_uri": uri, "source_conn_id": conn_id}})
    assert (op.source_uri, op.source_conn_id) == (uri, conn_id)
    return op


def test_default_settings_refuse_every_remote_source(allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops import embedded
    from airflow_provider_llmops.settings import load_settings

    good, _ = servers
    monkeypatch.delenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", raising=False)
    assert load_settings().allowed_uri_prefixes == ()
    assert embedded.embedded_env(allow_tmp).get("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", "") == ""
    for uri in (f"{good.base}/rows.jsonl", "s3://landing/rows.jsonl"):
        op = IngestBatchOperator(task_id="ingest", source_uri=uri, dataset="x")
        with pytest.raises(PathNotAllowedError, match=r"set \[llmops\] allowed_uri_prefixes"):
            op.execute(context={})
    assert good.requests == [] and not (allow_tmp / "store").exists()


def test_param_connection_is_refused_unless_the_author_allowed_it(
    allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch
):
    from airflow_provider_llmops.errors import ConnectionNotAllowedError
    from tests.source_servers import ROWS, Route

    good, _ = servers
    good.routes["/rows.jsonl"] = Route(body=ROWS)
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", good.base)
    bound = {"allowed_hosts": [good.base]}
    _connection(monkeypatch, "src_good", login="reader", password=SECRET, extra=bound)
    _connection(monkeypatch, "src_admin", login="admin", password=SECRET + "-admin", extra=bound)
    uri = f"{good.base}/rows.jsonl"
    for allowed in (None, ("src_good",)):
        refused = "'src_admin' was chosen at run time and is not one the DAG author allowed"
        with pytest.raises(ConnectionNotAllowedError, match=refused):
            _templated(uri, "src_admin", allowed).execute(context={})
    assert good.requests == []
    assert _templated(uri, "src_good", ("src_good",)).execute(context={})["accepted"] == 2
    assert _templated(uri, "", ("src_good",)).execute(context={})["accepted"] == 2  # no connection at all is fine
    assert good.header_values("Authorization") == [_basic("reader", SECRET), None]
    # a connection id the author wrote literally is the author's choice
    literal = IngestBatchOperator(task_id="ingest", source_uri=uri, dataset="remote", source_conn_id="src_admin")
    assert literal.execute(context={})["accepted"] == 2


@pytest.mark.parametrize("form", ["list", "comma"])
def test_connection_allowed_hosts_bind_its_credentials(
    allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch, form: str
):
    from tests.source_servers import EVIL_BODY, ROWS, Route

    good, evil = servers
    good.routes["/rows.jsonl"] = Route(body=ROWS)
    evil.routes["/rows.jsonl"] = Route(body=EVIL_BODY)
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", f"{good.base},{evil.base}")  # both allowed globally
    hosts = [f"127.0.0.1:{good.port}", "https://data.example/x"]
    extra = {"allowed_hosts": hosts if form == "list" else ", ".join(hosts), "headers": {"X-Api-Key": SECRET}}
    conn_id = _connection(monkeypatch, "src_bound", login="reader", password=SECRET, extra=extra)
    op = _templated(f"{evil.base}/rows.jsonl", conn_id, (conn_id,))
    with pytest.raises(PathNotAllowedError, match=r"bound to .*allowed_hosts"):
        op.execute(context={})
    assert evil.requests == []
    assert _templated(f"{good.base}/rows.jsonl", conn_id, (conn_id,)).execute(context={})["accepted"] == 2
    assert good.header_values("Authorization") == [_basic("reader", SECRET)]
    assert good.header_values("X-Api-Key") == [SECRET]


def test_connection_host_binds_it_when_no_allowed_hosts(allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch):
    good, evil = servers
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", f"{good.base},{evil.base}")
    conn_id = _connection(monkeypatch, "src_host", host="127.0.0.1", port=good.port, password=SECRET)
    op = IngestBatchOperator(
        task_id="ingest", source_uri=f"{evil.base}/rows.jsonl", dataset="x", source_conn_id=conn_id
    )
    with pytest.raises(PathNotAllowedError, match="Host of connection 'src_host'"):
        op.execute(context={})
    assert evil.requests == []


def test_s3_connection_is_never_sent_to_an_http_source(allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch):
    from airflow_provider_llmops.errors import ConnectionNotAllowedError

    good, _ = servers
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", good.base)
    conn_id = _connection(monkeypatch, "src_s3", conn_type="llmops_s3", login="AKIA", password=SECRET)
    op = IngestBatchOperator(
        task_id="ingest", source_uri=f"{good.base}/rows.jsonl", dataset="x", source_conn_id=conn_id
    )
    with pytest.raises(ConnectionNotAllowedError, match="is an S3 connection"):
        op.execute(context={})
    assert good.requests == []


def test_s3_connection_allowed_hosts_limit_buckets(allow_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", "s3://landing,s3://finance")
    conn_id = _connection(
        monkeypatch,
        "src_s3_bound",
        conn_type="llmops_s3",
        host="http://127.0.0.1:9",
        login="AKIA",
        password=SECRET,
        extra={"allowed_hosts": ["s3://landing/batches"]},
    )
    op = IngestBatchOperator(
        task_id="ingest", source_uri="s3://finance/ledger.jsonl", dataset="x", source_conn_id=conn_id
    )
    with pytest.raises(PathNotAllowedError, match=r"bound to \['s3://landing/batches'\]"):
        op.execute(context={})


def test_redirect_to_evil_is_refused_and_its_body_is_never_stored(
    allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch
):
    from tests.source_servers import EVIL_BODY, Route

    good, evil = servers
    good.routes["/rows.jsonl"] = Route(302, b"", {"Location": f"{evil.base}/rows.jsonl"})
    evil.routes["/rows.jsonl"] = Route(body=EVIL_BODY)
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", good.base)
    conn_id = _connection(monkeypatch, "src_redirect", login="reader", password=SECRET)
    op = IngestBatchOperator(
        task_id="ingest", source_uri=f"{good.base}/rows.jsonl", dataset="x", source_conn_id=conn_id
    )
    with pytest.raises(PathNotAllowedError, match="redirected"):
        op.execute(context={})
    assert evil.requests == []
    stored = [p for p in (allow_tmp / "store").rglob("*") if p.is_file()] if (allow_tmp / "store").exists() else []
    assert not any(b"EVIL-BODY-MARKER" in p.read_bytes() for p in stored) and stored == []


def test_secrets_appear_in_no_log_or_error(allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch, caplog, capfd):
    import logging

    from airflow_provider_llmops.errors import LLMOpsError
    from tests.source_servers import Route

    good, evil = servers
    good.routes["/private.jsonl"] = Route(401, b"nope")
    good.routes["/moved.jsonl"] = Route(302, b"", {"Location": f"{evil.base}/rows.jsonl"})
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", good.base)
    extra = {"allowed_hosts": f"127.0.0.1:{good.port}"}
    conn_id = _connection(monkeypatch, "src_secret", login="reader", password=SECRET, extra=extra)
    unbound = _connection(monkeypatch, "src_unbound_secret", login="reader", password=SECRET)
    caplog.set_level(logging.DEBUG)
    messages = []
    for uri, conn in [
        (f"{good.base}/private.jsonl", conn_id),  # 401
        (f"{good.base}/private.jsonl", unbound),  # 401, and a warning that the connection is not bound
        (f"{good.base}/moved.jsonl", conn_id),  # redirect refused
        (f"{evil.base}/rows.jsonl", conn_id),  # outside the allow-list and the binding
        (f"http://reader:{SECRET}@127.0.0.1:{good.port}/rows.jsonl", None),  # a secret typed into the URI
        (f"{good.base}/rows.jsonl", "src_admin"),  # a Param connection that is not allowed
    ]:
        if conn == "src_admin":
            op = _templated(uri, conn, (conn_id,))
        else:
            op = IngestBatchOperator(task_id="ingest", source_uri=uri, dataset="x", source_conn_id=conn)
        with pytest.raises(LLMOpsError) as caught:
            op.execute(context={})
        lineage = op.get_openlineage_facets_on_complete(None)
        messages += [str(caught.value), repr(lineage.inputs)]
        assert SECRET not in messages[-2] + messages[-1], uri.replace(SECRET, "<SECRET>")
    out, err = capfd.readouterr()
    token = _basic("reader", SECRET).split()[1]
    for text in [*messages, caplog.text, out, err]:
        assert SECRET not in text and token not in text
    assert any("not authorised" in m for m in messages) and any("userinfo" in m for m in messages)
    assert "src_unbound_secret is not bound to hosts" in out + err + caplog.text  # the task log was captured
    assert evil.requests == []


def test_dag_factory_offers_only_the_allowed_connections(monkeypatch: pytest.MonkeyPatch):
    from airflow.sdk.exceptions import ParamValidationError

    from airflow_provider_llmops.dags.ingest_validate import build_ingest_validate_dag

    monkeypatch.delenv("AIRFLOW__LLMOPS__ALLOWED_SOURCE_CONN_IDS", raising=False)
    default = build_ingest_validate_dag("iv_default")
    assert default.params.get_param("source_conn_id").schema["enum"] == [""]
    assert default.get_task("ingest").allowed_conn_ids == ()

    dag = build_ingest_validate_dag(
        "iv_allowed", source_conn_id="own_conn", allowed_source_conn_ids=["tickets_https", "own_conn"]
    )
    param = dag.params.get_param("source_conn_id")
    assert param.schema["enum"] == ["", "own_conn", "tickets_https"] and param.value == "own_conn"
    with pytest.raises(ParamValidationError):
        param.resolve("airflow_db")
    assert dag.get_task("ingest").allowed_conn_ids == ("own_conn", "tickets_https")

    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_SOURCE_CONN_IDS", "landing_s3, tickets_https")
    configured = build_ingest_validate_dag("iv_configured")
    assert configured.params.get_param("source_conn_id").schema["enum"] == ["", "landing_s3", "tickets_https"]
    assert configured.get_task("ingest").allowed_conn_ids == ("landing_s3", "tickets_https")


def test_a_local_source_ignores_the_connection(allow_tmp: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch):
    conn_id = _connection(monkeypatch, "src_s3_local", conn_type="llmops_s3", login="AKIA", password=SECRET)
    source = str(sample_dir / "golden.jsonl")
    op = IngestBatchOperator(task_id="ingest", source_uri=source, dataset="g", source_conn_id=conn_id)
    assert op.execute(context={})["accepted"] == 70


def test_unbound_credentials_never_go_to_a_uri_chosen_at_run_time(
    allow_tmp: Path, servers, monkeypatch: pytest.MonkeyPatch, caplog, capfd
):
    import logging

    from airflow_provider_llmops.errors import ConnectionNotAllowedError
    from tests.source_servers import ROWS, Route

    good, evil = servers
    good.routes["/rows.jsonl"] = Route(body=ROWS)
    evil.routes["/rows.jsonl"] = Route(body=ROWS)
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", f"{good.base},{evil.base}")
    conn_id = _connection(monkeypatch, "src_unbound", login="reader", password=SECRET)
    # the author chose the connection; the run chooses the URI (the DAG factory's shape)
    op = IngestBatchOperator(
        task_id="ingest", source_uri="{{ params.source_uri }}", dataset="r", source_conn_id=conn_id
    )
    op.render_template_fields({"params": {"source_uri": f"{evil.base}/rows.jsonl"}})
    with pytest.raises(ConnectionNotAllowedError, match="not bound to hosts and source_uri was chosen at run time"):
        op.execute(context={})
    assert evil.requests == []
    # a URI the author wrote is the author's choice (with a warning to bind the connection)
    caplog.set_level(logging.WARNING)
    literal = IngestBatchOperator(
        task_id="ingest", source_uri=f"{good.base}/rows.jsonl", dataset="r", source_conn_id=conn_id
    )
    assert literal.execute(context={})["accepted"] == 2
    assert good.header_values("Authorization") == [_basic("reader", SECRET)]
    out, err = capfd.readouterr()  # the task logger writes through structlog
    assert "src_unbound is not bound to hosts" in out + err + caplog.text
