// The REST client: the bearer token lives in sessionStorage (never a URL or a cookie);
// a 401 anywhere ends the sign-in and tells the page why.
const TOKEN_KEY = "camrelay.token";

export class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

let onAuthLost = () => {};
export function whenAuthLost(fn) { onAuthLost = fn; }

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export async function problemOf(response) {
  try {
    return new Problem(response.status, await response.json());
  } catch {
    return new Problem(response.status, { title: response.statusText || `HTTP ${response.status}` });
  }
}

export function authLost(reason) { onAuthLost(reason); }

export async function request(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  const secret = token();
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401 && secret) {
    const problem = await problemOf(response);
    authLost(problem.message);
    throw problem;
  }
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}

export async function signIn(username, password) {
  const response = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw await problemOf(response);
  const body = await response.json();
  setToken(body.token);
  return body.user;
}

export async function signOut() {
  const secret = token();
  setToken(null);
  if (!secret) return;
  try {
    await fetch("/api/v1/auth/logout", { method: "POST", keepalive: true,
                                         headers: { Authorization: `Bearer ${secret}` } });
  } catch { /* signed out locally anyway */ }
}

export const me = () => request("/api/v1/auth/me");
export const units = () => request("/api/v1/units");

export async function cameras() {
  const all = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await request(`/api/v1/cameras?limit=1000&offset=${offset}`);
    all.push(...page.items);
    if (all.length >= page.total || !page.items.length) return all;
  }
}

const json = (method, body) => ({ method, headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify(body || {}) });
export const post = (path, body) => request(path, json("POST", body));
export const del = (path) => request(path, { method: "DELETE" });

// A file the API serves behind the bearer header (so no plain link can fetch it): a Blob.
export async function blob(path, accept) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${token()}`, Accept: accept } });
  if (!response.ok) throw await problemOf(response);
  return response.blob();
}

// The access log as CSV.
export const auditCsv = (query) => blob(`/api/v1/audit?${query}&format=csv`, "text/csv");

// The tree's thumbnail of a camera (its latest health check, a small JPEG kept in the
// server's memory; journalled as a snapshot): an object URL, or null when there is none.
export async function thumbnail(cameraId) {
  const response = await fetch(`/api/v1/cameras/${Number(cameraId)}/thumbnail`, {
    headers: { Authorization: `Bearer ${token()}`, Accept: "image/jpeg" } });
  if (!response.ok) return null;
  return URL.createObjectURL(await response.blob());
}
