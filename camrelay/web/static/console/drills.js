// The administration page "Drills" (演练): the drills of the user's jurisdiction (unit,
// when, who, totals), a drill run now for a unit of the user's subtree (administrators,
// operators, technicians), and each report drawn here from its JSON.  The server's HTML
// page of a report has its own CSP and needs the bearer header, so it is not opened in a
// tab or a frame (the console's CSP allows neither its inline style nor a blob: frame):
// it is saved as a file instead (fetched with the token).
import * as api from "./api.js";
import { button, download, el, field, table, when } from "./dom.js";
import { t } from "./i18n.js";
import { why } from "./health.js";

const DRILLERS = new Set(["administrator", "operator", "technician"]);
const POLL_MS = 1000;

function share(value) { return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`; }
function secs(value) { return value === null || value === undefined ? "—" : `${value.toFixed(2)} s`; }
function totalsText(x) {
  return x ? t("drill.totals", { total: x.total, online: x.online, faulty: x.faulty,
                                 unchecked: x.unchecked }) : "—";
}
function reasons(counts) {
  return Object.entries(counts || {}).map(([r, n]) => `${why(r)} ${n}`).join("、");
}

export class DrillsPage {
  constructor({ user, unitName, units, visible, render, say }) {
    this.user = user;
    this.unitName = unitName;
    this.units = units;        // () => units
    this.visible = visible;    // () => the page is showing
    this.render = render;      // async () => draw the page again
    this.say = say;            // text => the page's status line
    this.open = null;          // the drill whose report is shown
    this.polling = new Set();
  }

  ownUnits() {
    const me = this.user();
    const units = this.units();
    const out = [];
    const walk = (code, depth) => {
      const unit = units.find((u) => u.code === code);
      out.push({ code, name: unit ? unit.name : code, depth });
      for (const u of units) if (u.parent === code) walk(u.code, depth + 1);
    };
    walk(me.unit, 0);
    return out;
  }

  async draw(body) {
    if (DRILLERS.has(this.user().role)) body.append(this.runForm());
    const drills = await api.request("/api/v1/drills?limit=100");
    body.append(table([
      [t("col.id"), (d) => `#${d.id}`],
      [t("col.unit"), (d) => `${this.unitName(d.unit)} (${d.unit})`],
      [t("col.started"), (d) => when(d.started_at)],
      [t("col.by"), (d) => (d.scheduled ? t("drill.scheduled") : d.started_by)],
      [t("col.status"), (d) => {
        const s = el("span", "drill-state", t(`drill.state.${d.state}`));
        s.dataset.state = d.state;
        return s;
      }],
      [t("col.totals"), (d) => totalsText(d.totals)],
      [t("col.report"), (d) => {
        const box = el("span", "decide");
        box.dataset.drill = d.id;
        if (d.state === "running") { this.follow(d.id); return box; }
        box.append(button(t("drill.view"), () => this.show(d.id), "drill-view"),
                   button(t("drill.save"), () => this.save(d.id), "drill-save"));
        return box;
      }],
    ], drills, t("admin.none")));
    const report = el("section", "drill-report");
    report.setAttribute("aria-live", "polite");
    body.append(report);
    this.reportBox = report;
    if (this.open) await this.drawReport(this.open);
  }

  runForm() {
    const form = el("form", "filters-row drill-run");
    const select = el("select");
    select.name = "unit";
    for (const u of this.ownUnits()) {
      select.append(new Option(`${"　".repeat(u.depth)}${u.name} (${u.code})`, u.code));
    }
    const run = el("button", "primary", t("drill.run"));
    run.type = "submit";
    form.append(field(t("drill.unit"), select), run);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      run.disabled = true;
      try {
        const drill = await api.post("/api/v1/drills", { unit: select.value });
        this.open = drill.id;
        this.follow(drill.id);
        await this.render();
        this.say(t("drill.started", { id: drill.id, unit: this.unitName(drill.unit) }));
      } catch (err) {
        run.disabled = false;
        this.say(t("admin.failed", { reason: err.message }));
      }
    });
    return form;
  }

  // A running drill: asked about every second until it ends, then the page again.
  follow(id) {
    if (this.polling.has(id)) return;
    this.polling.add(id);
    const poll = async () => {
      let drill = null;
      try { drill = await api.request(`/api/v1/drills/${Number(id)}`); } catch { /* next time */ }
      if (drill && drill.state !== "running") {
        this.polling.delete(id);
        if (this.visible()) this.render();
        return;
      }
      if (!this.visible()) { this.polling.delete(id); return; }
      setTimeout(poll, POLL_MS);
    };
    setTimeout(poll, POLL_MS);
  }

  async show(id) {
    this.open = id;
    await this.drawReport(id);
    const heading = this.reportBox.querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus(); }
  }

  async save(id) {
    try {
      download(await api.blob(`/api/v1/drills/${Number(id)}.html`, "text/html"),
               `camrelay-drill-${Number(id)}.html`);
    } catch (err) {
      this.say(t("admin.failed", { reason: err.message }));
    }
  }

  async drawReport(id) {
    const box = this.reportBox;
    let drill;
    try {
      drill = await api.request(`/api/v1/drills/${Number(id)}`);
    } catch (err) {
      box.replaceChildren(el("p", "admin-error", t("admin.failed", { reason: err.message })));
      return;
    }
    box.dataset.drill = drill.id;
    const r = drill.report || {};
    const title = el("h2", "", t("drill.report", { id: drill.id,
                                                   unit: r.unit_name || this.unitName(drill.unit) }));
    const meta = el("p", "drill-meta", t("drill.meta", {
      started: when(drill.started_at), finished: when(drill.finished_at) || "—",
      by: drill.scheduled ? t("drill.scheduled") : drill.started_by }));
    box.replaceChildren(title, meta);
    if (drill.state === "running") { box.append(el("p", "", t("drill.state.running"))); return; }
    if (r.error || !r.totals) { box.append(el("p", "admin-error", r.error || t("drill.state.failed"))); return; }
    const x = r.totals;
    const cards = el("div", "drill-cards");
    for (const [label, value, kind] of [
      [t("drill.total"), x.total, ""], [t("status.online"), x.online, "online"],
      [t("drill.faulty"), x.faulty, "fault"], [t("drill.unchecked"), x.unchecked, ""],
      [t("drill.first"), `${secs(x.first_frame.median)} / ${secs(x.first_frame.worst)}`, ""],
      [t("drill.week"), share(x.availability_week), ""]]) {
      const card = el("div", "drill-card");
      if (kind) card.dataset.status = kind;
      card.append(el("span", "drill-card-value", value), el("span", "drill-card-label", label));
      cards.append(card);
    }
    box.append(cards);
    box.append(el("h3", "", t("drill.units")));
    box.append(table([
      [t("col.unit"), (u) => `${u.name} (${u.unit})`],
      [t("drill.chart"), (u) => this.bar(u)],
      [t("drill.totals.col"), (u) => totalsText(u)],
      [t("drill.reasons"), (u) => reasons(u.reasons)],
      [t("drill.first"), (u) => `${secs(u.first_frame.median)} / ${secs(u.first_frame.worst)}`],
      [t("drill.week"), (u) => share(u.availability_week)],
    ], r.units || [], t("admin.none")));
    box.append(el("h3", "", t("drill.broken", { count: (r.broken || []).length })));
    box.append(table([
      [t("col.camera"), (c) => `${c.name} (#${c.camera_id})`],
      [t("col.unit"), (c) => this.unitName(c.unit)],
      [t("col.status"), (c) => {
        const s = el("span", "status-text", t(`status.${c.status}`));
        s.dataset.status = c.status;
        return s;
      }],
      [t("col.reason"), (c) => why(c.reason)],
      [t("drill.findings"), (c) => (c.findings || []).map((f) => t("drill.finding", {
        finding: why(f.kind), value: f.value, threshold: f.threshold })).join("、")],
    ], r.broken || [], t("drill.none.broken")));
  }

  // online / faulty / unchecked as one bar (widths set through the CSSOM: no style attribute)
  bar(u) {
    const bar = el("span", "drill-bar");
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", totalsText(u));
    for (const [kind, n] of [["online", u.online], ["fault", u.faulty], ["unknown", u.unchecked]]) {
      if (!n) continue;
      const seg = el("span", "drill-seg");
      seg.dataset.status = kind;
      seg.style.flexGrow = String(n);
      seg.title = `${t(`status.${kind}`)} ${n}`;
      bar.append(seg);
    }
    return bar;
  }
}
