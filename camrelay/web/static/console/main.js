// The console: sign-in, the wall, the tree and the live channel wired together.
import * as api from "./api.js";
import { LAYOUTS } from "./layouts.js";
import { language, onLanguage, reasonText, setLanguage, t, translate } from "./i18n.js";
import { LiveChannel } from "./live.js";
import { UnitTree } from "./tree.js";
import { Wall } from "./wall.js";

const $ = (id) => document.getElementById(id);
const state = { user: null, wall: null, tree: null, channel: null };
window.camrelayConsole = state;  // for tests and the curious

function show(screen) {
  document.body.dataset.screen = screen;
  $("signin").hidden = screen !== "signin";
  $("console").hidden = screen !== "console";
}

function say(text) {
  $("signin-message").textContent = text;
}

async function enter() {
  const user = await api.me();
  state.user = user;
  show("console");
  drawWho();
  const [units, cameras] = await Promise.all([api.units(), api.cameras()]);
  state.tree.load(units, cameras);
  drawWho();
  fillCategories();
  state.wall = state.wall || new Wall($("wall"), {
    viewer: () => state.user && { user: state.user.username, unit: state.user.unit },
    camera: (id) => state.tree.camera(id),
    unitName: (code) => state.tree.unitName(code),
    storageKey: `camrelay.wall.${user.username}`,
  });
  state.wall.storageKey = `camrelay.wall.${user.username}`;
  const playable = cameras.filter((c) => c.rights.includes("live") &&
                                         !["offline", "fault"].includes(c.status));
  state.wall.restore(playable.slice(0, 4).map((c) => c.id));
  drawLayoutButtons();
  state.channel = new LiveChannel();
  state.channel.addEventListener("stream.state", (e) => {
    const d = e.detail;
    state.wall.upstream(d.camera_id, d.stream, d.state, d.reason || "");
  });
  state.channel.addEventListener("camera.status", (e) => {
    state.tree.setStatus(e.detail.camera_id, e.detail.status);
    state.wall.refresh();
  });
  state.channel.addEventListener("view.revoked", (e) => {
    state.wall.revoked(e.detail.session, e.detail.camera_id, e.detail.reason);
  });
  state.channel.addEventListener("channel", (e) => {
    $("channel").hidden = e.detail.connected;
  });
  state.channel.start();
}

function leave(reason) {
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
      state.wall.setLayout(name);
      drawLayoutButtons();
    });
    bar.append(button);
  }
}

function init() {
  translate(document);
  $("lang").addEventListener("click", () => setLanguage(language() === "zh" ? "en" : "zh"));
  onLanguage(() => {
    drawWho();
    if (state.tree) { state.tree.render(); fillCategories(); }
    drawLayoutButtons();
  });
  api.whenAuthLost((reason) => leave(t("msg.auth", { reason: reasonText(reason) })));
  state.tree = new UnitTree($("tree"), {
    onPick: (id) => state.wall && state.wall.placeSelected(id),
  });
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
