"""HTML of the LLMOps view: one self-contained page (inline CSS, inline SVG line plots, no script, nothing loaded
from elsewhere). Every value that comes from the registry, the store or a request is escaped with `html.escape`
(text and attributes); URLs are built from escaped, percent-quoted parts only.

Drift plot: one small SVG per feature; x = the snapshot's position in time order, y = the drift statistic scaled
to the plot's height from 0 to max(value); a point is red when that snapshot's report decided drift for the
feature; each point has a `<title>` (snapshot, time, value) as its tooltip.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from airflow_provider_llmops.plugins.state import AuditState, DatasetState, DriftPoint, ModelState

PLOT_W, PLOT_H, PAD = 260, 70, 6

CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#1a202c;background:#fff}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #cbd5e0}h3{font-size:1em}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #cbd5e0;padding:3px 7px;text-align:left;
vertical-align:top;font-size:.9em}th{background:#edf2f7}.ok{color:#276749;font-weight:600}
.bad{color:#c53030;font-weight:600}.muted{color:#718096}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #cbd5e0;border-radius:6px;padding:8px 10px;width:340px;overflow-wrap:anywhere}
.alias{font-weight:700;text-transform:uppercase;font-size:.8em;color:#2b6cb0}
a.button{display:inline-block;padding:5px 12px;margin:4px 6px 4px 0;border-radius:4px;background:#2b6cb0;
color:#fff;text-decoration:none}a.button.danger{background:#c53030}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{font-size:.85em}
"""


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _verdict(value: str | None, good: Iterable[str]) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    css = "ok" if value in good else "bad"
    return f'<span class="{css}">{e(value)}</span>'


def sparkline(points: list[DriftPoint], label: str) -> str:
    """An inline SVG line plot of one feature's drift statistic over the snapshots."""
    top = max([p.value for p in points] + [1e-12])
    step = (PLOT_W - 2 * PAD) / max(len(points) - 1, 1)

    def xy(i: int, p: DriftPoint) -> tuple[float, float]:
        return PAD + i * step, PLOT_H - PAD - (p.value / top) * (PLOT_H - 2 * PAD)

    coords = [xy(i, p) for i, p in enumerate(points)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{"#c53030" if p.drift else "#2b6cb0"}">'
        f"<title>{e(p.snapshot_id)} {e(p.created_at)}: {p.value:.4g}{' drift' if p.drift else ''}</title></circle>"
        for (x, y), p in zip(coords, points, strict=True)
    )
    return (
        f'<svg class="drift-plot" data-feature="{e(label)}" width="{PLOT_W}" height="{PLOT_H}" '
        f'viewBox="0 0 {PLOT_W} {PLOT_H}" role="img" aria-label="{e(label)}">'
        f'<rect width="{PLOT_W}" height="{PLOT_H}" fill="#f7fafc" stroke="#cbd5e0"/>'
        f'<polyline points="{line}" fill="none" stroke="#2b6cb0" stroke-width="1.5"/>{dots}</svg>'
    )


def _version_card(card, ui_base: str) -> str:
    metrics = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in card.metrics.items())
    metrics = f"<table>{metrics}</table>" if metrics else '<div class="muted">no evaluation metrics</div>'
    gate = _verdict(card.gate, ("pass", "passed"))
    web = card.url and card.url.lower().startswith(("http://", "https://"))  # never a javascript: or data: link
    link = f' <a href="{e(card.url)}" target="_blank" rel="noopener">MLflow</a>' if web else ""
    run = ""
    if card.dag_id and card.dag_run_id:
        run_url = f"{ui_base}/dags/{quote(card.dag_id, safe='')}/runs/{quote(card.dag_run_id, safe='')}"
        run = f'<div>made by <a href="{e(run_url)}" target="_top">{e(card.dag_id)} / {e(card.dag_run_id)}</a></div>'
    reasons = f'<div class="muted">{e(card.gate_reasons)}</div>' if card.gate_reasons else ""
    promoted = f"<div>promoted at {e(card.promoted_at)}</div>" if card.promoted_at else ""
    snapshots = f"<div>trained on {e(', '.join(card.snapshots))}</div>" if card.snapshots else ""
    return (
        f'<div class="card" data-alias="{e(card.alias)}"><div class="alias">{e(card.alias)}</div>'
        f"<div>version <b>{e(card.version)}</b>{link}</div><div>gate: {gate}</div>{reasons}{promoted}{run}"
        f"{snapshots}{metrics}</div>"
    )


def model_section(model: ModelState, ui_base: str, triggers: dict[str, str]) -> str:
    """One model: its alias cards and the buttons that open the DAG pages whose Trigger form retrains or rolls
    back (`triggers`: label -> DAG id, only those the user may trigger)."""
    parts = [f'<section class="model" id="model-{e(model.name)}"><h2>Model {e(model.name)}</h2>']
    if model.error:
        parts.append(f'<div class="bad">{e(model.error)}</div>')
    if model.canary_share:
        parts.append(f"<div>canary traffic share: {e(model.canary_share)}</div>")
    for label, dag_id in triggers.items():
        css = "button danger" if "roll" in label.lower() else "button"
        url = f"{ui_base}/dags/{quote(dag_id, safe='')}"
        parts.append(
            f'<a class="{css}" data-dag="{e(dag_id)}" href="{e(url)}" target="_top" '
            f'title="opens the DAG; its Trigger button shows the Params form">{e(label)}</a>'
        )
    if model.versions:
        parts.append('<div class="cards">' + "".join(_version_card(c, ui_base) for c in model.versions) + "</div>")
    elif not model.error:
        parts.append('<div class="muted">no version has an alias yet (run llmops_retrain)</div>')
    parts.append("</section>")
    return "".join(parts)


def dataset_section(dataset: DatasetState, report_base: str) -> str:
    parts = [f'<section class="dataset" id="dataset-{e(dataset.name)}"><h2>Dataset {e(dataset.name)}</h2>']
    if dataset.error:
        parts.append(f'<div class="bad">{e(dataset.error)}</div>')
    if dataset.series:
        parts.append(f"<h3>Drift per feature over time ({e(dataset.statistic)}; red: drift decided)</h3>")
        plots = "".join(
            f'<div class="plot"><div>{e(feature)}: last {points[-1].value:.4g}</div>{sparkline(points, feature)}</div>'
            for feature, points in dataset.series.items()
        )
        parts.append(f'<div class="plots">{plots}</div>')
    rows = []
    for row in reversed(dataset.snapshots[-10:]):
        links = " ".join(
            f'<a href="{e(report_base)}/{quote(row.dataset, safe="")}/{quote(row.snapshot_id, safe="")}/'
            f'{quote(name, safe="")}" target="_blank">{e(name)}</a>'
            for name in row.reports
        )
        rows.append(
            f'<tr class="snapshot" data-snapshot="{e(row.snapshot_id)}"><td><code>{e(row.snapshot_id)}</code></td>'
            f"<td>{e(row.created_at)}</td><td>{e(row.accepted)}</td><td>{e(row.quarantined)}</td>"
            f"<td>{_verdict(row.validation, ('passed',))}</td><td>{_verdict(row.drift, ('no_drift',))}</td>"
            f"<td>{e(', '.join(row.drifting_features))}</td><td>{links}</td></tr>"
        )
    if rows:
        parts.append(
            "<h3>Last snapshots</h3><table><tr><th>snapshot</th><th>created</th><th>accepted</th><th>quarantined</th>"
            "<th>validation</th><th>drift</th><th>drifting features</th><th>reports</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    elif not dataset.error:
        parts.append('<div class="muted">no snapshot yet (run llmops_ingest_validate)</div>')
    parts.append("</section>")
    return "".join(parts)


def audit_section(audit: AuditState | None, error: str | None = None) -> str:
    body = f'<div class="bad">{e(error)}</div>' if error else ""
    if audit is not None:
        css = "ok" if audit.ok else "bad"
        body += (
            f'<div id="audit-status">chain: <span class="{css}">{e(audit.status)}</span>, {e(audit.records)} '
            f"records{'' if audit.last_seq is None else f', last seq {e(audit.last_seq)}'}"
            f' <span class="muted">({e(audit.reason)}; {e(audit.path)})</span></div>'
        )
    return f'<section id="audit"><h2>Audit trail</h2>{body}</section>'


def page(title: str, sections: list[str], note: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{CSS}</style></head><body><h1>{e(title)}</h1>"
        f"{f'<p class=muted>{e(note)}</p>' if note else ''}{''.join(sections)}</body></html>"
    )
