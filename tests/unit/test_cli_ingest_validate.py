"""`llmops ingest`, `llmops validate` and `llmops suite init`: exit codes, summaries, the same settings and
allow-lists as the operators. In-process through `cli.main` (fast), once through the console script."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from airflow_provider_llmops import cli
from airflow_provider_llmops.core.data.store import DatasetStore
from tests.conftest import run_cli

CATEGORIES = {
    "web": ["HTTP client", "web framework", "URL router", "template engine", "websocket server"],
    "data": ["dataframe library", "CSV reader", "Parquet writer", "JSON schema validator", "ETL toolkit"],
    "testing": ["test runner", "mocking library", "property-based tester", "coverage reporter", "snapshot tester"],
    "security": ["password hasher", "TLS wrapper", "secret scanner", "JWT library", "sandboxing helper"],
    "devops": ["container builder", "deployment orchestrator", "log shipper", "config templater", "metrics exporter"],
    "ml": ["gradient boosting library", "tokenizer", "model server", "feature store client", "hyperparameter tuner"],
}
QUALITIES = ["fast", "small", "typed", "async", "pure-Python", "zero-dependency", "well-documented", "pluggable"]
LANGS = ["Python", "Rust", "Go", "JavaScript", "Java", "C++"]


def package_rows(n: int, seed: int = 7) -> list[dict]:
    """`n` software-package descriptions labelled by category: another domain, other labels, no channel/language."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(sorted(CATEGORIES))
        kind = rng.choice(CATEGORIES[label])
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 40)}"
        text = (
            f"A {rng.choice(QUALITIES)} {kind} for {rng.choice(LANGS)}"
            + rng.choice([".", f" with {rng.choice(QUALITIES)} extensions.", f", version {version}."])
            + rng.choice(["", " Maintained since 2019.", " Used in production by many teams.", " MIT licensed."])
        )
        license_ = rng.choice(["MIT", "Apache-2.0", "BSD-3-Clause"])
        rows.append({"id": f"pkg-{i:05d}", "text": text, "label": label, "license": license_})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def home(allow_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private provider home (suites written by `suite init` go to <home>/expectations), store under allow_tmp."""
    monkeypatch.setenv("AIRFLOW__LLMOPS__HOME", str(allow_tmp / "home"))
    monkeypatch.delenv("AIRFLOW__LLMOPS__SUITES_DIRS", raising=False)
    monkeypatch.delenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", raising=False)
    return allow_tmp / "home"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _report(allow_tmp: Path, dataset: str, snapshot_id: str) -> dict:
    report = DatasetStore(str(allow_tmp / "store")).read_validation(dataset, snapshot_id)
    assert report is not None
    return report


def _snapshot_of(out: str) -> str:
    return out.split("snapshot ", 1)[1].split()[0]


def _failed_lines(out: str) -> list[str]:
    """The failed expectations `llmops validate` lists, without their observations."""
    lines = [line for line in out.splitlines() if line.startswith("  failed   ")]
    return sorted(line.split("failed   ", 1)[1].split(" (")[0] for line in lines)


# --- the non-ticket dataset, end to end from a shell ---------------------------------------------------------


def test_package_descriptions_pass_with_the_default_config(
    home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]
):
    source = _write_jsonl(allow_tmp / "packages.jsonl", package_rows(300))
    code, out, _ = _run(capsys, "ingest", str(source), "--dataset", "packages")
    assert code == 0
    assert out.count("\n") == 1 and "300 read, 300 accepted, 0 quarantined;" in out
    snapshot_id = _snapshot_of(out)
    assert DatasetStore(str(allow_tmp / "store")).list_snapshots("packages") == [snapshot_id]

    code, out, _ = _run(capsys, "validate", "--dataset", "packages")
    assert code == 0, out
    assert f"passed snapshot {snapshot_id} of packages with suite generic (by default_suite): 7 passed, 0 failed" in out
    report = _report(allow_tmp, "packages", snapshot_id)
    assert (report["status"], report["suite"], report["suite_source"]) == ("passed", "generic", "default_suite")
    assert f"report {Path(allow_tmp / 'store').as_uri()}/snapshots/packages/{snapshot_id}/validation.json" in out

    code, out, _ = _run(capsys, "validate", "--dataset", "packages", "--suite", "support_tickets")
    assert code == 1
    assert "failed snapshot" in out and "with suite support_tickets (by argument)" in out and ", 3 failed," in out
    assert _failed_lines(out) == [
        "expect_column_values_to_be_in_set on column 'label'",
        "expect_column_values_to_be_in_set on column 'language'",
        "expect_column_values_to_not_be_null on column 'channel'",
    ]
    assert _report(allow_tmp, "packages", snapshot_id)["status"] == "failed"


# --- ingest ---------------------------------------------------------------------------------------------------


def test_ingest_summary_counts_each_quarantine_reason(home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]):
    bad = [{"id": "pkg-00001", "text": "again"}, {"id": "blank", "text": "  "}]
    bad.append({"id": "t", "text": "t", "timestamp": "soon"})
    rows = package_rows(5) + bad
    source = _write_jsonl(allow_tmp / "mixed.jsonl", rows)
    code, out, _ = _run(capsys, "ingest", str(source), "--dataset", "mixed")
    assert code == 0
    assert "8 read, 5 accepted, 3 quarantined (duplicate_id=1, empty_text=1, invalid_timestamp=1)" in out
    again_code, again, _ = _run(capsys, "ingest", str(source), "--dataset", "mixed")
    assert again_code == 0 and again.startswith(f"llmops ingest: already committed snapshot {_snapshot_of(out)}")


def test_ingest_with_every_row_rejected_exits_1_and_commits_the_quarantine(
    home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]
):
    rows = [{"id": "a", "text": ""}, {"id": "", "text": "x"}, {"text": "no id"}]
    source = _write_jsonl(allow_tmp / "bad.jsonl", rows)
    code, out, err = _run(capsys, "ingest", str(source), "--dataset", "bad")
    assert code == 1
    assert "3 read, 0 accepted, 3 quarantined (" in out and "every row was rejected" in err
    snapshot_id = _snapshot_of(out)
    assert len(DatasetStore(str(allow_tmp / "store")).read_quarantine("bad", snapshot_id)) == 3


def test_ingest_column_map_and_format(home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]):
    (allow_tmp / "export.txt").write_text("ticket,body,queue\n1,hello there,billing\n2,another one,returns\n")
    code, out, err = _run(capsys, "ingest", str(allow_tmp / "export.txt"), "--dataset", "export")
    assert code == 2 and "cannot tell the format" in err and out == ""
    code, out, err = _run(capsys, "ingest", str(allow_tmp / "export.txt"), "--dataset", "export", "--format", "csv")
    assert code == 2 and "has no column for ['id', 'text']" in err
    mapping = json.dumps({"ticket": "id", "body": "text", "queue": "label"})
    as_csv = ["ingest", str(allow_tmp / "export.txt"), "--dataset", "export", "--format", "csv"]
    code, out, _ = _run(capsys, *as_csv, "--column-map", mapping)
    assert code == 0 and "2 read, 2 accepted, 0 quarantined" in out
    table = DatasetStore(str(allow_tmp / "store")).read_table("export", _snapshot_of(out))
    assert table.column("label").to_pylist() == ["billing", "returns"]
    for bad_map in ("{not json", '["id"]', '{"a": 1}'):
        code, _, err = _run(capsys, *as_csv, "--column-map", bad_map)
        assert code == 2 and "--column-map" in err


def test_ingest_refuses_what_the_operator_refuses(
    home: Path, allow_tmp: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
):
    outside = _write_jsonl(tmp_path_factory.mktemp("outside") / "x.jsonl", package_rows(3))
    code, out, err = _run(capsys, "ingest", str(outside), "--dataset", "x")
    assert code == 2 and out == "" and "outside the allowed roots" in err
    (allow_tmp / "link.jsonl").symlink_to(outside)
    code, _, err = _run(capsys, "ingest", str(allow_tmp / "link.jsonl"), "--dataset", "x")
    assert code == 2 and "outside the allowed roots" in err
    code, _, err = _run(capsys, "ingest", str(allow_tmp / "missing.jsonl"), "--dataset", "x")
    assert code == 2 and "does not exist" in err
    (allow_tmp / "empty.jsonl").write_text("\n\n")
    code, _, err = _run(capsys, "ingest", str(allow_tmp / "empty.jsonl"), "--dataset", "x")
    assert code == 2 and "empty" in err
    code, _, err = _run(capsys, "ingest", str(outside), "--dataset", "../x")
    assert code == 2 and "invalid dataset name" in err
    with pytest.raises(SystemExit) as usage:  # argparse: a missing --dataset is a usage error, exit 2
        cli.main(["ingest", str(outside)])
    assert usage.value.code == 2


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str | None]] = []
    body = b""

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_source() -> Iterator[str]:
    _Recorder.seen = []
    _Recorder.body = "".join(json.dumps(r) + "\n" for r in package_rows(20)).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_ingest_uses_the_remote_allow_list_and_a_connection(
    home: Path, http_source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    url = f"{http_source}/exports/packages.jsonl"
    code, out, err = _run(capsys, "ingest", url, "--dataset", "remote")
    assert code == 2 and out == "" and "allowed" in err and _Recorder.seen == []  # none allowed until configured
    monkeypatch.setenv("AIRFLOW__LLMOPS__ALLOWED_URI_PREFIXES", f"{http_source}/exports")
    code, out, _ = _run(capsys, "ingest", url, "--dataset", "remote")
    assert code == 0 and "20 read, 20 accepted" in out
    assert _Recorder.seen == [{"path": "/exports/packages.jsonl", "authorization": None}]
    code, _, err = _run(capsys, "ingest", f"{http_source}/elsewhere/packages.jsonl", "--dataset", "remote")
    assert code == 2 and len(_Recorder.seen) == 1
    # --conn-id: credentials from an Airflow connection (here from the environment), resolved only when given
    connection = {"conn_type": "http", "login": "reader", "password": "s3cret-pw"}
    monkeypatch.setenv("AIRFLOW_CONN_PACKAGES_HTTP", json.dumps(connection))
    code, out, err = _run(capsys, "ingest", url, "--dataset", "remote", "--conn-id", "packages_http")
    assert code == 0, err
    assert _Recorder.seen[-1]["authorization"] == "Basic cmVhZGVyOnMzY3JldC1wdw=="  # reader:s3cret-pw
    assert "s3cret-pw" not in out + err
    assert "not bound to hosts" in err  # warned, as the operator warns
    code, out, err = _run(capsys, "ingest", url, "--dataset", "remote", "--conn-id", "no_such_conn")
    assert code == 2 and "no_such_conn" in err
    # a connection bound to other hosts is refused before anything is sent, as in the operator
    bound = {**connection, "extra": {"allowed_hosts": ["data.example.com"]}}
    monkeypatch.setenv("AIRFLOW_CONN_BOUND_HTTP", json.dumps(bound))
    requests = len(_Recorder.seen)
    code, out, err = _run(capsys, "ingest", url, "--dataset", "remote", "--conn-id", "bound_http")
    assert code == 2 and out == "" and len(_Recorder.seen) == requests
    assert "s3cret-pw" not in err


# --- validate -------------------------------------------------------------------------------------------------


def test_validate_defaults_to_the_newest_snapshot_and_checks_its_arguments(
    home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]
):
    code, _, err = _run(capsys, "validate", "--dataset", "packages")
    assert code == 2 and "has no committed snapshot" in err
    first = _write_jsonl(allow_tmp / "p1.jsonl", package_rows(30, seed=1))
    second = _write_jsonl(allow_tmp / "p2.jsonl", package_rows(30, seed=2))
    _, out1, _ = _run(capsys, "ingest", str(first), "--dataset", "packages")
    _, out2, _ = _run(capsys, "ingest", str(second), "--dataset", "packages")
    older, newer = _snapshot_of(out1), _snapshot_of(out2)
    code, out, _ = _run(capsys, "validate", "--dataset", "packages")
    assert code == 0 and f"snapshot {newer} of packages" in out
    assert _report(allow_tmp, "packages", newer)["status"] == "passed"
    assert DatasetStore(str(allow_tmp / "store")).read_validation("packages", older) is None
    code, out, _ = _run(capsys, "validate", "--dataset", "packages", "--snapshot", older)
    assert code == 0 and f"snapshot {older} of packages" in out

    code, out, err = _run(capsys, "validate", "--dataset", "packages", "--snapshot", "a" * 32)
    assert code == 2 and out == "" and "not found" in err
    code, _, err = _run(capsys, "validate", "--dataset", "packages", "--snapshot", "../x")
    assert code == 2 and "invalid snapshot id" in err
    code, _, err = _run(capsys, "validate", "--dataset", "packages", "--suite", "nope")
    assert code == 2 and "available suites: ['generic', 'support_tickets']" in err
    for path in ("../../etc/passwd", "/etc/passwd", str(first)):
        code, _, err = _run(capsys, "validate", "--dataset", "packages", "--suite", path)
        assert code == 2 and "never by path" in err


def test_validate_notes_skipped_label_checks_on_unlabelled_data(
    home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]
):
    rows = [{k: v for k, v in r.items() if k != "label"} for r in package_rows(25)]
    _run(capsys, "ingest", str(_write_jsonl(allow_tmp / "nolabels.jsonl", rows)), "--dataset", "nolabels")
    code, out, _ = _run(capsys, "validate", "--dataset", "nolabels")
    assert code == 0 and "6 passed, 0 failed, 1 skipped of 7 expectations on 25 rows" in out
    assert "  skipped  expect_column_values_to_not_be_null on column 'label': skipped: the batch has no labels" in out


# --- suite init -----------------------------------------------------------------------------------------------


def _mangled(sample_dir: Path, target: Path) -> Path:
    rows = [json.loads(line) for line in (sample_dir / "tickets_batch_same.jsonl").read_text().splitlines()[:400]]
    for i, row in enumerate(rows):
        if i % 10 == 0:
            row["label"] = "refund_maybe"  # a label the reference never had
        if i % 4 == 0:
            row["channel"] = None  # 25% without channel (reference: 0%)
    rows[5]["text"] = "x" * 3000  # far longer than any reference text
    return _write_jsonl(target, rows)


def test_suite_init_profiles_the_reference_into_a_usable_suite(
    home: Path, allow_tmp: Path, sample_dir: Path, capsys: pytest.CaptureFixture[str]
):
    reference = str(sample_dir / "tickets_reference.jsonl")
    code, out, _ = _run(capsys, "suite", "init", "--from", reference)
    target = home / "expectations" / "tickets_reference.json"
    assert code == 0 and f"to {target}" in out and "3000 rows" in out
    assert "use it: llmops validate --dataset DATASET --suite tickets_reference" in out
    suite = json.loads(target.read_text())
    by_key = {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}
    labels = by_key[("expect_column_values_to_be_in_set", "label")]
    assert labels["when"] == "labelled" and labels["kwargs"]["value_set"] == [
        "account_access",
        "billing",
        "cancellation",
        "product_inquiry",
        "returns_refunds",
        "shipping_delivery",
        "technical_support",
    ]
    channels = by_key[("expect_column_values_to_be_in_set", "channel")]["kwargs"]["value_set"]
    assert channels == ["chat", "email", "phone_transcript", "web_form"]
    assert by_key[("expect_column_values_to_not_be_null", "channel")]["kwargs"]["mostly"] == 0.95
    lengths = by_key[("expect_column_values_to_be_between", "text_length")]["kwargs"]
    assert 10 <= lengths["min_value"] <= 20 and 300 <= lengths["max_value"] <= 400  # p0.1 ~38 / 2, p99.9 ~165 * 2
    assert by_key[("expect_table_row_count_to_be_between", None)]["kwargs"] == {"min_value": 30, "max_value": 300000}
    assert ("expect_column_values_to_be_in_set", "id") not in by_key  # unique values: no value set
    assert ("expect_column_values_to_be_in_set", "text") not in by_key

    code, _, err = _run(capsys, "suite", "init", "--from", reference)
    assert code == 2 and "already exists; pass --force" in err
    assert _run(capsys, "suite", "init", "--from", reference, "--force")[0] == 0

    _, out, _ = _run(capsys, "ingest", str(sample_dir / "tickets_batch_same.jsonl"), "--dataset", "tickets")
    code, out, _ = _run(capsys, "validate", "--dataset", "tickets", "--suite", "tickets_reference")
    assert code == 0, out
    assert f"with suite tickets_reference (by argument): {len(suite['expectations'])} passed, 0 failed" in out

    _, out, _ = _run(capsys, "ingest", str(_mangled(sample_dir, allow_tmp / "mangled.jsonl")), "--dataset", "tickets")
    code, out, _ = _run(capsys, "validate", "--dataset", "tickets", "--suite", "tickets_reference")
    assert code == 1
    assert _failed_lines(out) == [
        "expect_column_values_to_be_between on column 'text_length'",
        "expect_column_values_to_be_in_set on column 'label'",
        "expect_column_values_to_not_be_null on column 'channel'",
    ]


def test_suite_init_from_a_snapshot_and_its_refusals(home: Path, allow_tmp: Path, capsys: pytest.CaptureFixture[str]):
    source = _write_jsonl(allow_tmp / "packages.jsonl", package_rows(300))
    _, out, _ = _run(capsys, "ingest", str(source), "--dataset", "packages")
    snapshot_id = _snapshot_of(out)
    code, out, _ = _run(capsys, "suite", "init", "--from", f"packages/{snapshot_id}")
    assert code == 0 and f"profiled from snapshot {snapshot_id} of packages" in out
    suite = json.loads((home / "expectations" / "packages.json").read_text())
    by_key = {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}
    assert by_key[("expect_column_values_to_be_in_set", "label")]["kwargs"]["value_set"] == sorted(CATEGORIES)
    licenses = by_key[("expect_column_values_to_be_in_set", "license")]["kwargs"]["value_set"]
    assert licenses == ["Apache-2.0", "BSD-3-Clause", "MIT"]
    code, out, _ = _run(capsys, "validate", "--dataset", "packages", "--suite", "packages")
    assert code == 0, out
    elsewhere = str(allow_tmp / "elsewhere")
    args = ["--from", snapshot_id, "--dataset", "packages", "--name", "pk2", "--out", elsewhere]
    code, out, _ = _run(capsys, "suite", "init", *args)
    assert code == 0 and (allow_tmp / "elsewhere" / "pk2.json").is_file()
    assert "is not in [llmops] suites_dirs" in out  # written, but not usable by name until configured

    code, _, err = _run(capsys, "suite", "init", "--from", str(source), "--name", "support_tickets")
    assert code == 2 and "already exists at" in err and "choose another --name" in err
    code, _, err = _run(capsys, "suite", "init", "--from", str(source), "--name", "../evil")
    assert code == 2 and "never by path" in err
    code, _, err = _run(capsys, "suite", "init", "--from", "not-a-file-or-snapshot")
    assert code == 2 and "neither a file nor a snapshot" in err
    code, _, err = _run(capsys, "suite", "init", "--from", "f" * 32, "--dataset", "packages")
    assert code == 2 and "not found" in err


@pytest.mark.slow
def test_console_script_ingests_and_validates(allow_tmp: Path):
    env = {
        "AIRFLOW__LLMOPS__HOME": str(allow_tmp / "home"),
        "AIRFLOW__LLMOPS__ALLOWED_ROOTS": str(allow_tmp),
        "AIRFLOW__LLMOPS__STORE_URI": str(allow_tmp / "store"),
    }
    source = _write_jsonl(allow_tmp / "packages.jsonl", package_rows(300))
    ingest = run_cli("llmops", "ingest", str(source), "--dataset", "packages", env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert "300 read, 300 accepted, 0 quarantined" in ingest.stdout
    validate = run_cli("llmops", "validate", "--dataset", "packages", env=env)
    assert validate.returncode == 0, validate.stderr
    assert "with suite generic (by default_suite): 7 passed, 0 failed" in validate.stdout
    assert validate.stdout.count("\n") == 1  # one summary line, no library logging on stdout


def test_global_home_option_is_the_home_of_these_commands(
    home: Path, allow_tmp: Path, sample_dir: Path, capsys: pytest.CaptureFixture[str]
):
    other = allow_tmp / "other_home"
    code, out, _ = _run(capsys, "--home", str(other), "suite", "init", "--from", str(sample_dir / "golden.jsonl"))
    assert code == 0 and (other / "expectations" / "golden.json").is_file()
    assert not (home / "expectations" / "golden.json").exists()
    assert "use it: llmops validate --dataset DATASET --suite golden" in out  # <home>/expectations is searched
