// The field page (/field): a phone at the scene signs in (the token stays in the tab's
// sessionStorage, as on the console), picks one of the field cameras it may publish to
// (rights "publish"), and sends its camera and microphone to camrelay over WHIP
// (RFC 9725): POST /whip/{camera} with the offer, DELETE on stop.  The microphone's
// m-line is sendrecv, so the command centre's talk-back is heard on the phone.  While it
// publishes it sends its position every POSITION_SECONDS when the browser allows
// geolocation.  A lost connection is re-established by itself (reconnecting); the
// server's problem text is shown when it refuses.
import * as api from "./api.js";
import { language, reasonText, setLanguage, t, translate } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const POSITION_SECONDS = Math.max(2, Number(params.get("position_seconds")) || 10);
const RETRY_SECONDS = [1, 2, 4, 8, 15];
const GATHER_MS = 3000;  // no trickle ICE: the offer waits for its candidates
const DISCONNECTED_MS = 4000;  // "disconnected" this long counts as lost

const state = {
  user: null, cameras: [], camera: null, pc: null, location: null, media: null,
  state: "stopped", wanted: false, attempt: 0, timer: null, watch: null, every: null,
  fix: null, positions: 0, problem: null, talkback: false,
};
window.camrelayField = state;  // for tests

function show(screen) {
  $("field-signin").hidden = screen !== "signin";
  $("field-stage").hidden = screen !== "stage";
  $("signout").hidden = screen !== "stage";
}

function setState(name, values = {}) {
  state.state = name;
  const el = $("field-state");
  el.dataset.state = name;
  el.textContent = t(`field.state.${name}`, values);
  $("field-start").disabled = name !== "stopped" && name !== "error";
  $("field-stop").disabled = name === "stopped" || name === "error";
  $("field-camera").disabled = $("field-start").disabled;
}

function cameraName(id) {
  const camera = state.cameras.find((c) => c.id === id);
  return camera ? camera.name : String(id);
}

function signin(message) {
  stop(false);
  show("signin");
  $("field-signin-message").textContent = message || "";
}

async function enter() {
  const [me, cameras] = await Promise.all([api.me(), api.cameras()]);
  state.user = me;
  $("who").textContent = me.username;
  state.cameras = cameras.filter((c) => (c.rights || []).includes("publish"));
  const select = $("field-camera");
  select.replaceChildren(...state.cameras.map((c) => {
    const option = document.createElement("option");
    option.value = String(c.id);
    option.textContent = `${c.name} (${c.external_id})`;  // text, never markup
    return option;
  }));
  const wanted = params.get("camera");
  if (wanted && state.cameras.some((c) => String(c.id) === wanted)) select.value = wanted;
  $("field-none").hidden = state.cameras.length > 0;
  show("stage");
  setState("stopped");
  $("field-start").disabled = state.cameras.length === 0;
}

// --------------------------------------------------------------------------- WHIP

async function openMedia() {
  if (state.media) return state.media;
  state.media = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: true,
  });
  $("field-preview").srcObject = state.media;
  return state.media;
}

function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
  const h264 = codecs.filter((c) => c.mimeType === "video/H264"
                                    && /packetization-mode=1/.test(c.sdpFmtpLine || ""));
  if (!h264.length) return;
  const rest = codecs.filter((c) => c.mimeType === "video/rtx");
  try { transceiver.setCodecPreferences([...h264, ...rest]); } catch { /* keep defaults */ }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, GATHER_MS);
  });
}

async function publish() {
  clearTimeout(state.timer);
  state.timer = null;
  if (!state.wanted) return;
  const camera = state.camera;
  setState("starting");
  let media;
  try {
    media = await openMedia();
  } catch (err) {
    state.wanted = false;
    state.problem = err.message || err.name;
    setState("error");
    $("field-state").textContent = t("field.state.media", { reason: err.message || err.name });
    return;
  }
  const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
  state.pc = pc;
  for (const track of media.getVideoTracks()) {
    preferH264(pc.addTransceiver(track, { direction: "sendonly", streams: [media] }));
  }
  for (const track of media.getAudioTracks()) {
    pc.addTransceiver(track, { direction: "sendrecv", streams: [media] });  // talk-back
  }
  pc.addEventListener("track", (event) => {
    if (event.track.kind !== "audio") return;
    $("field-talkback").srcObject = new MediaStream([event.track]);
    state.talkback = true;
  });
  let lostTimer = null;
  pc.addEventListener("connectionstatechange", () => {
    if (state.pc !== pc) return;
    const s = pc.connectionState;
    clearTimeout(lostTimer);
    if (s === "connected") {
      state.attempt = 0;
      setState("publishing", { camera: cameraName(camera) });
      startPositions();
    } else if (s === "failed" || s === "closed") {
      lost();
    } else if (s === "disconnected") {
      lostTimer = setTimeout(() => { if (state.pc === pc) lost(); }, DISCONNECTED_MS);
    }
  });
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const response = await fetch(`/whip/${camera}`, {
      method: "POST", body: pc.localDescription.sdp,
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${api.token()}` },
    });
    if (!response.ok) {
      const problem = await api.problemOf(response);
      if (response.status === 401) { api.authLost(problem.message); return; }
      // the previous session may still be ending (409) or the server busy (5xx): retry
      const again = response.status >= 500
        || (response.status === 409 && problem.body.reason === "publisher_connected");
      throw Object.assign(problem, { final: !again });
    }
    state.location = new URL(response.headers.get("Location"), location.href).href;
    if (state.pc !== pc) { endSession(pc, state.location); return; }  // stopped meanwhile
    await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  } catch (err) {
    if (state.pc !== pc) return;
    pc.close();
    state.pc = null;
    state.problem = err.message;
    if (err.final) {
      state.wanted = false;
      stopPositions();
      setState("error", { reason: reasonText(err.message) });
      return;
    }
    retry();
  }
}

function lost() {
  const pc = state.pc;
  state.pc = null;
  if (pc) endSession(pc, state.location);
  state.location = null;
  retry();
}

function retry() {
  if (!state.wanted) return;
  const seconds = RETRY_SECONDS[Math.min(state.attempt, RETRY_SECONDS.length - 1)];
  state.attempt += 1;
  setState("reconnecting", { seconds });
  state.timer = setTimeout(publish, seconds * 1000);
}

function endSession(pc, url, keepalive = false) {
  pc.close();
  if (!url) return;
  fetch(url, { method: "DELETE", keepalive,
               headers: { Authorization: `Bearer ${api.token()}` } }).catch(() => {});
}

function stop(keepalive = false) {
  state.wanted = false;
  clearTimeout(state.timer);
  stopPositions();
  const pc = state.pc;
  state.pc = null;
  if (pc) endSession(pc, state.location, keepalive);
  state.location = null;
  if (state.media) {
    for (const track of state.media.getTracks()) track.stop();
    state.media = null;
    $("field-preview").srcObject = null;
  }
  if ($("field-state")) setState("stopped");
}

// --------------------------------------------------------------------------- position

function startPositions() {
  if (state.watch !== null || !navigator.geolocation) return;
  const camera = state.camera;
  state.watch = navigator.geolocation.watchPosition((fix) => {
    const first = state.fix === null;
    state.fix = fix;
    if (first) sendPosition(camera);
  }, () => { $("field-position").textContent = t("field.position.off"); },
  { enableHighAccuracy: true, maximumAge: POSITION_SECONDS * 1000 });
  state.every = setInterval(() => sendPosition(camera), POSITION_SECONDS * 1000);
}

function stopPositions() {
  if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
  clearInterval(state.every);
  state.watch = null;
  state.every = null;
  state.fix = null;
}

async function sendPosition(camera) {
  const fix = state.fix;
  if (!fix || state.state !== "publishing" || camera !== state.camera) return;
  const body = { latitude: fix.coords.latitude, longitude: fix.coords.longitude,
                 time: new Date(fix.timestamp).toISOString() };
  try {
    await api.post(`/whip/${camera}/position`, body);
    state.positions += 1;
    $("field-position").textContent = t("field.position", {
      lat: body.latitude.toFixed(5), lon: body.longitude.toFixed(5),
      time: new Date(fix.timestamp).toLocaleTimeString() });
  } catch { /* the next one goes in POSITION_SECONDS */ }
}

// --------------------------------------------------------------------------- wiring

function start() {
  state.camera = Number($("field-camera").value);
  if (!state.camera) return;
  state.wanted = true;
  state.attempt = 0;
  state.problem = null;
  publish();
}

function wire() {
  translate(document);
  document.title = t("field.title");
  api.whenAuthLost((reason) => signin(t("signin.ended", { reason: reasonText(reason) })));
  $("lang").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    document.title = t("field.title");
    if (state.state === "publishing") setState("publishing", { camera: cameraName(state.camera) });
    else setState(state.state, { reason: reasonText(state.problem || "") });
  });
  $("field-signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("field-signin-message").textContent = t("signin.busy");
    try {
      await api.signIn($("username").value, $("password").value);
      $("password").value = "";
      await enter();
    } catch (err) {
      $("field-signin-message").textContent = t("signin.failed", { reason: reasonText(err.message) });
    }
  });
  $("signout").addEventListener("click", async () => {
    stop(true);
    await api.signOut();
    signin("");
  });
  $("field-start").addEventListener("click", start);
  $("field-stop").addEventListener("click", () => stop(false));
  window.addEventListener("pagehide", () => { if (state.pc) stop(true); });
  if (api.token()) enter().catch((err) => signin(reasonText(err.message)));
  else show("signin");
}

wire();
