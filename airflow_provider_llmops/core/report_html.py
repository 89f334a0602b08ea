"""A self-contained HTML page for a drift report: verdicts, rules and per-feature histograms (inline SVG)."""

from __future__ import annotations

import html
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem} table{border-collapse:collapse}
td,th{padding:.25rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left;font-size:.9rem}
.drift{color:#b3261e;font-weight:600} .ok{color:#1b7a35} .muted{color:#667085;font-size:.85rem}
.feature{margin-top:1.5rem} svg text{font-size:10px;fill:#1d2330}
.legend span{display:inline-block;width:10px;height:10px;margin:0 .3rem 0 1rem}
"""


def _bars(bins: list[str], reference: list[float], current: list[float]) -> str:
    width, height, pad = 900, 170, 30
    n = max(len(bins), 1)
    slot = (width - pad) / n
    top = max(max(reference, default=0), max(current, default=0), 1e-9)
    parts = [f'<svg width="{width}" height="{height + 40}" role="img">']
    for i, (label, r, c) in enumerate(zip(bins, reference, current, strict=True)):
        x = pad + i * slot
        for j, (value, colour) in enumerate(((r, "#7f8ea3"), (c, "#d9822b"))):
            h = height * value / top
            parts.append(
                f'<rect x="{x + j * slot * 0.42 + slot * 0.08:.1f}" y="{height - h:.1f}" '
                f'width="{slot * 0.4:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{html.escape(label)}: {value:.3%}</title></rect>"
            )
        short = label if len(label) <= 14 else label[:13] + "…"
        parts.append(f'<text x="{x + slot / 2:.1f}" y="{height + 14}" text-anchor="middle">{html.escape(short)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(report: dict[str, Any], title: str) -> str:
    verdict = report["verdict"]
    css = "drift" if report["drift"] else "ok"
    rows = []
    for name, feature in report["features"].items():
        scores, decision = feature["scores"], feature["verdict"]
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{scores['psi']:.4f}</td><td>{feature['psi_band']}</td><td>{scores['js']:.4f}</td>"
            f"<td>{scores['kl']:.4f}</td><td>{scores['kl_symmetric']:.4f}</td>"
            f'<td class="{"drift" if decision["drift"] else "ok"}">{"drift" if decision["drift"] else "ok"}</td>'
            f'<td class="muted">{html.escape(decision["rule"])}</td></tr>'
        )
    charts = []
    for name, feature in report["features"].items():
        hist = feature["histogram"]
        charts.append(
            f'<div class="feature"><h3>{html.escape(name)} '
            f'<span class="muted">({feature["kind"]}, {feature["rows"]} rows)</span></h3>'
            f"{_bars(hist['bins'], hist['reference'], hist['current'])}</div>"
        )
    embedding = report.get("embedding")
    embedding_html = '<p class="muted">not computed</p>'
    if embedding:
        embedding_html = (
            f'<p class="{"drift" if embedding["drift"] else "ok"}">'
            f"{'drift' if embedding['drift'] else 'no drift'}: {html.escape(embedding['rule'])}</p>"
            f"<p>centroid cosine distance {embedding['centroid_cosine_distance']:.4f} · MMD² {embedding['mmd2']:.5f} · "
            f"permutation p {embedding['mmd_pvalue']:.4f} · domain classifier AUC {embedding['domain_auc']:.3f} · "
            f"{embedding['rows']} current texts · {html.escape(str(embedding.get('model', '')))}</p>"
        )
    rules = report["rules"]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n"
        f'<h1>{html.escape(title)}: <span class="{css}">{verdict}</span></h1>\n'
        f"<p>{report['rows']} rows scored against reference profile "
        f"<code>{html.escape(report['reference']['profile_id'])}</code>\n"
        f"({report['reference']['rows']} reference rows). Verdict statistic <b>{rules['statistic']}</b>, "
        f"mode <b>{rules['mode']}</b>:\n"
        "a feature drifts when it exceeds its fixed threshold and/or its calibrated threshold: "
        f"the larger of mean + {rules['sigmas']:g}σ and\n"
        "the 99.5th percentile of the statistic between the reference and "
        f"{rules['draws']} samples of this batch's size drawn from it.\n"
        f"Batches under {rules['min_rows']} rows get no verdict. "
        f"Empty bins are smoothed with ε = {rules['epsilon']:g}.</p>\n"
        f"<p>Drifting features: <b>{html.escape(', '.join(report['drifting_features']) or 'none')}</b> · "
        f"share of words unseen in training: {report['batch']['word_oov_share']:.2%}</p>\n"
        "<table><tr><th>feature</th><th>PSI</th><th>band</th><th>JS distance</th><th>KL(ref‖cur)</th>"
        f"<th>KL symmetric</th><th>verdict</th><th>rule</th></tr>{''.join(rows)}</table>\n"
        f"<h2>Embedding drift</h2>{embedding_html}\n"
        '<h2>Histograms</h2><p class="legend"><span style="background:#7f8ea3"></span>reference'
        '<span style="background:#d9822b"></span>current</p>\n'
        f"{''.join(charts)}\n"
        "</body></html>"
    )


def _num(value: Any) -> str:
    return "–" if value is None else (f"{value:.4f}" if isinstance(value, float) else html.escape(str(value)))


def render_evaluation(report: dict[str, Any]) -> str:
    """Champion vs challenger: headline metrics, per evaluation part, per class, group gaps."""
    summary, results = report["summary"], report["results"]
    roles = [r for r in ("champion", "challenger") if r in results]
    head = "".join(f"<th>{r} v{html.escape(str(summary[r + '_version']))}</th>" for r in roles)
    metric_names = [m for m in results["challenger"]["metrics"] if "." not in m]
    rows = "".join(
        f"<tr><td>{html.escape(m)}</td>"
        + "".join(f"<td>{_num(results[r]['metrics'].get(m))}</td>" for r in roles)
        + "</tr>"
        for m in metric_names
    )
    sections = [f"<h2>Headline</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>"]
    if "parts" in results["challenger"]:
        part_rows = ""
        for part, metrics in results["challenger"]["parts"].items():
            cells = "".join(
                f"<td>{_num(results[r]['parts'].get(part, {}).get('macro_f1'))} / "
                f"{_num(results[r]['parts'].get(part, {}).get('accuracy'))}</td>"
                for r in roles
            )
            part_rows += f"<tr><td>{html.escape(part)} ({metrics['n']} rows)</td>{cells}</tr>"
        sections.append(
            f"<h2>By evaluation part (macro-F1 / accuracy)</h2><table><tr><th>part</th>{head}</tr>{part_rows}</table>"
        )
        class_rows = ""
        for label in report.get("labels", []):
            cells = "".join(
                f"<td>{_num(results[r]['overall']['per_class'].get(label, {}).get('f1'))}</td>" for r in roles
            )
            support = results["challenger"]["overall"]["per_class"].get(label, {}).get("support")
            class_rows += f"<tr><td>{html.escape(label)} ({support})</td>{cells}</tr>"
        sections.append(f"<h2>Per-class F1</h2><table><tr><th>class (support)</th>{head}</tr>{class_rows}</table>")
        gap_rows = ""
        for role in roles:
            for column, info in results[role]["fairness"].get("columns", {}).items():
                groups = ", ".join(
                    f"{html.escape(str(g))}={_num(v['value'])} (n={v['n']})" for g, v in info["groups"].items()
                )
                gap_rows += (
                    f"<tr><td>{role}</td><td>{html.escape(column)}</td><td>{_num(info['gap'])}</td>"
                    f"<td class='muted'>{groups}</td></tr>"
                )
        sections.append(
            f"<h2>Group gaps ({html.escape(str(results['challenger']['fairness'].get('metric', 'macro_f1')))})</h2>"
            f"<table><tr><th>model</th><th>column</th><th>gap</th><th>groups</th></tr>{gap_rows}</table>"
        )
    eval_set = summary["eval_set"]
    title = (
        f"Evaluation of {summary['model_name']}: challenger v{summary['challenger_version']} vs champion "
        f"{('v' + str(summary['champion_version'])) if summary['champion_version'] else '(none)'}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='muted'>evaluation set {eval_set['id'][:12]}: {eval_set['rows']} rows "
        + html.escape(", ".join(f"{k}={v}" for k, v in eval_set["parts"].items()))
        + "</p>"
        + "".join(sections)
        + "</body></html>"
    )
