// <camrelay-player camera="42" stream="sub" [audio]>: one WHEP viewer per tile.
// It owns its RTCPeerConnection and WHEP session, shows its state as attributes
// (state = idle|connecting|live|reconnecting|offline|denied|revoked|error|paused,
// reason), tells the page by "statechange" events, reconnects by itself with backoff,
// and pauses when the page is hidden.  Ending a view DELETEs the session *before* the
// peer connection closes, so the access log says the viewer ended it.  Without the
// audio attribute it asks for video only and is muted; with it, its offer also
// receives audio and it plays it (sound = "on", or "none": the camera has none).
import { authLost, problemOf, token } from "./api.js";

const RETRY_FIRST = 1000;
const RETRY_MAX = 30000;
const HIDDEN_GRACE = 10000;  // hidden this long: the session is ended until shown again
const DELETE_WAIT = 1000;  // ms the close of a view waits for its DELETE's answer
const live = new Set();

// camrelay sends H.264 only.  A browser whose WebRTC has no H.264 decoder (Firefox
// without its OpenH264 plugin, which it downloads from Cisco on first use and an offline
// hall never gets) would be refused by the server for an offer it cannot use: say why
// instead.  Asked at every start: the plugin can arrive while the page is open.
function playsH264() {
  const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities
    ? RTCRtpReceiver.getCapabilities("video") : null;
  return !caps || caps.codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
}

export function waitGathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") { clearTimeout(timer); resolve(); }
    });
  });
}

// Peer connections with their offer made and ICE gathered, ready for the next tiles:
// gathering takes ~130 ms per connection, which a wall applied at once would otherwise
// wait for before its first POST.  Refilled a moment after being drawn on, so the
// refill does not compete with the streams starting.
const POOL_REFILL_MS = 3000;
const pool = [];
let refill = null;

function preparedConnection(audio = false) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  if (audio) pc.addTransceiver("audio", { direction: "recvonly" });
  const ready = pc.createOffer().then((offer) => pc.setLocalDescription(offer))
    .then(() => waitGathered(pc, 2000));
  return { pc, ready };
}

function takeConnection() {
  const found = (CamrelayPlayer.poolSize > 0 && pool.shift()) || preparedConnection();
  if (refill === null) {
    refill = setTimeout(() => {
      refill = null;
      while (pool.length < CamrelayPlayer.poolSize) pool.push(preparedConnection());
    }, POOL_REFILL_MS);
  }
  return found;
}

// Whether an answer sends the audio asked for: "on", or "none" (a=inactive: the camera
// has no sound camrelay relays).
function soundOf(sdp) {
  const at = sdp.indexOf("m=audio");
  if (at < 0) return "none";
  const next = sdp.indexOf("\nm=", at + 1);
  const section = sdp.slice(at, next < 0 ? undefined : next);
  return /^a=(sendonly|sendrecv)\s*$/m.test(section) ? "on" : "none";
}

export class CamrelayPlayer extends HTMLElement {
  static poolSize = 16;  // a 4x4 wall (the benchmark sets 0 for its baseline)

  static get observedAttributes() { return ["camera", "stream", "audio"]; }

  constructor() {
    super();
    this.video = document.createElement("video");
    this.video.muted = true;
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.disablePictureInPicture = true;
    this.video.controls = false;
    this.video.addEventListener("contextmenu", (e) => e.preventDefault());
    this.pc = null;
    this.sessionUrl = null;
    this.generation = 0;  // bumps on every (re)start: late callbacks of old ones are ignored
    this.retryTimer = null;
    this.retryDelay = RETRY_FIRST;
    this.hiddenTimer = null;
    this.problem = null;  // the last problem body (403: how to apply)
    this.postedAt = 0;
    this.firstFrameAt = 0;
    this.purpose = "";
    this.shownAt = 0;  // when a tour showed it in a tile, and its first frame painted there
    this.shownFrameAt = 0;
  }

  connectedCallback() {
    if (!this.video.isConnected) this.append(this.video);
    live.add(this);
    if (this.camera && this.state === "idle") this.start();
  }

  disconnectedCallback() {
    // moved to another place in the same task (a tour swaps pre-connected players into
    // the tiles): it keeps playing; really removed: the view ends
    queueMicrotask(() => {
      if (this.isConnected) return;
      live.delete(this);
      this.stop();
    });
  }

  // Shown in a tile (a tour's switch): note when the next frame is painted there.
  shown() {
    this.shownAt = performance.now();
    this.shownFrameAt = 0;
    if (this.state !== "live") return;
    this.video.requestVideoFrameCallback(() => { this.shownFrameAt = performance.now(); });
  }

  attributeChangedCallback(name, old, value) {
    if (name === "audio") this.video.muted = !this.audio;
    if (old === value || !this.isConnected) return;
    if (this.camera) this.start(); else this.stop();
  }

  get camera() { return this.getAttribute("camera") || ""; }
  get stream() { return this.getAttribute("stream") === "sub" ? "sub" : "main"; }
  get state() { return this.getAttribute("state") || "idle"; }
  get reason() { return this.getAttribute("reason") || ""; }
  get audio() { return this.hasAttribute("audio"); }
  get sound() { return this.getAttribute("sound") || ""; }

  setState(state, reason = "", extra = {}) {
    this.setAttribute("state", state);
    if (reason) this.setAttribute("reason", reason); else this.removeAttribute("reason");
    this.dispatchEvent(new CustomEvent("statechange", {
      bubbles: true, detail: Object.assign({ state, reason }, extra) }));
  }

  // (Re)start the view of the current camera and stream.
  async start() {
    this.teardown();  // the old view's DELETE and close go on by themselves
    clearTimeout(this.retryTimer);
    if (!this.camera) { this.setState("idle"); return; }
    if (document.visibilityState === "hidden") { this.setState("paused"); return; }
    const generation = ++this.generation;
    if (!playsH264()) { this.setState("error", "no_h264"); return; }
    // a retry keeps showing why (offline, reconnecting) until it plays or fails again
    if (!["offline", "reconnecting"].includes(this.state)) this.setState("connecting");
    try {
      await this.negotiate(generation);
    } catch (err) {
      if (generation !== this.generation) return;
      this.failed("network");
    }
  }

  async negotiate(generation) {
    const audio = this.audio;  // the pool's connections are video only
    const { pc, ready } = audio ? preparedConnection(true) : takeConnection();
    this.pc = pc;
    this.video.muted = !audio;
    this.removeAttribute("sound");
    // The receiving tracks exist with their transceivers: shown now, the element's
    // media player is ready before the first frame arrives.  Attached only when the
    // track event comes, a tile missed the frames decoded before its player was set up
    // (the join burst's keyframe among them) and showed nothing until the camera's next
    // keyframe: up to a GOP later on a 4x4 wall whose page was busy.
    const early = pc.getReceivers().map((r) => r.track).filter((t) => t);
    if (early.length) {
      this.video.srcObject = new MediaStream(early);
      this.video.play().catch(() => {});
    }
    pc.ontrack = (event) => {
      const shown = this.video.srcObject;
      if (!shown) this.video.srcObject = event.streams[0] || new MediaStream([event.track]);
      else if (!shown.getTracks().includes(event.track)) shown.addTrack(event.track);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (generation !== this.generation) return;
      if (pc.connectionState === "failed") this.failed("network");
      if (pc.connectionState === "disconnected") {
        setTimeout(() => {
          if (generation === this.generation && pc.connectionState === "disconnected") {
            this.failed("network");
          }
        }, 3000);
      }
    };
    this.watchFrames(generation);
    await ready;
    if (generation !== this.generation) return;
    const query = new URLSearchParams({ stream: this.stream });
    if (this.purpose) query.set("purpose", this.purpose);
    this.postedAt = performance.now();
    const response = await fetch(`/whep/${encodeURIComponent(this.camera)}?${query}`, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token()}` },
      body: pc.localDescription.sdp,
    });
    if (generation !== this.generation) {
      if (response.status === 201) this.deleteSession(response.headers.get("Location"));
      return;
    }
    if (response.status !== 201) {
      await this.refused(response);
      return;
    }
    this.sessionUrl = response.headers.get("Location");
    const answer = await response.text();
    if (audio) this.setAttribute("sound", soundOf(answer));
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  watchFrames(generation) {
    const onFrame = () => {
      if (generation !== this.generation) return;
      if (this.shownAt && !this.shownFrameAt) this.shownFrameAt = performance.now();
      if (this.state !== "live") {
        this.retryDelay = RETRY_FIRST;
        this.firstFrameAt = performance.now();
        this.setState("live");
      }
    };
    this.video.requestVideoFrameCallback(onFrame);
  }

  async refused(response) {
    const problem = await problemOf(response);
    this.problem = problem.body;
    this.video.srcObject = null;  // before the close: an ended track paints a black frame
    this.pc && this.pc.close();
    this.pc = null;
    if (response.status === 401) {
      this.setState("error", problem.message);
      authLost(problem.message);
    } else if (response.status === 403) {
      this.setState("denied", problem.message, { problem: problem.body });
    } else if (response.status === 503) {
      // the short reason code: the detail can name the camera's address
      const after = Number(response.headers.get("Retry-After")) * 1000 || 0;
      this.scheduleRetry("offline", problem.body.reason || "unreachable", after);
    } else {
      this.setState("error", problem.message);
    }
  }

  failed(reason) {
    this.scheduleRetry("reconnecting", reason);
  }

  scheduleRetry(state, reason, atLeast = 0) {
    const generation = ++this.generation;  // old callbacks stop here
    this.teardown();
    const delay = Math.min(Math.max(this.retryDelay, atLeast), RETRY_MAX);
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX);
    this.setState(state, reason, { retryIn: Math.round(delay / 1000) });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (generation === this.generation) this.start();
    }, delay);
  }

  // The server cut the view (a revoked grant or token): dark at once, no retry.
  revoke(reason) {
    this.generation++;
    clearTimeout(this.retryTimer);
    this.sessionUrl = null;  // the server has ended it already
    this.teardown();
    this.setState("revoked", reason);
  }

  // The camera's upstream changed state on the relay (live channel).
  upstream(state, reason) {
    if (state === "reconnecting" && this.state === "live") {
      this.setState("reconnecting", reason, { upstream: true });
    } else if (state === "live" && this.state === "reconnecting" && this.pc) {
      this.setState("live");
    }
  }

  async stop() {
    const generation = ++this.generation;
    clearTimeout(this.retryTimer);
    this.retryDelay = RETRY_FIRST;
    await this.teardown();
    // a start() meanwhile (a tile given its stream, then its camera) owns the state now
    if (generation === this.generation) this.setState("idle");
  }

  deleteSession(url) {
    if (!url) return Promise.resolve();
    return fetch(url, { method: "DELETE", keepalive: true,
                        headers: { Authorization: `Bearer ${token()}` } }).catch(() => {});
  }

  // DELETE first, then close the peer connection: the close waits for the DELETE's
  // answer, at most DELETE_WAIT ms (a DELETE that hangs, e.g. behind the browser's
  // per-host connection limit, must not keep the old connection, nor hold up the next
  // camera on the tile: start() does not wait for this).
  teardown() {
    const pc = this.pc;
    const url = this.sessionUrl;
    this.pc = null;
    this.sessionUrl = null;
    this.video.srcObject = null;
    this.firstFrameAt = 0;
    const deleted = url
      ? Promise.race([this.deleteSession(url),
                      new Promise((resolve) => setTimeout(resolve, DELETE_WAIT))])
      : Promise.resolve();
    return deleted.then(() => { if (pc) pc.close(); });
  }

  // Leaving the page: DELETE (keepalive) before closing, synchronously.
  leave() {
    const pc = this.pc;
    if (this.sessionUrl) this.deleteSession(this.sessionUrl);
    this.sessionUrl = null;
    this.pc = null;
    if (pc) pc.close();
  }

  visibility(hidden) {
    clearTimeout(this.hiddenTimer);
    if (hidden) {
      this.hiddenTimer = setTimeout(() => {
        if (this.camera && this.pc) {
          this.generation++;
          this.teardown();
          this.setState("paused");
        }
      }, HIDDEN_GRACE);
    } else if (this.camera && (this.state === "paused" || !this.pc) &&
               !["denied", "revoked", "offline", "reconnecting"].includes(this.state)) {
      this.start();
    }
  }
}

customElements.define("camrelay-player", CamrelayPlayer);

window.addEventListener("pagehide", () => { for (const p of live) p.leave(); });
document.addEventListener("visibilitychange", () => {
  for (const p of live) p.visibility(document.visibilityState === "hidden");
});
