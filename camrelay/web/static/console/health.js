// Each camera's health for the status badges: status, reason and since when, first from
// GET /api/v1/health (the cameras of the user's subtree), then from the live channel's
// camera.status events; and the words for reasons, findings and durations.
import * as api from "./api.js";
import { t } from "./i18n.js";

// A reason code or a finding kind in a few words ("unreachable" → 无法连接).
export function why(reason) {
  if (!reason) return "";
  const key = `why.${reason}`;
  const text = t(key);
  return text === key ? String(reason) : text;
}

// How long, in words: 45 秒, 12 分钟, 2 小时 05 分, 3 天 4 小时.
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return t("dur.s", { n: s });
  if (s < 3600) return t("dur.m", { n: Math.floor(s / 60) });
  if (s < 86400) {
    return t("dur.hm", { h: Math.floor(s / 3600), m: String(Math.floor(s / 60) % 60).padStart(2, "0") });
  }
  return t("dur.dh", { d: Math.floor(s / 86400), h: Math.floor(s / 3600) % 24 });
}

const BAD = new Set(["offline", "fault"]);

export class Health {
  constructor() {
    this.byCamera = new Map();  // camera id => { status, reason, findings, since (ms) }
  }

  async load() {
    const found = await api.request("/api/v1/health");
    const now = Date.now();
    for (const c of found) {
      this.byCamera.set(c.camera_id, {
        status: c.status, reason: c.reason || null, findings: c.findings || [],
        // the server's "seconds" is measured on its clock: no skew between the two
        since: c.seconds === null || c.seconds === undefined ? null : now - c.seconds * 1000,
      });
    }
  }

  // A camera.status event: a changed status starts its time now.
  update(cameraId, status, reason) {
    const old = this.byCamera.get(cameraId);
    const changed = !old || old.status !== status;
    this.byCamera.set(cameraId, {
      status,
      reason: BAD.has(status) ? (reason ?? (changed ? null : old.reason)) : null,
      findings: changed ? [] : old.findings,
      since: changed ? (BAD.has(status) ? Date.now() : null) : old.since,
    });
  }

  // The badge of a camera whose catalogue status is `status`: null when it is fine.
  badge(cameraId, status) {
    if (!BAD.has(status)) return null;
    const known = this.byCamera.get(cameraId);
    const h = known && known.status === status ? known : { reason: null, since: null };
    const short = h.reason ? why(h.reason) : t(`status.${status}`);
    let title = t(`status.${status}`);
    if (h.reason) title = t("health.reason", { status: title, reason: why(h.reason) });
    if (h.since) {
      title = t("health.since", { text: title, duration: duration((Date.now() - h.since) / 1000) });
    }
    return { status, short, title };
  }
}
