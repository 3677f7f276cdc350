// Talk-back from a tile of a camera the user may talk to (rights "talk"): the operator's
// microphone goes to the device as Opus in a sendonly offer to POST /talk/{camera}.
// Two ways to speak: press and hold 按住讲话 (mouse, touch, or Space/Enter on the focused
// button; releasing ends it), or the latched 持续讲话 toggle for long instructions (a
// click starts, another ends; clicking it while holding keeps the talk on after the
// release).  Ending DELETEs the session before the peer connection closes, and stops the
// microphone's tracks, so the browser's microphone indicator goes off.  One talk at a
// time per page: starting one ends the page's other.
import { authLost, problemOf, token } from "./api.js";
import { button, el } from "./dom.js";
import { reasonText, t } from "./i18n.js";
import { waitGathered } from "./player.js";

const GATHER_MS = 2000;       // no trickle ICE: the offer waits for its candidates
const DISCONNECTED_MS = 3000; // "disconnected" this long counts as lost
const DELETE_WAIT = 1000;     // ms the close waits for the DELETE's answer
const KEYS = new Set([" ", "Enter"]);
let active = null;            // the page's one talking panel

export function canTalk(camera) {
  return !!camera && (camera.rights || []).includes("talk");
}

// Why the server refused, as the panel's state.
function refusal(status, reason) {
  if (status === 403) return "denied";
  if (status === 409 && reason === "talk_busy") return "busy";
  if (status === 409 && ["no_talkback", "not_field_camera"].includes(reason)) return "notalk";
  if (status === 409 && reason === "no_publisher") return "nodevice";
  return "error";
}

export class TalkPanel {
  constructor(cameraId) {
    this.camera = cameraId;
    this.state = "idle";      // idle|connecting|speaking|busy|nomic|denied|notalk|nodevice|lost|error
    this.reason = "";
    this.mode = null;         // "hold" or "latch" while a talk is wanted
    this.generation = 0;      // bumps on every start and end: late callbacks are ignored
    this.pc = null;
    this.media = null;
    this.url = null;
    this.since = 0;           // when the device started hearing (speaking)
    this.ticker = null;
    this.node = el("div", "talk");
    this.node.setAttribute("role", "group");
    this.node.dataset.camera = cameraId;
    this.hold = button("", () => {}, "talk-hold");
    this.latch = button("", () => this.toggleLatch(), "talk-latch");
    this.status = el("span", "talk-state");
    this.status.setAttribute("role", "status");
    this.bindHold();
    for (const b of [this.hold, this.latch]) {
      b.addEventListener("dblclick", (event) => event.stopPropagation());
    }
    this.node.addEventListener("click", (event) => event.stopPropagation());
    this.node.addEventListener("contextmenu", (event) => event.preventDefault());
    this.node.append(this.hold, this.latch, this.status);
    this.translate();
  }

  bindHold() {
    const b = this.hold;
    b.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.stopPropagation();
      event.preventDefault();  // no focus-steal or text selection on a long press
      b.setPointerCapture(event.pointerId);
      this.press();
    });
    for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) {
      b.addEventListener(end, () => this.release());
    }
    b.addEventListener("keydown", (event) => {
      if (!KEYS.has(event.key)) return;
      event.preventDefault();
      event.stopPropagation();  // not the wall's Enter/Space (select the tile)
      if (!event.repeat) this.press();
    });
    b.addEventListener("keyup", (event) => {
      if (!KEYS.has(event.key)) return;
      event.preventDefault();
      event.stopPropagation();
      this.release();
    });
    b.addEventListener("blur", () => this.release());
  }

  press() {
    if (this.mode === "latch") return;  // latched: the toggle ends it
    this.begin("hold");
  }

  release() {
    if (this.mode === "hold") this.end();
  }

  toggleLatch() {
    if (this.mode === "latch") this.end();
    else if (this.mode === "hold") { this.mode = "latch"; this.draw(); }  // keep it on
    else this.begin("latch");
  }

  get talking() { return this.mode !== null; }

  // ---- the session --------------------------------------------------------------------

  begin(mode) {
    if (active && active !== this) active.end();
    if (this.pc || this.media) this.teardown();
    active = this;
    this.mode = mode;
    const generation = ++this.generation;
    this.setState("connecting");
    this.open(generation).catch((err) => {
      if (generation !== this.generation) return;
      this.fail("error", err instanceof TypeError ? "network" : err.message || String(err));
    });
  }

  async open(generation) {
    let media;
    try {
      if (!navigator.mediaDevices) throw Object.assign(new Error("insecure"), { name: "insecure" });
      media = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      if (generation === this.generation) this.fail("nomic", err.name || err.message);
      return;
    }
    if (generation !== this.generation) { stopTracks(media); return; }  // released meanwhile
    this.media = media;
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    for (const track of media.getAudioTracks()) {
      pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
    }
    let lostTimer = null;
    pc.addEventListener("connectionstatechange", () => {
      if (generation !== this.generation) return;
      clearTimeout(lostTimer);
      const s = pc.connectionState;
      if (s === "connected") this.speaking();
      else if (s === "failed" || s === "closed") this.fail("lost", "network");
      else if (s === "disconnected") {
        lostTimer = setTimeout(() => {
          if (generation === this.generation && pc.connectionState === "disconnected") {
            this.fail("lost", "network");
          }
        }, DISCONNECTED_MS);
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathered(pc, GATHER_MS);
    if (generation !== this.generation) return;
    const response = await fetch(`/talk/${encodeURIComponent(this.camera)}`, {
      method: "POST", body: pc.localDescription.sdp,
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token()}` },
    });
    if (response.status !== 201) {
      const problem = await problemOf(response);
      if (generation !== this.generation) return;
      if (response.status === 401) authLost(problem.message);
      this.fail(refusal(response.status, problem.body.reason), problem.message);
      return;
    }
    const url = response.headers.get("Location");
    if (generation !== this.generation) { deleteSession(url, true); return; }  // released
    this.url = url;
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    // the server closing its side (the device left, a manager ended it) closes DTLS:
    // said at once, not after the ICE checks time out
    for (const sender of pc.getSenders()) {
      const dtls = sender.transport;
      if (!dtls) continue;
      dtls.addEventListener("statechange", () => {
        if (generation === this.generation && ["closed", "failed"].includes(dtls.state)) {
          this.fail("lost", "talk ended by the server");
        }
      });
    }
  }

  speaking() {
    this.since = performance.now();
    this.setState("speaking");
    clearInterval(this.ticker);
    this.ticker = setInterval(() => this.draw(), 500);
  }

  // The operator ends it (or another talk of the page starts): back to idle.
  end() {
    this.teardown();
    this.setState("idle");
  }

  // It could not start, or the connection was lost: say why, until the next press.
  fail(state, reason) {
    this.teardown();
    this.setState(state, reason);
  }

  // DELETE first, then close the peer connection (at most DELETE_WAIT ms later); the
  // microphone is released at once.
  teardown() {
    this.generation++;
    this.mode = null;
    if (active === this) active = null;
    clearInterval(this.ticker);
    this.ticker = null;
    const { pc, url, media } = this;
    this.pc = null;
    this.url = null;
    this.media = null;
    stopTracks(media);
    const deleted = url
      ? Promise.race([deleteSession(url, false),
                      new Promise((resolve) => setTimeout(resolve, DELETE_WAIT))])
      : Promise.resolve();
    return deleted.then(() => { if (pc) pc.close(); });
  }

  // The tile goes (another camera, another layout): the talk ends with it.
  destroy() {
    if (this.talking || this.pc) this.teardown();
    this.node.remove();
  }

  // Leaving the page: DELETE (keepalive) before closing, synchronously.
  leave() {
    const { pc, url } = this;
    this.pc = null;
    this.url = null;
    if (url) deleteSession(url, true);
    if (pc) pc.close();
    this.teardown();
  }

  // ---- drawing --------------------------------------------------------------------------

  setState(state, reason = "") {
    this.state = state;
    this.reason = reason;
    this.draw();
  }

  translate() {
    this.node.setAttribute("aria-label", t("talk.label"));
    this.hold.textContent = t("talk.hold");
    this.hold.title = t("talk.hold.hint");
    this.draw();
  }

  draw() {
    const { state } = this;
    this.node.dataset.state = state;
    if (this.mode) this.node.dataset.mode = this.mode; else delete this.node.dataset.mode;
    this.hold.setAttribute("aria-pressed", this.mode === "hold" ? "true" : "false");
    this.latch.setAttribute("aria-pressed", this.mode === "latch" ? "true" : "false");
    this.latch.textContent = t(this.mode === "latch" ? "talk.latch.end" : "talk.latch");
    this.latch.title = t("talk.latch.hint");
    const seconds = Math.floor((performance.now() - this.since) / 1000);
    const text = state === "idle" ? "" : t(`talk.state.${state}`, {
      seconds, reason: reasonText(this.reason) });
    // the counting seconds are not read out every second (the button says pressed)
    this.status.setAttribute("aria-live", state === "speaking" ? "off" : "polite");
    if (this.status.textContent !== text) this.status.textContent = text;
    // the server's own sentence (English) as the tooltip
    this.status.title = this.reason && !["speaking", "connecting"].includes(state) ? this.reason : "";
  }
}

function stopTracks(media) {
  if (media) for (const track of media.getTracks()) track.stop();
}

function deleteSession(url, keepalive) {
  if (!url) return Promise.resolve();
  return fetch(url, { method: "DELETE", keepalive,
                      headers: { Authorization: `Bearer ${token()}` } }).catch(() => {});
}

window.addEventListener("pagehide", () => { if (active) active.leave(); });
