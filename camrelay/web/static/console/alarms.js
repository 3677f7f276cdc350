// The alarm bell in the top bar and its panel: the active alarms routed to the user's
// units (GET /api/v1/alarms?active=true, then the live channel's alarm.raised / cleared
// / acked), newest first, each with its camera, what it is in words, its severity, since
// when and how often it was seen; a row puts its camera on the selected tile; an alarm
// is acknowledged here with a comment (POST /api/v1/alarms/{id}/ack).
import * as api from "./api.js";
import { el, input, when } from "./dom.js";
import { t } from "./i18n.js";
import { duration, why } from "./health.js";

const NO_ACK = new Set(["auditor"]);  // auditors read alarms, they do not handle them

// What an alarm is, in words: 离线：无法连接 / 画面诊断：模糊（测得 12.3，阈值 50）/ 视频遮挡.
export function alarmText(alarm) {
  const dot = alarm.kind.indexOf(".");
  const family = dot < 0 ? alarm.kind : alarm.kind.slice(0, dot);
  const detail = dot < 0 ? "" : alarm.kind.slice(dot + 1);
  const value = alarm.value || {};
  if (family === "offline") return t("alarm.offline", { reason: why(alarm.reason) || "—" });
  if (family === "fault") return t("alarm.fault", { reason: why(detail || alarm.reason) });
  if (family === "finding") {
    const measured = typeof value.value === "number"
      ? t("alarm.measured", { value: value.value, threshold: value.threshold ?? "—" }) : "";
    return t("alarm.finding", { finding: why(detail), measured });
  }
  if (family === "onvif") {
    const key = `alarm.onvif.${detail}`;
    const text = t(key);
    return text === key ? t("alarm.onvif", { topic: alarm.reason || detail }) : text;
  }
  return alarm.kind;
}

export class AlarmPanel {
  constructor({ bell, panel, list, message, user, cameraName, unitName, onPick }) {
    this.bell = bell;
    this.panel = panel;
    this.list = list;
    this.message = message;
    this.user = user;              // () => the signed-in user
    this.cameraName = cameraName;  // id => name (the tree's, or #id)
    this.unitName = unitName;
    this.onPick = onPick;          // camera id => put it on the selected tile
    this.alarms = new Map();       // id => alarm (active only)
    this.drafts = new Map();       // id => the comment being typed
    bell.addEventListener("click", () => this.toggle());
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { this.toggle(false); bell.focus(); }
    });
    this.timer = setInterval(() => { if (!this.panel.hidden) this.render(); }, 30000);
  }

  async load() {
    const found = await api.request("/api/v1/alarms?active=true");
    this.alarms = new Map(found.filter((a) => a.active).map((a) => [a.id, a]));
    this.render();
  }

  clear() { this.alarms.clear(); this.drafts.clear(); this.toggle(false); this.render(); }

  // alarm.raised / alarm.cleared / alarm.acked from the live channel
  event(kind, alarm) {
    if (kind === "alarm.cleared" || !alarm.active) {
      this.alarms.delete(alarm.id);
      this.drafts.delete(alarm.id);
    } else {
      this.alarms.set(alarm.id, alarm);
    }
    this.render();
  }

  unacked() { return [...this.alarms.values()].filter((a) => !a.ack).length; }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.bell.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      this.render();
      const first = this.list.querySelector("button, input");
      (first || this.panel.querySelector("h2")).focus();
    }
  }

  say(text) { this.message.textContent = text; }

  async ack(alarm, comment) {
    if (!comment) { this.say(t("alarm.ack.empty")); return; }
    try {
      const done = await api.post(`/api/v1/alarms/${Number(alarm.id)}/ack`, { comment });
      this.drafts.delete(alarm.id);
      this.event("alarm.acked", done);
      this.say(t("alarm.ack.done", { camera: this.cameraName(alarm.camera_id) }));
    } catch (err) {
      this.say(t("admin.failed", { reason: err.message }));
    }
  }

  render() {
    const count = this.unacked();
    const counter = this.bell.querySelector(".bell-count");
    counter.textContent = String(count);
    this.bell.dataset.count = String(count);
    this.bell.querySelector(".bell-label").textContent = t("alarm.title");
    this.bell.setAttribute("aria-label", t("alarm.bell", { count, total: this.alarms.size }));
    this.bell.title = this.bell.getAttribute("aria-label");
    if (this.panel.hidden) return;
    // an event must not take away what is being typed, nor the focus
    const focused = document.activeElement && this.list.contains(document.activeElement)
      ? document.activeElement.dataset.focusKey : null;
    const rows = [...this.alarms.values()].sort(
      (a, b) => b.raised_at.localeCompare(a.raised_at) || b.id - a.id);
    this.list.replaceChildren(...rows.map((a) => this.row(a)));
    if (!rows.length) this.list.append(el("li", "alarm-none", t("alarm.none")));
    if (focused) {  // the same control, or (it is gone) its row's, or the panel's title
      const id = focused.replace(/^[a-z]+-/, "");
      const again = this.list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`) ||
        this.list.querySelector(`[data-focus-key="open-${CSS.escape(id)}"]`) ||
        this.panel.querySelector("h2");
      again.focus();
    }
  }

  row(alarm) {
    const item = el("li", "alarm");
    item.dataset.alarm = alarm.id;
    item.dataset.severity = alarm.severity;
    item.dataset.acked = alarm.ack ? "true" : "false";
    const seconds = (Date.now() - new Date(alarm.raised_at).getTime()) / 1000;
    const open = el("button", "alarm-open");
    open.type = "button";
    open.dataset.focusKey = `open-${alarm.id}`;
    open.title = t("alarm.show");
    const units = (alarm.units || []).map((code) => this.unitName(code)).join("、");
    const head = el("span", "alarm-head");
    head.append(el("span", "alarm-sev", t(`severity.${alarm.severity}`)),
                el("span", "alarm-camera", this.cameraName(alarm.camera_id)));
    const facts = [t("alarm.since", { time: when(alarm.raised_at), duration: duration(seconds) })];
    if (alarm.count > 1) facts.push(t("alarm.count", { count: alarm.count }));
    open.append(head, el("span", "alarm-kind", alarmText(alarm)),
                el("span", "alarm-unit", units), el("span", "alarm-when", facts.join(" · ")));
    open.addEventListener("click", () => this.onPick(alarm.camera_id));
    item.append(open);
    if (alarm.ack) {
      item.append(el("p", "alarm-acked", t("alarm.acked", {
        by: alarm.ack.by || "", time: when(alarm.ack.at), comment: alarm.ack.comment })));
    } else if (!NO_ACK.has(this.user().role)) {
      const form = el("form", "alarm-ack");
      const comment = input("comment");
      comment.placeholder = t("alarm.comment");
      comment.setAttribute("aria-label", t("alarm.comment"));
      comment.maxLength = 2000;
      comment.dataset.focusKey = `comment-${alarm.id}`;
      comment.value = this.drafts.get(alarm.id) || "";
      comment.addEventListener("input", () => this.drafts.set(alarm.id, comment.value));
      const send = el("button", "approve", t("alarm.ack"));
      send.type = "submit";
      send.dataset.focusKey = `ack-${alarm.id}`;
      form.append(comment, send);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.ack(alarm, comment.value.trim());
      });
      item.append(form);
    }
    return item;
  }
}
