// The page's one live channel: GET /api/v1/events (Server-Sent Events) read with fetch()
// and a stream reader, because EventSource cannot send the Authorization header.
// Reconnects with backoff; a token.revoked event (or a 401) ends the sign-in.
import { authLost, problemOf, token } from "./api.js";

export class LiveChannel extends EventTarget {
  constructor() {
    super();
    this.abort = null;
    this.connected = false;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }

  async run() {
    let delay = 1000;
    while (!this.stopped) {
      const started = Date.now();
      try {
        await this.readOnce();
      } catch (err) {
        if (err.name === "AbortError" || this.stopped) return;
      }
      this.setConnected(false);
      if (this.stopped) return;
      if (Date.now() - started > 30000) delay = 1000;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 30000);
    }
  }

  setConnected(value) {
    if (this.connected === value) return;
    this.connected = value;
    this.dispatchEvent(new CustomEvent("channel", { detail: { connected: value } }));
  }

  async readOnce() {
    const secret = token();
    if (!secret) { this.stopped = true; return; }
    this.abort = new AbortController();
    const response = await fetch("/api/v1/events", {
      headers: { Authorization: `Bearer ${secret}`, Accept: "text/event-stream" },
      signal: this.abort.signal, cache: "no-store",
    });
    if (response.status === 401) {
      this.stopped = true;
      authLost((await problemOf(response)).message);
      return;
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.handle(block);
      }
    }
  }

  handle(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;  // keep-alive comment
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    let detail;
    try { detail = JSON.parse(data.join("\n")); } catch { return; }
    if (type === "hello") this.setConnected(true);
    this.dispatchEvent(new CustomEvent(type, { detail }));
    if (type === "token.revoked") {
      this.stopped = true;
      authLost(detail.reason || "token revoked");
    }
  }
}
