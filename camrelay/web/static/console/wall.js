// The video wall: a layout of tiles, each a <camrelay-player> with the camera's name,
// unit and state over it and the viewer's watermark (user, unit, time) on the picture.
// Tiles are filled by drag-and-drop, by click (select a tile, then a camera) or by
// keyboard; double-click (or F) enlarges a tile to the whole wall and plays main.
// Tiles are muted and ask for video only; one tile at a time may play its camera's
// sound (the tile's sound button, or M): it reconnects asking for audio too.
import { DEFAULT_LAYOUT, LAYOUTS, streamFor } from "./layouts.js";
import { language, onLanguage, reasonText, t } from "./i18n.js";
import { isPtz, PtzPanel } from "./ptz.js";
import { canTalk, TalkPanel } from "./talk.js";
import "./player.js";

const DRAG_TYPE = "application/x-camrelay-camera";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
         `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export class Wall {
  constructor(root, { viewer, camera, unitName, storageKey, onApply, incident, health }) {
    this.root = root;
    this.viewer = viewer;        // () => ({ user, unit })
    this.cameraOf = camera;      // id => catalogue camera or undefined
    this.unitName = unitName;    // code => unit name
    this.storageKey = storageKey;
    this.onApply = onApply;      // camera id => open the grant request form
    this.incident = incident || (() => "");  // emergency id => its incident reference
    this.health = health || (() => null);    // camera => its status badge or null
    this.layout = DEFAULT_LAYOUT;
    this.cameras = [];           // camera id (or null) per tile
    this.tiles = [];
    this.selected = 0;
    this.enlarged = null;
    this.audible = null;         // the one tile playing sound, or null
    this.ticks = 0;
    this.timer = setInterval(() => {
      this.drawWatermarks();
      if (++this.ticks % 5 === 0) this.tiles.forEach((tile) => tile.ptz && tile.ptz.refresh());
    }, 1000);
    onLanguage(() => this.tiles.forEach((tile) => {
      if (tile.ptz) tile.ptz.translate();
      if (tile.talk) tile.talk.translate();
      this.render(tile);
    }));
    root.addEventListener("keydown", (event) => this.onKey(event));
  }

  restore(fallback) {
    let saved = null;
    try { saved = JSON.parse(localStorage.getItem(this.storageKey) || "null"); } catch { /* */ }
    if (saved && LAYOUTS[saved.layout]) {
      this.cameras = saved.cameras || [];
      this.setLayout(saved.layout);
    } else {
      this.cameras = fallback;
      this.setLayout(DEFAULT_LAYOUT);
    }
  }

  save() {
    localStorage.setItem(this.storageKey, JSON.stringify({ layout: this.layout,
                                                           cameras: this.cameras }));
  }

  setLayout(name) {
    const spec = LAYOUTS[name];
    this.layout = name;
    this.enlarged = null;
    this.audible = null;
    this.cameras = Array.from({ length: spec.tiles }, (_, i) => this.cameras[i] ?? null);
    for (const tile of this.tiles) {
      tile.player.remove();  // ends their sessions
      if (tile.talk) tile.talk.destroy();
    }
    this.root.replaceChildren();
    this.root.dataset.layout = name;
    this.root.style.setProperty("--columns", spec.columns);
    this.root.style.setProperty("--span", spec.span);
    this.tiles = this.cameras.map((camera, index) => this.makeTile(index));
    this.selected = Math.min(this.selected, spec.tiles - 1);
    this.tiles.forEach((tile) => this.assign(tile, this.cameras[tile.index]));
    this.markSelected();
    this.save();
    this.root.dispatchEvent(new CustomEvent("layoutchange", { detail: { layout: name } }));
  }

  makeTile(index) {
    const node = el("div", "tile");
    node.tabIndex = 0;
    node.dataset.index = index;
    node.setAttribute("role", "gridcell");
    if (index < LAYOUTS[this.layout].big) node.classList.add("big");
    const player = document.createElement("camrelay-player");
    player.purpose = "command hall wall";
    const watermark = el("div", "watermark");
    watermark.setAttribute("aria-hidden", "true");
    for (let i = 0; i < 3; i++) watermark.append(el("span"));
    const bar = el("div", "tile-bar");
    const name = el("span", "tile-name");
    const unit = el("span", "tile-unit");
    const badge = el("span", "tile-state");
    const close = el("button", "tile-close", "×");
    close.type = "button";
    const sound = el("button", "tile-sound");
    sound.type = "button";
    bar.append(badge, name, unit, sound, close);
    const message = el("div", "tile-message");
    message.setAttribute("role", "status");
    const mark = el("span", "tile-emergency");
    bar.insertBefore(mark, name);
    const health = el("span", "tile-health");  // the catalogue's offline / fault and why
    bar.insertBefore(health, close);
    node.append(player, watermark, bar, message);
    const tile = { index, node, player, name, unit, badge, close, sound, message, mark, health,
                   ptz: null, talk: null, detail: {} };
    node.addEventListener("click", () => this.select(index));
    node.addEventListener("dblclick", () => this.toggleEnlarge(index));
    node.addEventListener("dragover", (event) => {
      if (event.dataTransfer.types.includes(DRAG_TYPE)) {
        event.preventDefault();
        node.classList.add("drop");
      }
    });
    node.addEventListener("dragleave", () => node.classList.remove("drop"));
    node.addEventListener("drop", (event) => {
      node.classList.remove("drop");
      const id = event.dataTransfer.getData(DRAG_TYPE);
      if (!id) return;
      event.preventDefault();
      this.place(index, Number(id));
    });
    close.addEventListener("click", (event) => { event.stopPropagation(); this.place(index, null); });
    sound.addEventListener("click", (event) => { event.stopPropagation(); this.toggleSound(index); });
    sound.addEventListener("dblclick", (event) => event.stopPropagation());
    // on the tile, not the player: a tour swaps other players in
    node.addEventListener("statechange", (event) => {
      tile.detail = event.detail;
      this.render(tile);
    });
    this.root.append(node);
    return tile;
  }

  assign(tile, cameraId) {
    tile.detail = {};
    if (this.audible === tile.index) this.audible = null;
    tile.player.removeAttribute("audio");
    tile.player.problem = null;
    tile.player.setAttribute("stream", streamFor(this.layout, tile.index, this.enlarged === tile.index));
    const same = tile.player.camera === String(cameraId || "");
    if (cameraId) tile.player.setAttribute("camera", String(cameraId));
    else tile.player.removeAttribute("camera");
    if (same && cameraId) tile.player.start();  // placing it again: try again now
    this.render(tile);
  }

  // Put a camera on a tile (null empties it); the next empty tile is selected.
  place(index, cameraId) {
    this.cameras[index] = cameraId;
    this.assign(this.tiles[index], cameraId);
    this.save();
    if (cameraId) {
      const next = this.cameras.findIndex((c, i) => !c && i > index);
      if (next >= 0) this.select(next, false);
    }
  }

  placeSelected(cameraId) { this.place(this.selected, cameraId); }

  select(index, focus = true) {
    this.selected = index;
    this.markSelected();
    if (focus) this.tiles[index].node.focus({ preventScroll: true });
  }

  markSelected() {
    for (const tile of this.tiles) {
      const on = tile.index === this.selected;
      tile.node.classList.toggle("selected", on);
      tile.node.setAttribute("aria-selected", on ? "true" : "false");
      this.render(tile);
    }
  }

  toggleEnlarge(index) {
    const previous = this.enlarged;
    this.enlarged = previous === index ? null : index;
    for (const tile of this.tiles) {
      tile.node.classList.toggle("enlarged", tile.index === this.enlarged);
      const stream = streamFor(this.layout, tile.index, tile.index === this.enlarged);
      if (tile.player.getAttribute("stream") !== stream) tile.player.setAttribute("stream", stream);
    }
    this.root.classList.toggle("has-enlarged", this.enlarged !== null);
  }

  // Sound on this tile (reconnecting it with audio), off on the one before; or off.
  toggleSound(index) {
    const before = this.audible;
    this.audible = before === index ? null : index;
    for (const i of [before, this.audible]) {
      if (i === null) continue;
      const tile = this.tiles[i];
      if (i === this.audible) tile.player.setAttribute("audio", "");
      else tile.player.removeAttribute("audio");
      this.render(tile);
    }
  }

  onKey(event) {
    const tile = event.target.closest && event.target.closest(".tile");
    if (!tile) return;
    const index = Number(tile.dataset.index);
    const columns = LAYOUTS[this.layout].columns;
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns, ArrowDown: columns };
    if (event.key in moves) {
      const next = index + moves[event.key];
      if (next >= 0 && next < this.tiles.length) this.select(next);
      event.preventDefault();
    } else if (event.key === "Enter" || event.key === " ") {
      this.select(index);
      event.preventDefault();
    } else if (event.key === "Delete" || event.key === "Backspace") {
      this.place(index, null);
      event.preventDefault();
    } else if ((event.key === "m" || event.key === "M") && this.cameras[index]) {
      this.toggleSound(index);
    } else if (event.key === "f" || event.key === "F") {
      this.toggleEnlarge(index);
    } else if (event.key === "Escape" && this.enlarged !== null) {
      this.toggleEnlarge(this.enlarged);
    }
  }

  // ---- what the live channel says --------------------------------------------------

  upstream(cameraId, stream, state, reason) {
    for (const tile of this.tiles) {
      if (this.cameras[tile.index] === cameraId && tile.player.stream === stream) {
        tile.player.upstream(state, reason);
      }
    }
  }

  revoked(session, cameraId, reason) {
    for (const tile of this.tiles) {
      const match = session ? tile.player.sessionUrl === session
                            : this.cameras[tile.index] === cameraId;
      if (match) tile.player.revoke(reason);
    }
  }

  refresh() { this.tiles.forEach((tile) => this.render(tile)); }

  // Rights changed (a grant approved, emergency access opened): refused tiles try again.
  retryDenied() {
    for (const tile of this.tiles) {
      if (this.cameras[tile.index] && tile.player.state === "denied") tile.player.start();
    }
  }

  // A tour's page: these cameras on the tiles, without remembering them as the wall.
  show(ids) {
    this.tiles.forEach((tile) => {
      const id = ids[tile.index] ?? null;
      this.cameras[tile.index] = id;
      if (tile.player.camera !== String(id || "")) this.assign(tile, id);
    });
  }

  // A tour's switch: pre-connected players take the tiles' places at once; the
  // players they replace are handed back (still connected) for the page after.
  swap(players) {
    const old = [];
    this.audible = null;
    this.tiles.forEach((tile, i) => {
      const next = players[i];
      old.push(tile.player);
      tile.node.replaceChild(next, tile.player);
      tile.player.removeAttribute("audio");  // out of sight: muted
      tile.player = next;
      tile.detail = {};
      this.cameras[i] = Number(next.camera) || null;
      next.shown();
      this.render(tile);
    });
    return old;
  }

  stopAll() {
    for (const tile of this.tiles) tile.player.stop();
  }

  // ---- drawing ------------------------------------------------------------------------

  render(tile) {
    const id = this.cameras[tile.index];
    const camera = id ? this.cameraOf(id) : undefined;
    const state = id ? tile.player.state : "idle";
    tile.node.dataset.state = state;
    tile.node.setAttribute("aria-label", t("tile.label", { n: tile.index + 1 }) +
      (camera ? ` · ${camera.name}` : ""));
    tile.name.textContent = camera ? camera.name : (id ? `#${id}` : "");
    tile.unit.textContent = camera ? this.unitName(camera.unit) : "";
    tile.badge.textContent = id ? t(`state.${state}`) : "";
    tile.badge.dataset.state = state;
    tile.close.hidden = !id;
    this.drawSound(tile, id, state);
    const bad = camera ? this.health(camera) : null;
    tile.health.textContent = bad ? bad.short : "";
    tile.health.title = bad ? bad.title : "";
    if (bad) tile.health.dataset.status = bad.status; else delete tile.health.dataset.status;
    const em = camera && camera.emergency;
    tile.node.classList.toggle("emergency", !!em);
    const incident = em ? this.incident(em) : "";
    tile.mark.textContent = em ? (incident ? `${t("em.badge")} ${incident}` : t("em.badge")) : "";
    tile.mark.title = em ? t("em.tile", { id: em }) : "";
    if (em) tile.node.dataset.emergency = em; else delete tile.node.dataset.emergency;
    if (isPtz(camera) && !["denied", "revoked"].includes(state)) {
      if (!tile.ptz || tile.ptz.camera !== id) {
        if (tile.ptz) tile.ptz.node.remove();
        tile.ptz = new PtzPanel(id);
        tile.node.append(tile.ptz.node);
      }
    } else if (tile.ptz) {
      tile.ptz.stop();
      tile.ptz.node.remove();
      tile.ptz = null;
    }
    // talk-back to the camera's device: whatever the picture's state (a field device
    // that is not connected says so when pressed)
    if (canTalk(camera)) {
      if (!tile.talk || tile.talk.camera !== id) {
        if (tile.talk) tile.talk.destroy();
        tile.talk = new TalkPanel(id);
        tile.node.append(tile.talk.node);
      }
    } else if (tile.talk) {
      tile.talk.destroy();
      tile.talk = null;
    }
    tile.close.setAttribute("aria-label", t("tile.close"));
    tile.close.title = t("tile.close");
    tile.message.replaceChildren();
    const d = tile.detail || {};
    const raw = d.reason || tile.player.reason;
    const reason = reasonText(raw);
    let text = "";
    if (!id) text = t(tile.index === this.selected ? "tile.selected" : "tile.empty");
    else if (state === "reconnecting") {
      text = d.upstream || d.retryIn === undefined
        ? t("msg.upstream", { reason })
        : t("msg.reconnecting", { seconds: d.retryIn, reason });
    } else if (state === "offline") text = t("msg.offline", { reason });
    else if (state === "revoked") text = t("msg.revoked", { reason });
    else if (state === "error") text = t("msg.error", { reason });
    else if (state === "paused") text = t("state.paused");
    if (text) tile.message.append(el("p", "", text));
    if (id && state === "denied") {
      const how = (tile.player.problem || {}).request_grant;
      // first what and the way to apply, so a small tile shows them; then the details
      // (the server's own sentence is English: shown in English only)
      const short = el("p", "", t("msg.denied.short"));
      short.title = raw || "";
      tile.message.append(short);
      if (camera && camera.rights.includes("request") && this.onApply) {
        const apply = el("button", "apply-button", t("grant.apply"));
        apply.type = "button";
        apply.addEventListener("click", (event) => {
          event.stopPropagation();
          this.onApply(id);
        });
        tile.message.append(apply);
      }
      if (language() === "en" && raw) tile.message.append(el("p", "apply", raw));
      if (how) {
        tile.message.append(el("p", "apply", t("msg.apply", {
          unit: this.unitName(how.owner_unit), camera: id, cli: how.cli })));
      }
    }
    this.drawWatermark(tile);
  }

  drawSound(tile, id, state) {
    const on = this.audible === tile.index;
    const none = on && tile.player.sound === "none";
    tile.sound.hidden = !id || !(on || ["live", "reconnecting"].includes(state));
    tile.sound.textContent = t(none ? "sound.none" : on ? "sound.on" : "sound.off");
    tile.sound.title = t(on ? "sound.mute" : "sound.unmute");
    tile.sound.setAttribute("aria-label", tile.sound.title);
    tile.sound.setAttribute("aria-pressed", on ? "true" : "false");
    tile.sound.dataset.sound = none ? "none" : on ? "on" : "off";
  }

  drawWatermarks() { this.tiles.forEach((tile) => this.drawWatermark(tile)); }

  drawWatermark(tile) {
    const marks = tile.node.querySelector(".watermark").children;
    const who = this.viewer();
    const text = this.cameras[tile.index] && who
      ? t("watermark", { user: who.user, unit: who.unit, time: stamp() }) : "";
    for (const span of marks) if (span.textContent !== text) span.textContent = text;
  }
}

export { DRAG_TYPE };
