// The two forms of the console, as <dialog>s: a grant request (opened from a tile that
// may not play, prefilled with its camera) and emergency access (reason, incident
// reference, and cameras, a unit or a point with a radius).
import * as api from "./api.js";
import { button, el, field, input } from "./dom.js";
import { t } from "./i18n.js";

function dialog(id, title) {
  const node = el("dialog", "form-dialog");
  node.id = id;
  const form = el("form");
  form.method = "dialog";
  const message = el("p", "message");
  message.setAttribute("role", "alert");
  const actions = el("div", "actions");
  const submit = el("button", "primary", t("dialog.submit"));
  submit.type = "submit";
  actions.append(button(t("dialog.cancel"), () => node.close()), submit);
  form.append(el("h2", "", title));
  node.append(form);
  document.body.append(node);
  return { node, form, message, actions };
}

function localIso(date) {
  const p = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T` +
         `${p(date.getHours())}:${p(date.getMinutes())}`;
}

// Apply for a grant of one camera for the signed-in user.
export function openGrantForm({ camera, cameraName, user, onSent }) {
  document.getElementById("grant-dialog")?.remove();
  const { node, form, message, actions } = dialog("grant-dialog", t("grant.title"));
  const name = el("output", "", `${cameraName(camera)} (#${camera})`);
  const acts = el("span", "checks");
  for (const a of ["live", "snapshot", "ptz"]) {
    const box = input("actions", "checkbox");
    box.value = a;
    box.checked = a === "live";
    const label = el("label");
    label.append(box, el("span", "", t(`action.${a}`)));
    acts.append(label);
  }
  const purpose = input("purpose");
  purpose.required = true;
  purpose.maxLength = 500;
  const until = input("until", "datetime-local", localIso(new Date(Date.now() + 8 * 3600e3)));
  until.required = true;
  form.append(field(t("grant.camera"), name), field(t("grant.actions"), acts),
              field(t("grant.purpose"), purpose), field(t("grant.until"), until), message, actions);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const actions = [...form.querySelectorAll('input[name="actions"]:checked')].map((b) => b.value);
    try {
      const grant = await api.post("/api/v1/grants", {
        grantee_user: user().username, cameras: [camera], actions,
        purpose: purpose.value.trim(), valid_until: new Date(until.value).toISOString() });
      node.close();
      onSent(t("grant.sent", { id: grant.id }));
    } catch (err) {
      message.textContent = t("admin.failed", { reason: err.message });
    }
  });
  node.showModal();
  purpose.focus();
  return node;
}

// Open emergency access now; `selected` are the wall's cameras, preselected.
export function openEmergencyForm({ cameras, units, selected, onOpened }) {
  document.getElementById("emergency-dialog")?.remove();
  const { node, form, message, actions } = dialog("emergency-dialog", t("em.title"));
  const reason = input("reason");
  reason.required = true;
  reason.maxLength = 1000;
  const incident = input("incident");
  incident.required = true;
  incident.maxLength = 200;
  const list = el("select");
  list.name = "cameras";
  list.multiple = true;
  list.size = 6;
  for (const c of [...cameras].sort((a, b) => a.name.localeCompare(b.name))) {
    const option = new Option(`${c.name} (#${c.id})`, String(c.id));
    option.selected = selected.includes(c.id);
    list.append(option);
  }
  const unit = el("select");
  unit.name = "unit";
  unit.append(new Option(t("tour.none"), ""), ...units.map((u) => new Option(`${u.name} (${u.code})`, u.code)));
  const lat = input("latitude", "number");
  const lon = input("longitude", "number");
  const radius = input("radius", "number");
  for (const [box, step] of [[lat, "any"], [lon, "any"], [radius, "any"]]) box.step = step;
  const point = el("span", "point");
  point.append(field(t("em.lat"), lat), field(t("em.lon"), lon), field(t("em.radius"), radius));
  const hours = input("hours", "number", "2");
  hours.min = "0.1";
  hours.step = "any";
  form.append(field(t("em.reason"), reason), field(t("em.incident"), incident),
              field(t("em.cameras"), list), field(t("em.unit"), unit),
              field(t("em.near"), point), field(t("em.hours"), hours), message, actions);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { reason: reason.value.trim(), incident: incident.value.trim(),
                   cameras: [...list.selectedOptions].map((o) => Number(o.value)),
                   unit_scope: unit.value || null, hours: Number(hours.value) || null };
    if (lat.value !== "" || lon.value !== "" || radius.value !== "") {
      body.near = { latitude: Number(lat.value), longitude: Number(lon.value),
                    radius_km: Number(radius.value) };
    }
    try {
      const em = await api.post("/api/v1/emergencies", body);
      node.close();
      onOpened(em);
    } catch (err) {
      message.textContent = t("admin.failed", { reason: err.message });
    }
  });
  node.showModal();
  reason.focus();
  return node;
}
