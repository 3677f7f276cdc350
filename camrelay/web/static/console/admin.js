// Administration pages for administrators, approvers and auditors: pending grant
// requests (approve/reject with a comment), active grants (revoke), emergency access
// (confirm/revoke), the access log (filters, CSV export), the cameras of the user's
// subtree, users and tokens; and drills (drills.js), for operators and technicians too.
// The server decides every right; the tabs a role cannot use are hidden, and a refusal
// is shown as such.
import * as api from "./api.js";
import { button, download, el, field, input, table, when } from "./dom.js";
import { DrillsPage } from "./drills.js";
import { reasonText, t } from "./i18n.js";

const TABS = {
  requests: ["approver", "administrator"],
  grants: ["approver", "administrator"],
  emergencies: ["approver", "administrator", "auditor"],
  audit: ["approver", "administrator", "auditor"],
  cameras: ["approver", "administrator", "auditor"],
  users: ["administrator"],
  drills: ["administrator", "operator", "technician", "approver", "auditor"],
};
// An administrative record's detail (grant id, comment, incident …) as one line of text.
function detailText(detail) {
  if (!detail || typeof detail !== "object") return "";
  return Object.entries(detail).filter(([, v]) => v !== null && v !== "")
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
}

export const ADMIN_ROLES = new Set(Object.values(TABS).flat());

export class AdminPages {
  constructor(root, { user, cameraName, unitName, units, cameras }) {
    this.root = root;
    this.user = user;            // () => the signed-in user
    this.cameraName = cameraName;
    this.unitName = unitName;
    this.units = units;          // () => units
    this.cameras = cameras;      // () => catalogue cameras
    this.tab = null;
    this.auditQuery = {};
    this.drills = new DrillsPage({ user, unitName, units, visible: () => this.showing("drills"),
                                   render: () => this.render(), say: (text) => this.say(text) });
  }

  showing(tab) { return this.tab === tab && !this.root.hidden; }

  tabs() { return Object.keys(TABS).filter((k) => TABS[k].includes(this.user().role)); }

  show(tab) {
    const tabs = this.tabs();
    this.tab = tabs.includes(tab) ? tab : (tabs.includes(this.tab) ? this.tab : tabs[0]);
    this.render();
  }

  // A live event that changes what a page shows: draw it again.
  changed(kinds) { if (this.tab && kinds.includes(this.tab) && !this.root.hidden) this.render(); }

  async render() {
    const bar = el("nav", "tabs");
    bar.setAttribute("role", "tablist");
    for (const name of this.tabs()) {
      const b = button(t(`tab.${name}`), () => this.show(name));
      b.dataset.tab = name;
      b.setAttribute("role", "tab");
      b.setAttribute("aria-selected", name === this.tab ? "true" : "false");
      bar.append(b);
    }
    const body = el("section", "admin-body");
    body.dataset.tab = this.tab;
    const status = el("p", "admin-status");
    status.setAttribute("role", "status");
    this.status = status;
    this.root.replaceChildren(el("h1", "", t("admin.title")), bar, status, body);
    try {
      await this[`draw_${this.tab}`](body);
    } catch (err) {
      body.replaceChildren(el("p", "admin-error", t(err.status === 403 ? "admin.forbidden"
                                                                      : "admin.failed",
                                                  { reason: err.message })));
    }
  }

  say(text) { this.status.textContent = text; }

  async act(promise) {
    try {
      await promise;
      this.say(t("admin.done"));
      await this.render();
      this.say(t("admin.done"));
    } catch (err) {
      this.say(t("admin.failed", { reason: err.message }));
    }
  }

  cameraList(ids) { return (ids || []).map((id) => this.cameraName(id)).join("、"); }

  grantee(g) {
    return g.grantee_user || (g.grantee_unit ? this.unitName(g.grantee_unit) : "");
  }

  scope(g) {
    const parts = [];
    if (g.cameras && g.cameras.length) parts.push(this.cameraList(g.cameras));
    if (g.unit_scope) parts.push(this.unitName(g.unit_scope));
    if (g.category) parts.push(g.category);
    if (g.near) parts.push(`${g.near.latitude}, ${g.near.longitude} ±${g.near.radius_km} km`);
    return parts.join(" · ");
  }

  async draw_requests(body) {
    const grants = await api.request("/api/v1/grants?status=pending");
    body.append(table([
      [t("col.id"), (g) => `#${g.id}`],
      [t("col.requester"), (g) => `${g.requested_by} · ${when(g.requested_at)}`],
      [t("col.grantee"), (g) => this.grantee(g)],
      [t("col.cameras"), (g) => this.scope(g)],
      [t("col.actions"), (g) => g.actions.map((a) => t(`action.${a}`)).join("、")],
      [t("col.purpose"), (g) => g.purpose],
      [t("col.until"), (g) => when(g.valid_until)],
      [t("col.decide"), (g) => {
        const box = el("span", "decide");
        const comment = input("comment");
        comment.placeholder = t("note.comment");
        comment.setAttribute("aria-label", t("note.comment"));
        const send = (verb) => this.act(api.post(`/api/v1/grants/${g.id}/${verb}`,
                                                 { comment: comment.value.trim() || null }));
        box.append(comment, button(t("btn.approve"), () => send("approve"), "approve"),
                   button(t("btn.reject"), () => send("reject"), "reject"));
        box.dataset.grant = g.id;
        return box;
      }],
    ], grants, t("admin.none")));
  }

  async draw_grants(body) {
    const grants = await api.request("/api/v1/grants?status=active");
    body.append(table([
      [t("col.id"), (g) => `#${g.id}`],
      [t("col.grantee"), (g) => this.grantee(g)],
      [t("col.cameras"), (g) => this.scope(g)],
      [t("col.actions"), (g) => g.actions.map((a) => t(`action.${a}`)).join("、")],
      [t("col.purpose"), (g) => g.purpose],
      [t("col.decided"), (g) => g.decided_by],
      [t("col.until"), (g) => when(g.valid_until)],
      [t("btn.revoke"), (g) => {
        const box = el("span", "decide");
        const reason = input("reason");
        reason.placeholder = t("col.reason");
        reason.setAttribute("aria-label", t("col.reason"));
        box.append(reason, button(t("btn.revoke"), () => this.act(api.post(
          `/api/v1/grants/${g.id}/revoke`, { reason: reason.value.trim() || null })), "reject"));
        box.dataset.grant = g.id;
        return box;
      }],
    ], grants, t("admin.none")));
  }

  async draw_emergencies(body) {
    const found = await api.request("/api/v1/emergencies");
    const approver = this.user().role === "approver";
    body.append(table([
      [t("col.id"), (e) => `#${e.id}`],
      [t("col.status"), (e) => t(`em.status.${e.status}`)],
      [t("col.opened"), (e) => `${e.opened_by} (${this.unitName(e.unit)})`],
      [t("col.incident"), (e) => e.incident],
      [t("col.reason"), (e) => e.reason],
      [t("col.cameras"), (e) => this.scope(e)],
      [t("col.until"), (e) => when(e.expires_at)],
      [t("col.decide"), (e) => {
        const box = el("span", "decide");
        box.dataset.emergency = e.id;
        if (!approver || !["open", "confirmed"].includes(e.status)) return box;
        const comment = input("comment");
        comment.placeholder = t("note.comment");
        comment.setAttribute("aria-label", t("note.comment"));
        const send = (verb) => this.act(api.post(`/api/v1/emergencies/${e.id}/${verb}`,
                                                 { comment: comment.value.trim() || null }));
        box.append(comment);
        if (e.status === "open") box.append(button(t("btn.confirm"), () => send("confirm"), "approve"));
        box.append(button(t("btn.revoke"), () => send("revoke"), "reject"));
        return box;
      }],
    ], found, t("admin.none")));
  }

  auditForm() {
    const form = el("form", "filters-row");
    const q = this.auditQuery;
    const text = (name, label, type = "text") => {
      const node = input(name, type, q[name] || "");
      form.append(field(label, node));
    };
    text("user", t("filter.user"));
    text("unit", t("filter.unit"));
    text("camera", t("filter.camera"));
    text("since", t("filter.since"), "datetime-local");
    text("until", t("filter.until"), "datetime-local");
    const pick = (name, label, values, prefix) => {
      const select = el("select");
      select.name = name;
      select.append(new Option(t("tree.all"), ""),
                    ...values.map((v) => new Option(t(`${prefix}.${v}`), v)));
      select.value = q[name] || "";
      form.append(field(label, select));
    };
    pick("result", t("filter.result"), ["allowed", "denied", "ok"], "result");
    pick("kind", t("filter.kind"), ["view", "denied", "admin", "auth", "journal"], "kind");
    const search = el("button", "", t("btn.search"));
    search.type = "submit";
    const exportButton = button(t("btn.export"), () => this.exportCsv(), "export");
    form.append(search, exportButton);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      this.auditQuery = {};
      for (const [k, v] of data.entries()) if (String(v).trim()) this.auditQuery[k] = String(v).trim();
      this.render();
    });
    return form;
  }

  queryString() {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(this.auditQuery)) {
      // datetime-local has no offset: the browser's own time zone is meant
      params.set(k, (k === "since" || k === "until") ? new Date(v).toISOString() : v);
    }
    return params.toString();
  }

  async exportCsv() {
    try {
      download(await api.auditCsv(this.queryString()),
               `camrelay-audit-${new Date().toISOString().slice(0, 10)}.csv`);
    } catch (err) {
      this.say(t("admin.failed", { reason: err.message }));
    }
  }

  async draw_audit(body) {
    body.append(this.auditForm());
    const records = await api.request(`/api/v1/audit?${this.queryString()}&limit=200`);
    body.append(table([
      [t("col.time"), (r) => when(r.start)],
      [t("col.user"), (r) => r.user],
      [t("col.unit"), (r) => r.unit ? this.unitName(r.unit) : ""],
      [t("col.camera"), (r) => r.camera || (r.camera_id ? this.cameraName(r.camera_id) : "")],
      [t("col.kind"), (r) => `${t(`kind.${r.kind}`)}${r.action ? ` · ${r.action}` : ""}`],
      [t("col.purpose"), (r) => r.purpose],
      [t("col.basis"), (r) => [r.basis, r.approver, r.incident].filter(Boolean).join(" · ")],
      [t("col.result"), (r) => t(`result.${r.result}`)],
      [t("col.reason"), (r) => reasonText(r.close_reason || r.reason || "") || detailText(r.detail)],
      [t("col.end"), (r) => when(r.end)],
    ], records, t("admin.none")));
  }

  async draw_cameras(body) {
    const me = this.user();
    const units = this.units();
    const own = new Set();
    const walk = (code) => {
      own.add(code);
      for (const u of units) if (u.parent === code) walk(u.code);
    };
    walk(me.unit);
    const rows = this.cameras().filter((c) => own.has(c.unit))
      .sort((a, b) => a.unit.localeCompare(b.unit) || a.name.localeCompare(b.name));
    body.append(table([
      [t("col.id"), (c) => `#${c.id}`],
      [t("col.name"), (c) => c.name],
      [t("col.unit"), (c) => this.unitName(c.unit)],
      [t("col.category"), (c) => c.category],
      [t("col.status"), (c) => {
        const s = el("span", "status-text", t(`status.${c.status}`));
        s.dataset.status = c.status;
        return s;
      }],
      [t("col.lastseen"), (c) => when(c.last_seen_at)],
    ], rows, t("admin.none")));
  }

  async draw_drills(body) { await this.drills.draw(body); }

  async draw_users(body) {
    const [users, tokens] = await Promise.all([api.request("/api/v1/users"),
                                               api.request("/api/v1/tokens")]);
    body.append(el("h2", "", t("tab.users")));
    body.append(table([
      [t("col.user"), (u) => u.display_name ? `${u.username} (${u.display_name})` : u.username],
      [t("col.unit"), (u) => this.unitName(u.unit)],
      [t("col.role"), (u) => t(`role.${u.role}`)],
      [t("col.disabled"), (u) => t(u.disabled ? "yes" : "no")],
      [t("col.created"), (u) => when(u.created_at)],
    ], users, t("admin.none")));
    body.append(el("h2", "", t("col.token")));
    body.append(table([
      [t("col.id"), (k) => `#${k.id}`],
      [t("col.user"), (k) => k.user],
      [t("col.token"), (k) => `${k.name || ""} (${k.kind})`],
      [t("col.created"), (k) => when(k.created_at)],
      [t("col.expires"), (k) => when(k.expires_at)],
      [t("col.revoked"), (k) => k.revoked_at ? when(k.revoked_at)
        : button(t("btn.revoke"), () => this.act(api.del(`/api/v1/tokens/${k.id}`)), "reject")],
    ], tokens, t("admin.none")));
  }
}
