// A wall screen (上墙): a kiosk page that shows whatever a desk sends to it.  It signs in
// with its service account's token, given once in the address's fragment
// (/screen?screen=NAME#token=...; a fragment is never sent to a server, so no access log
// holds it), kept in the tab's sessionStorage and removed from the address at once; or
// typed into the form when there is no fragment.  The content arrives on the live
// channel (screen.show) and is applied at once; the screen plays only what its account
// may watch.
import * as api from "./api.js";
import { reasonText, t, translate } from "./i18n.js";
import { LiveChannel } from "./live.js";
import { Tour } from "./tour.js";
import { when } from "./dom.js";
import { Wall } from "./wall.js";

const $ = (id) => document.getElementById(id);
const name = new URLSearchParams(location.search).get("screen") || "";
const state = { user: null, wall: null, tour: null, channel: null, cameras: new Map(),
                units: new Map(), screen: null, applied: 0, appliedAt: 0 };
window.camrelayScreen = state;  // for tests and the benchmark

function signin(message) {
  if (state.channel) state.channel.stop();
  if (state.wall) state.wall.stopAll();
  $("screen-stage").hidden = true;
  $("screen-signin").hidden = false;
  $("screen-message").textContent = message;
}

function apply(screen) {
  state.screen = screen;
  const c = screen.content;
  state.tour.stop();
  if (!c) {
    $("screen-content").textContent = t("screen.waiting");
  } else if (c.kind === "tour") {
    if (state.wall.layout !== c.layout) state.wall.setLayout(c.layout);
    state.tour.start(c.cameras, c.seconds);
  } else {
    state.wall.cameras = c.cameras.slice();
    state.wall.setLayout(c.layout);
  }
  if (c) {
    $("screen-content").textContent = t("screen.showing", {
      name: c.name || t("screen.adhoc"), who: screen.changed_by || "", time: when(screen.changed_at) });
  }
  state.applied += 1;
  state.appliedAt = performance.now();
  document.body.dataset.applied = String(state.applied);
}

async function enter() {
  $("screen-signin").hidden = true;
  $("screen-name").textContent = t("screen.title", { name });
  const [me, units, cameras, screens] = await Promise.all([
    api.me(), api.units(), api.cameras(), api.request("/api/v1/screens")]);
  state.user = me;
  state.units = new Map(units.map((u) => [u.code, u.name]));
  state.cameras = new Map(cameras.map((c) => [c.id, c]));
  const screen = screens.find((s) => s.name === name);
  if (!screen) { signin(t("screen.unknown", { name })); return; }
  $("screen-stage").hidden = false;
  state.wall = state.wall || new Wall($("wall"), {
    viewer: () => state.user && { user: state.user.username, unit: state.user.unit },
    camera: (id) => state.cameras.get(id),
    unitName: (code) => state.units.get(code) || code,
    storageKey: `camrelay.screen.${screen.id}`,
  });
  state.tour = state.tour || new Tour(state.wall, $("standby"));
  state.channel = new LiveChannel();
  state.channel.addEventListener("screen.show", (e) => {
    if (e.detail.id === screen.id) apply(e.detail);
  });
  state.channel.addEventListener("stream.state", (e) => {
    const d = e.detail;
    state.wall.upstream(d.camera_id, d.stream, d.state, d.reason || "");
  });
  state.channel.addEventListener("view.revoked", (e) => {
    state.wall.revoked(e.detail.session, e.detail.camera_id, e.detail.reason);
  });
  state.channel.addEventListener("channel", (e) => { $("channel").hidden = e.detail.connected; });
  state.channel.start();
  apply(screen);
}

function init() {
  translate(document);
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    api.setToken(fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  api.whenAuthLost((reason) => {
    api.setToken(null);
    signin(t("msg.auth", { reason: reasonText(reason) }));
  });
  $("screen-form").addEventListener("submit", (event) => {
    event.preventDefault();
    api.setToken($("screen-token").value.trim());
    $("screen-token").value = "";
    enter().catch((err) => signin(t("msg.auth", { reason: reasonText(err.message) })));
  });
  $("screen-name").textContent = t("screen.title", { name });
  if (api.token()) enter().catch((err) => signin(t("msg.error", { reason: reasonText(err.message) })));
  else signin(t("screen.notoken"));
}

init();
