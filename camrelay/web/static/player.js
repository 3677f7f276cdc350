// A minimal WHEP player (draft-ietf-wish-whep): recvonly H.264 video, one POST per view,
// DELETE on leave.  The bearer token comes from the field or sessionStorage
// ("camrelay.token"); ICE servers come from the Link headers of the last answer
// (kept in sessionStorage: the server does no trickle ICE, so they must be known
// before the offer is made).  Query parameters: camera, stream, purpose, autoplay=1.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "camrelay.token";
const ICE_KEY = "camrelay.iceServers";

const player = {
  pc: null,
  sessionUrl: null,
  postedAt: null,  // Date.now() when the offer was sent (for start-up measurements)
  token: null,
  state: "idle",
  video: $("video"),
};
window.camrelayPlayer = player;

function setStatus(state, text) {
  player.state = state;
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text || state;
}

function parseIceLinks(response) {
  const servers = [];
  const header = response.headers.get("Link");
  if (!header) return servers;
  // one or more comma-separated links: <url>; rel="ice-server"; username="..."; credential="..."
  for (const part of header.split(/,(?=\s*<)/)) {
    const url = /<([^>]+)>/.exec(part);
    if (!url || !/rel="?ice-server"?/.test(part)) continue;
    const server = { urls: url[1] };
    const user = /username="([^"]*)"/.exec(part);
    const cred = /credential="([^"]*)"/.exec(part);
    if (user) server.username = user[1];
    if (cred) server.credential = cred[1];
    servers.push(server);
  }
  return servers;
}

function cachedIceServers() {
  try { return JSON.parse(sessionStorage.getItem(ICE_KEY) || "[]"); } catch { return []; }
}

function waitForGathering(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); resolve(); };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
  });
}

async function problemText(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.title}: ${body.detail}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function play(camera, stream, purpose, token) {
  await stop();
  player.token = token;
  setStatus("connecting", `connecting to camera ${camera}…`);
  const pc = new RTCPeerConnection({ iceServers: cachedIceServers() });
  player.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => {
    player.video.srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc !== player.pc) return;
    if (pc.connectionState === "connected") setStatus("playing", `camera ${camera}: playing`);
    if (pc.connectionState === "failed") setStatus("error", "connection failed");
    if (pc.connectionState === "disconnected") setStatus("connecting", "connection interrupted…");
  };
  await pc.setLocalDescription(await pc.createOffer());
  await waitForGathering(pc, 2000);
  const query = new URLSearchParams({ stream });
  if (purpose) query.set("purpose", purpose);
  const endpoint = new URL(`/whep/${encodeURIComponent(camera)}?${query}`, location.href);
  player.postedAt = Date.now();
  const response = await fetch(endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/sdp", "Authorization": `Bearer ${token}` },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    const text = await problemText(response);
    pc.close();
    player.pc = null;
    setStatus("error", text);
    return;
  }
  player.sessionUrl = new URL(response.headers.get("Location"), endpoint).href;
  const servers = parseIceLinks(response);
  sessionStorage.setItem(ICE_KEY, JSON.stringify(servers));
  if (servers.length) pc.setConfiguration({ iceServers: servers });
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
  $("stop").disabled = false;
}

async function stop() {
  const pc = player.pc;
  const url = player.sessionUrl;
  player.pc = null;
  player.sessionUrl = null;
  if (pc) pc.close();
  player.video.srcObject = null;
  $("stop").disabled = true;
  if (url) {
    try {
      await fetch(url, { method: "DELETE", headers: { "Authorization": `Bearer ${player.token}` },
                         keepalive: true });
    } catch { /* leaving anyway */ }
  }
  if (pc) setStatus("idle", "stopped");
}
player.play = play;
player.stop = stop;

$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim() || sessionStorage.getItem(TOKEN_KEY) || "";
  if (!token) { setStatus("error", "enter a token"); return; }
  sessionStorage.setItem(TOKEN_KEY, token);
  if (!player.viewer) loadSession().catch(() => {});
  play($("camera").value.trim(), $("stream").value, $("purpose").value.trim(), token)
    .catch((err) => setStatus("error", String(err)));
});
$("stop").addEventListener("click", () => { stop(); });
window.addEventListener("pagehide", () => { stop(); });

// ---- signing in, the camera list and the watermark ----------------------------------

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY) || $("token").value.trim();
  const headers = Object.assign({ "Accept": "application/json" }, options.headers || {});
  if (token) headers["Authorization"] = `Bearer ${token}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) throw new Error(await problemText(response));
  return response.json();
}

async function signIn(username, password) {
  const response = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw new Error(await problemText(response));
  const body = await response.json();
  sessionStorage.setItem(TOKEN_KEY, body.token);
  $("token").value = body.token;
  $("password").value = "";
  return body.user;
}

async function loadSession() {
  const me = await api("/api/v1/auth/me");
  player.viewer = `${me.username} · ${me.unit}`;
  $("whoami").textContent = `signed in as ${me.username} (${me.unit}, ${me.role})`;
  const page = await api("/api/v1/cameras?limit=1000");
  const select = $("cameras");
  select.replaceChildren();
  const watchable = page.items.filter((c) => c.rights.includes("live"));
  for (const camera of watchable) {
    const option = document.createElement("option");
    option.value = camera.id;
    option.textContent = `${camera.id} · ${camera.name}${camera.location ? " · " + camera.location : ""}`;
    select.append(option);
  }
  if (!watchable.length) select.append(new Option("(no camera you may watch)", ""));
  if (watchable.length && !$("camera").value) $("camera").value = watchable[0].id;
  drawWatermark();
  return watchable;
}

function drawWatermark() {
  const overlay = $("overlay");
  if (!player.viewer) { overlay.replaceChildren(); return; }
  const stamp = new Date().toISOString().replace("T", " ").slice(0, 19) + " UTC";
  const text = `${player.viewer} · ${stamp}`;
  if (overlay.childElementCount !== 9) {
    overlay.replaceChildren(...Array.from({ length: 9 }, () => document.createElement("span")));
  }
  for (const span of overlay.children) span.textContent = text;
}
setInterval(drawWatermark, 1000);
player.loadSession = loadSession;

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("username").value.trim(), $("password").value)
    .then(loadSession)
    .then((cameras) => {
      setStatus("idle", cameras.length ? "signed in: choose a camera and press Play" : "signed in");
      if (cameras.length) $("controls").requestSubmit();
    })
    .catch((err) => setStatus("error", String(err.message || err)));
});
$("cameras").addEventListener("change", () => {
  $("camera").value = $("cameras").value;
  if ($("camera").value) $("controls").requestSubmit();
});
if (sessionStorage.getItem(TOKEN_KEY)) loadSession().catch(() => {});

const params = new URLSearchParams(location.search);
if (params.get("camera")) $("camera").value = params.get("camera");
if (params.get("stream")) $("stream").value = params.get("stream");
if (params.get("purpose")) $("purpose").value = params.get("purpose");
if (params.get("autoplay") === "1") $("controls").requestSubmit();
