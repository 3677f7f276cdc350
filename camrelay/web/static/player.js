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
  play($("camera").value.trim(), $("stream").value, $("purpose").value.trim(), token)
    .catch((err) => setStatus("error", String(err)));
});
$("stop").addEventListener("click", () => { stop(); });
window.addEventListener("pagehide", () => { stop(); });

const params = new URLSearchParams(location.search);
if (params.get("camera")) $("camera").value = params.get("camera");
if (params.get("stream")) $("stream").value = params.get("stream");
if (params.get("purpose")) $("purpose").value = params.get("purpose");
if (params.get("autoplay") === "1") $("controls").requestSubmit();
