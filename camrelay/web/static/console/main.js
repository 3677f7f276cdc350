// The console: sign-in, the wall, the tree and the live channel wired together.
import * as api from "./api.js";
import { LAYOUTS } from "./layouts.js";
import { language, onLanguage, reasonText, setLanguage, t, translate } from "./i18n.js";
import { LiveChannel } from "./live.js";
import { ADMIN_ROLES, AdminPages } from "./admin.js";
import { AlarmPanel } from "./alarms.js";
import { Health } from "./health.js";
import { openEmergencyForm, openGrantForm } from "./forms.js";
import { Notices } from "./notices.js";
import { bindSaveForm, SavedViews } from "./saved.js";
import { Tour } from "./tour.js";
import { UnitTree } from "./tree.js";
import { Wall } from "./wall.js";

const $ = (id) => document.getElementById(id);
const state = { user: null, wall: null, tree: null, channel: null, tour: null, admin: null,
                notices: null, emergencies: new Map(), health: new Health(), alarms: null };
// The active emergency access the user can see, for the incident on marked tiles.
async function loadEmergencies() {
  try {
    const found = await api.request("/api/v1/emergencies?active=true");
    state.emergencies = new Map(found.map((em) => [em.id, em]));
  } catch { /* the mark shows without the incident */ }
  return state.emergencies;
}

const EMERGENCY_ROLES = new Set(["operator", "administrator"]);  // access.emergency_roles
window.camrelayConsole = state;  // for tests and the curious

function show(screen, tab) {
  document.body.dataset.screen = screen;
  $("signin").hidden = screen !== "signin";
  $("console").hidden = screen !== "console";
  $("admin").hidden = screen !== "admin";
  const admin = !!state.user && ADMIN_ROLES.has(state.user.role);
  $("nav-admin").hidden = !admin || screen !== "console";
  $("nav-wall").hidden = screen !== "admin";
  $("alarm-bell").hidden = screen === "signin";
  if (screen === "admin") state.admin.show(tab);
}

// Rights changed (a grant decided, emergency access opened or ended): refused tiles
// offer again at once (their offers need nothing from the catalogue, and a tile
// waiting for the list would start a round trip later), then the catalogue again.
async function reloadCameras() {
  state.wall.retryDenied();
  const [cameras] = await Promise.all([api.cameras(), loadEmergencies()]);
  state.tree.load(state.tree.units, cameras);
  state.wall.refresh();
}

function say(text) {
  $("signin-message").textContent = text;
}

async function enter() {
  const user = await api.me();
  state.user = user;
  show("console");
  drawWho();
  const [units, cameras] = await Promise.all([api.units(), api.cameras(), loadEmergencies(),
                                              state.health.load().catch(() => {})]);
  state.tree.load(units, cameras);
  drawWho();
  fillCategories();
  state.wall = state.wall || new Wall($("wall"), {
    viewer: () => state.user && { user: state.user.username, unit: state.user.unit },
    camera: (id) => state.tree.camera(id),
    unitName: (code) => state.tree.unitName(code),
    storageKey: `camrelay.wall.${user.username}`,
    incident: (id) => (state.emergencies.get(id) || {}).incident || "",
    health: (camera) => state.health.badge(camera.id, camera.status),
    onApply: (id) => openGrantForm({ camera: id, user: () => state.user,
                                     cameraName: (c) => (state.tree.camera(c) || { name: `#${c}` }).name,
                                     onSent: (text) => state.notices.say(text) }),
  });
  state.wall.storageKey = `camrelay.wall.${user.username}`;
  const playable = cameras.filter((c) => c.rights.includes("live") &&
                                         !["offline", "fault"].includes(c.status));
  state.wall.restore(playable.slice(0, 4).map((c) => c.id));
  drawLayoutButtons();
  $("em-open").hidden = !EMERGENCY_ROLES.has(user.role);
  if (!state.tour) {
    state.tour = new Tour(state.wall, $("standby"));
    state.tour.addEventListener("change", drawTour);
  }
  state.saved.load().catch(() => {});
  const savedTour = Tour.saved();
  if (savedTour) state.tour.start(savedTour.cameras, savedTour.seconds);
  state.notices.clear();
  if (["approver", "administrator", "auditor"].includes(user.role)) {
    api.request("/api/v1/emergencies?active=true").then((found) => {
      for (const em of found.reverse()) state.notices.emergency("list", em);
    }).catch(() => {});
  }
  state.alarms.render();
  state.channel = new LiveChannel();
  // every (re)connection: the active alarms again (events missed while away)
  state.channel.addEventListener("hello", () => state.alarms.load().catch(() => {}));
  for (const kind of ["alarm.raised", "alarm.cleared", "alarm.acked"]) {
    state.channel.addEventListener(kind, (e) => state.alarms.event(kind, e.detail));
  }
  for (const kind of ["emergency.opened", "emergency.confirmed", "emergency.revoked"]) {
    state.channel.addEventListener(kind, (e) => {
      state.notices.emergency(kind, e.detail);
      state.admin.changed(["emergencies", "audit"]);
      reloadCameras().catch(() => {});
    });
  }
  for (const kind of ["grant.requested", "grant.decided"]) {
    state.channel.addEventListener(kind, (e) => {
      state.notices.grant(kind, e.detail);
      state.admin.changed(["requests", "grants", "audit"]);
      if (kind === "grant.decided") reloadCameras().catch(() => {});
    });
  }
  state.channel.addEventListener("stream.state", (e) => {
    const d = e.detail;
    state.wall.upstream(d.camera_id, d.stream, d.state, d.reason || "");
  });
  state.channel.addEventListener("camera.status", (e) => {
    state.tree.setStatus(e.detail.camera_id, e.detail.status, e.detail.reason);
    state.wall.refresh();
  });
  state.channel.addEventListener("view.revoked", (e) => {
    state.wall.revoked(e.detail.session, e.detail.camera_id, e.detail.reason);
  });
  state.channel.addEventListener("screen.show", (e) => state.saved.screenChanged(e.detail));
  state.channel.addEventListener("channel", (e) => {
    $("channel").hidden = e.detail.connected;
  });
  state.channel.start();
}

function leave(reason) {
  if (state.tour) state.tour.stop();
  if (state.notices) state.notices.clear();
  if (state.alarms) state.alarms.clear();
  if (state.channel) state.channel.stop();
  state.channel = null;
  if (state.wall) state.wall.stopAll();
  state.user = null;
  api.setToken(null);
  show("signin");
  say(reason || "");
  $("username").focus();
}

function drawWho() {
  const u = state.user;
  if (!u) return;
  const unit = state.tree && state.tree.units.length ? state.tree.unitName(u.unit) : u.unit;
  $("who").textContent = t("signed.in.as", { user: u.display_name || u.username, unit,
                                             role: t(`role.${u.role}`) });
}

function fillCategories() {
  const select = $("filter-category");
  const current = select.value;
  const all = new Option(t("tree.all"), "");
  select.replaceChildren(all, ...state.tree.categories().map((c) => new Option(c, c)));
  select.value = current;
  const status = $("filter-status");
  const chosen = status.value;
  status.replaceChildren(new Option(t("tree.all"), ""),
    ...["online", "offline", "fault", "unknown"].map((s) => new Option(t(`status.${s}`), s)));
  status.value = chosen;
}

function drawLayoutButtons() {
  const bar = $("layouts");
  bar.replaceChildren();
  for (const name of Object.keys(LAYOUTS)) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.layout = name;
    button.textContent = t(`layout.${name}`);
    button.setAttribute("aria-pressed", state.wall && state.wall.layout === name ? "true" : "false");
    button.addEventListener("click", () => {
      if (state.tour) state.tour.stop();
      state.wall.setLayout(name);
      drawLayoutButtons();
    });
    bar.append(button);
  }
}

function drawTour() {
  const running = state.tour && state.tour.running;
  $("tour-label").textContent = running ? state.tour.label() : "";
  $("tour-stop").hidden = !running;
}

function openTourForm() {
  const cams = [...state.tree.cameras.values()].filter((c) => c.rights.includes("live"))
    .sort((a, b) => a.name.localeCompare(b.name));
  $("tour-cameras").replaceChildren(...cams.map((c) => new Option(`${c.name} (#${c.id})`, String(c.id))));
  $("tour-unit").replaceChildren(new Option(t("tour.none"), ""),
    ...state.tree.units.map((u) => new Option(`${u.name} (${u.code})`, u.code)));
  $("tour-message").textContent = "";
  $("tour-dialog").showModal();
}

function startTourFromForm(event) {
  event.preventDefault();
  let ids = [...$("tour-cameras").selectedOptions].map((o) => Number(o.value));
  const unit = $("tour-unit").value;
  if (unit) {
    const units = new Set([unit]);
    for (let grew = true; grew;) {  // the unit and every unit below it
      grew = false;
      for (const u of state.tree.units) {
        if (u.parent && units.has(u.parent) && !units.has(u.code)) { units.add(u.code); grew = true; }
      }
    }
    for (const c of state.tree.cameras.values()) {
      if (units.has(c.unit) && c.rights.includes("live") && !ids.includes(c.id)) ids.push(c.id);
    }
  }
  if (!ids.length) { $("tour-message").textContent = t("tour.empty"); return; }
  $("tour-dialog").close();
  state.tour.start(ids, Number($("tour-seconds").value));
  const name = $("tour-name").value.trim();
  if (name) {
    state.saved.save({ kind: "tour", name, layout: state.wall.layout, cameras: ids,
                       seconds: state.tour.seconds })
      .catch((err) => state.notices.say(t("saved.failed", { reason: err.message })));
  }
}

function init() {
  translate(document);
  $("lang").addEventListener("click", () => setLanguage(language() === "zh" ? "en" : "zh"));
  onLanguage(() => {
    drawWho();
    drawTour();
    if (document.body.dataset.screen === "admin") state.admin.render();
    if (state.tree) { state.tree.render(); fillCategories(); }
    drawLayoutButtons();
    state.saved.render();
    state.alarms.render();
  });
  api.whenAuthLost((reason) => leave(t("msg.auth", { reason: reasonText(reason) })));
  state.tree = new UnitTree($("tree"), {
    onPick: (id) => state.wall && state.wall.placeSelected(id), health: state.health,
  });
  state.alarms = new AlarmPanel({
    bell: $("alarm-bell"), panel: $("alarm-panel"), list: $("alarm-list"),
    message: $("alarm-message"), user: () => state.user,
    cameraName: (id) => (state.tree.camera(id) || { name: `#${id}` }).name,
    unitName: (code) => state.tree.unitName(code),
    onPick: (id) => {  // the alarm's camera on the selected tile
      if (document.body.dataset.screen !== "console") show("console");
      if (state.wall) state.wall.placeSelected(id);
    } });
  $("alarm-close").addEventListener("click", () => { state.alarms.toggle(false); $("alarm-bell").focus(); });
  state.notices = new Notices($("notices"), {
    user: () => state.user, unitName: (code) => state.tree.unitName(code),
    openAdmin: (tab) => show("admin", tab) });
  state.admin = new AdminPages($("admin"), {
    user: () => state.user, unitName: (code) => state.tree.unitName(code),
    cameraName: (id) => (state.tree.camera(id) || { name: `#${id}` }).name,
    units: () => state.tree.units, cameras: () => [...state.tree.cameras.values()] });
  $("nav-admin").addEventListener("click", () => show("admin"));
  $("nav-wall").addEventListener("click", () => show("console"));
  state.saved = new SavedViews({
    list: $("saved"), screenBox: $("screen-box"), screenSelect: $("screen-target"),
    wall: () => state.wall, tour: () => state.tour, user: () => state.user,
    say: (text) => state.notices.say(text) });
  $("saved").addEventListener("restored", drawLayoutButtons);
  bindSaveForm(state.saved, $);
  $("tour-open").addEventListener("click", openTourForm);
  $("tour-stop").addEventListener("click", () => state.tour.stop());
  $("tour-cancel").addEventListener("click", () => $("tour-dialog").close());
  $("tour-form").addEventListener("submit", startTourFromForm);
  $("em-open").addEventListener("click", () => openEmergencyForm({
    cameras: [...state.tree.cameras.values()], units: state.tree.units,
    selected: state.wall.cameras.filter(Boolean),
    // the same notice the live channel brings (one key: the channel's replaces it)
    onOpened: (em) => { state.notices.emergency("emergency.opened", em);
                        reloadCameras().catch(() => {}); } }));
  $("filter-text").addEventListener("input", (e) => state.tree.setFilter({ text: e.target.value }));
  $("filter-category").addEventListener("change",
    (e) => state.tree.setFilter({ category: e.target.value }));
  $("filter-status").addEventListener("change",
    (e) => state.tree.setFilter({ status: e.target.value }));
  $("signout").addEventListener("click", async () => {
    if (state.wall) await Promise.all(state.wall.tiles.map((tile) => tile.player.stop()));
    await api.signOut();
    leave("");
  });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    say(t("signin.busy"));
    try {
      await api.signIn($("username").value.trim(), $("password").value);
      $("password").value = "";
      say("");
      await enter();
    } catch (err) {
      say(t("signin.failed", { reason: err.message }));
    }
  });
  if (api.token()) enter().catch((err) => leave(t("msg.auth", { reason: reasonText(err.message) })));
  else show("signin");
}

init();
