// A tour (轮巡): a list of cameras cycled through the wall's layout, one page every N
// seconds.  The next page is connected ahead, in players kept out of sight, so a switch
// only swaps them into the tiles: the pictures are there at once.  The tour is kept in
// the tab's sessionStorage; tours are saved on the server from the list (saved.js).
import { LAYOUTS, streamFor } from "./layouts.js";
import { t } from "./i18n.js";

const KEY = "camrelay.tour";

export class Tour extends EventTarget {
  constructor(wall, standby) {
    super();
    this.wall = wall;
    this.standby = standby;  // an out-of-sight box for the next page's players
    this.pages = [];
    this.page = 0;
    this.timer = null;
    this.next = [];
    this.seconds = 10;
  }

  get running() { return this.timer !== null; }

  static saved() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { return null; }
  }

  start(cameras, seconds) {
    this.stop();
    const size = LAYOUTS[this.wall.layout].tiles;
    this.pages = [];
    for (let i = 0; i < cameras.length; i += size) this.pages.push(cameras.slice(i, i + size));
    if (!this.pages.length) return;
    this.seconds = Math.max(2, Number(seconds) || 10);
    this.cameras = cameras.slice();
    sessionStorage.setItem(KEY, JSON.stringify({ cameras, seconds: this.seconds }));
    this.page = 0;
    this.wall.show(this.pages[0]);
    this.prepare();
    this.timer = setInterval(() => this.advance(), this.seconds * 1000);
    this.announce();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    for (const player of this.next) player.remove();  // ends their sessions
    this.next = [];
    sessionStorage.removeItem(KEY);
    this.announce();
  }

  // Players for the page after the current one, connected now.
  prepare(reuse = []) {
    if (this.pages.length < 2) return;
    const ids = this.pages[(this.page + 1) % this.pages.length];
    const layout = this.wall.layout;
    this.next = this.wall.tiles.map((tile, i) => {
      const player = reuse[i] || document.createElement("camrelay-player");
      player.purpose = "command hall wall";
      player.setAttribute("stream", streamFor(layout, i, false));
      if (ids[i]) player.setAttribute("camera", String(ids[i]));
      else player.removeAttribute("camera");
      player.shownAt = 0;
      if (!player.isConnected) this.standby.append(player);
      return player;
    });
  }

  advance() {
    if (this.pages.length < 2) return;
    if (this.next.length !== this.wall.tiles.length) { this.stop(); return; }  // layout changed
    this.page = (this.page + 1) % this.pages.length;
    this.switchedAt = performance.now();
    const old = this.wall.swap(this.next);
    this.standby.append(...old);  // same task: they stay connected
    this.prepare(old);
    this.announce();
  }

  label() {
    return this.running ? t("tour.page", { page: this.page + 1, pages: this.pages.length }) : "";
  }

  announce() { this.dispatchEvent(new CustomEvent("change")); }
}
