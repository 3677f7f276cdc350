"""A drill's report as one self-contained HTML page (Chinese first, English labels).

Charts are SVG drawn here on the server: a bar per unit (online / faulty / unchecked)
and a strip per unit of the time to the first keyframe (median and worst).  Every text
from the catalogue is escaped; the page has no script, no external resource, and its one
style block is allowed by its hash in the page's Content-Security-Policy (``CSP``).
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "th{background:#f2f2f2}.en{color:#666;font-size:.85em;font-weight:normal}"
    ".bad{color:#b00}"
)
CSP = ("default-src 'none'; style-src 'sha256-"
       + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
       + "'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

ONLINE, FAULTY, UNCHECKED = "#2e7d32", "#c62828", "#9e9e9e"
REASONS = {
    "unreachable": "无法连接", "timeout": "超时", "auth": "认证失败", "no_video": "无视频",
    "decode": "无法解码", "error": "异常", "black": "黑屏", "no_signal": "无信号",
    "frozen": "画面冻结", "blur": "模糊", "occluded": "遮挡", "overexposed": "过曝",
    "underexposed": "过暗", "colour_cast": "偏色", "noise": "噪声", "offline": "离线",
    "fault": "故障",
}


def _t(zh: str, en: str) -> str:
    return f'{zh} <span class="en">{en}</span>'


def _reason(reason: str | None) -> str:
    if not reason:
        return "-"
    zh = REASONS.get(reason)
    return escape(f"{zh} ({reason})" if zh else reason)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _bars(units: list[dict[str, Any]]) -> str:
    """One horizontal bar per unit: online, faulty, unchecked, scaled to the largest."""
    row, label, width = 24, 220, 420
    most = max((u["total"] for u in units), default=0) or 1
    height = row * len(units) + 10
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 60}" '
             f'height="{height}" role="img" aria-label="online and faulty per unit">')]
    for i, unit in enumerate(units):
        y = 5 + i * row
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">'
                     f'{escape(unit["name"])} ({escape(unit["unit"])})</text>')
        x = float(label)
        for count, colour in ((unit["online"], ONLINE), (unit["faulty"], FAULTY),
                              (unit["unchecked"], UNCHECKED)):
            w = width * count / most
            if w > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" '
                             f'fill="{colour}"><title>{count}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="12">'
                     f'{unit["online"]}/{unit["total"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _strip(units: list[dict[str, Any]]) -> str:
    """Per unit a line from 0 to the worst time to first frame, a dot at the median."""
    row, label, width = 24, 220, 420
    worst = max((u["first_frame"]["worst"] or 0 for u in units), default=0) or 1.0
    height = row * len(units) + 24
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{label + width + 80}" '
             f'height="{height}" role="img" aria-label="time to first frame per unit">')]
    for i, unit in enumerate(units):
        y = 5 + i * row + 9
        parts.append(f'<text x="0" y="{y + 4}" font-size="12">'
                     f'{escape(unit["name"])} ({escape(unit["unit"])})</text>')
        median, top = unit["first_frame"]["median"], unit["first_frame"]["worst"]
        if top is None:
            continue
        x_top = label + width * top / worst
        parts.append(f'<line x1="{label}" y1="{y}" x2="{x_top:.1f}" y2="{y}" '
                     f'stroke="#1565c0" stroke-width="2"/>')
        parts.append(f'<circle cx="{label + width * median / worst:.1f}" cy="{y}" r="5" '
                     f'fill="#1565c0"><title>median {median:.2f} s</title></circle>')
        parts.append(f'<text x="{x_top + 6:.1f}" y="{y + 4}" font-size="12">'
                     f'{top:.2f} s</text>')
    axis_y = height - 6
    parts.append(f'<text x="{label}" y="{axis_y}" font-size="11">0 s</text>'
                 f'<text x="{label + width - 30}" y="{axis_y}" font-size="11">'
                 f'{worst:.2f} s</text></svg>')
    return "".join(parts)


def render(drill: dict[str, Any]) -> str:
    """The page of a drill as returned by ``camrelay.health.drills.drill_json``."""
    report = drill.get("report") or {}
    head = (f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<title>巡检演练报告 Drill report #{drill["id"]}</title>'
            f"<style>{STYLE}</style></head><body>"
            f"<h1>{_t('巡检演练报告', 'Drill report')} #{drill['id']}</h1>"
            f"<p>{_t('单位', 'Unit')}: {escape(str(report.get('unit_name', '')))} "
            f"({escape(drill['unit'])}) · {_t('开始', 'Started')}: "
            f"{escape(drill['started_at'] or '-')} · {_t('结束', 'Finished')}: "
            f"{escape(drill['finished_at'] or '-')} · {_t('发起', 'By')}: "
            f"{escape(drill['started_by'] or '定时 schedule')} · "
            f"{_t('状态', 'State')}: {escape(drill['state'])}</p>")
    if drill["state"] != "done":
        error = report.get("error")
        body = f"<p>{escape(str(error))}</p>" if error else ""
        return head + body + "</body></html>"
    totals, units = report["totals"], report["units"]
    rows = "".join(
        f"<tr><td>{escape(u['name'])} ({escape(u['unit'])})</td><td>{u['total']}</td>"
        f"<td>{u['online']}</td><td>{u['faulty']}</td><td>{u['unchecked']}</td>"
        f"<td>{', '.join(f'{_reason(k)}: {v}' for k, v in u['reasons'].items()) or '-'}</td>"
        f"<td>{_seconds(u['first_frame']['median'])}</td>"
        f"<td>{_seconds(u['first_frame']['worst'])}</td>"
        f"<td>{_share(u['availability_week'])}</td></tr>" for u in units)
    broken = "".join(
        f"<tr><td>{b['camera_id']}</td><td>{escape(b['name'])}</td>"
        f"<td>{escape(b['unit'])}</td><td class=\"bad\">{escape(b['status'])}</td>"
        f"<td>{_reason(b['reason'])}</td><td>"
        + escape(", ".join(f"{f.get('kind')}={f.get('value')}" for f in b["findings"]))
        + "</td></tr>" for b in report["broken"])
    return (head
            + f"<p>{_t('摄像机', 'Cameras')}: {totals['total']} · {_t('在线', 'Online')}: "
            f"{totals['online']} · {_t('故障', 'Faulty')}: {totals['faulty']} · "
            f"{_t('未检', 'Unchecked')}: {totals['unchecked']} · "
            f"{_t('近一周可用率', 'Availability, last week')}: "
            f"{_share(totals['availability_week'])}</p>"
            f"<h2>{_t('各单位在线情况', 'Online and faulty per unit')}</h2>{_bars(units)}"
            f"<h2>{_t('首帧时间', 'Time to first frame')}</h2>{_strip(units)}"
            f"<h2>{_t('各单位明细', 'Per unit')}</h2><table><tr>"
            f"<th>{_t('单位', 'Unit')}</th><th>{_t('总数', 'Total')}</th>"
            f"<th>{_t('在线', 'Online')}</th><th>{_t('故障', 'Faulty')}</th>"
            f"<th>{_t('未检', 'Unchecked')}</th><th>{_t('原因', 'Reasons')}</th>"
            f"<th>{_t('首帧中位', 'First frame, median')}</th>"
            f"<th>{_t('首帧最慢', 'First frame, worst')}</th>"
            f"<th>{_t('近一周可用率', 'Availability, week')}</th></tr>{rows}</table>"
            f"<h2>{_t('故障摄像机', 'Broken cameras')}</h2><table><tr>"
            f"<th>ID</th><th>{_t('名称', 'Name')}</th><th>{_t('单位', 'Unit')}</th>"
            f"<th>{_t('状态', 'Status')}</th><th>{_t('原因', 'Reason')}</th>"
            f"<th>{_t('诊断', 'Findings')}</th></tr>{broken}</table></body></html>")
