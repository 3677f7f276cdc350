// PTZ controls over the tile of a PTZ camera the user may steer: arrows and zoom move
// continuously while held (press-and-hold: a move on press, a stop on release), presets,
// and who holds the camera's control lock.
import * as api from "./api.js";
import { button, el } from "./dom.js";
import { reasonText, t } from "./i18n.js";

const SPEED = 0.5;
const HOLD_TIMEOUT = 10;  // seconds: the camera stops by itself if the release is lost
const MOVES = {
  up: { tilt: SPEED }, down: { tilt: -SPEED }, left: { pan: -SPEED }, right: { pan: SPEED },
  zoomin: { zoom: SPEED }, zoomout: { zoom: -SPEED },
};
const GLYPHS = { up: "▲", down: "▼", left: "◀", right: "▶", zoomin: "+", zoomout: "−" };

export function isPtz(camera) {
  return !!camera && camera.camera_type === "ptz" && camera.rights.includes("ptz");
}

export class PtzPanel {
  constructor(cameraId) {
    this.camera = cameraId;
    this.base = `/api/v1/cameras/${cameraId}/ptz`;
    this.node = el("div", "ptz");
    this.node.setAttribute("role", "group");
    this.node.dataset.camera = cameraId;
    this.holder = el("span", "ptz-holder");
    this.holder.setAttribute("role", "status");
    this.pad = el("div", "ptz-pad");
    this.moving = null;
    for (const name of ["up", "left", "right", "down", "zoomin", "zoomout"]) {
      const b = button(GLYPHS[name], () => {}, `ptz-${name}`);
      b.dataset.move = name;
      b.addEventListener("pointerdown", (event) => {
        event.stopPropagation();
        b.setPointerCapture(event.pointerId);
        this.start(name);
      });
      for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) {
        b.addEventListener(end, () => this.stop());
      }
      b.addEventListener("keydown", (event) => {
        if ((event.key === "Enter" || event.key === " ") && !event.repeat) {
          event.preventDefault();
          event.stopPropagation();
          this.start(name);
        }
      });
      b.addEventListener("keyup", (event) => {
        if (event.key === "Enter" || event.key === " ") this.stop();
      });
      b.addEventListener("dblclick", (event) => event.stopPropagation());
      this.pad.append(b);
    }
    this.presets = el("select", "ptz-presets");
    this.presets.addEventListener("change", () => this.goto(this.presets.value));
    this.presets.addEventListener("click", (event) => event.stopPropagation());
    this.node.addEventListener("click", (event) => event.stopPropagation());
    this.node.append(this.pad, this.presets, this.holder);
    this.translate();
    this.loadPresets();
    this.refresh();
  }

  translate() {
    this.node.setAttribute("aria-label", t("ptz.label"));
    for (const b of this.pad.children) {
      b.title = t(`ptz.${b.dataset.move}`);
      b.setAttribute("aria-label", t(`ptz.${b.dataset.move}`));
    }
    this.presets.setAttribute("aria-label", t("ptz.presets"));
    if (this.presets.options.length) this.presets.options[0].textContent = t("ptz.presets");
    this.showHolder(this.lock);
  }

  async start(name) {
    this.moving = name;
    this.node.dataset.moving = name;
    await this.send("move", Object.assign({ timeout: HOLD_TIMEOUT }, MOVES[name]));
  }

  async stop() {
    if (!this.moving) return;
    this.moving = null;
    delete this.node.dataset.moving;
    await this.send("stop", {});
  }

  async goto(token) {
    if (!token) return;
    await this.send(`presets/${encodeURIComponent(token)}/goto`, {});
    this.presets.value = "";
  }

  // Commands go one after the other: a quick tap's stop must not overtake its move.
  send(tail, body) {
    this.queue = (this.queue || Promise.resolve()).then(async () => {
      try {
        this.showHolder(await api.post(`${this.base}/${tail}`, body));
      } catch (err) {
        this.holder.textContent = t("ptz.failed", { reason: reasonText(err.message) });
        this.holder.dataset.error = "true";
      }
    });
    return this.queue;
  }

  async loadPresets() {
    let presets = [];
    try { presets = await api.request(`${this.base}/presets`); } catch { /* none */ }
    this.presets.replaceChildren(new Option(t("ptz.presets"), ""),
      ...presets.map((p) => new Option(p.name || p.token, p.token)));
    this.presets.hidden = !presets.length;
  }

  async refresh() {
    try { this.showHolder(await api.request(`${this.base}/lock`)); } catch { /* later */ }
  }

  showHolder(lock) {
    this.lock = lock;
    if (!lock) return;
    const h = lock.holder;
    delete this.holder.dataset.error;
    this.holder.dataset.held = h ? "true" : "false";
    this.holder.textContent = !h ? t("ptz.free")
      : t(h.emergency ? "ptz.holder.em" : "ptz.holder", { user: h.user });
  }
}
