// Saved layouts and tours on the server (GET/POST/DELETE /api/v1/views) and the wall
// screens a desk drives (上墙: POST /api/v1/screens/{id}/show).  A saved view holds
// camera ids only: the wall names them from the catalogue and shows "not allowed" on
// a tile the user may not watch.  Every text goes in as textContent.
import * as api from "./api.js";
import { button, el } from "./dom.js";
import { t } from "./i18n.js";

const UNIT_EDITORS = new Set(["administrator", "operator"]);

export class SavedViews {
  constructor({ list, screenBox, screenSelect, wall, tour, user, say }) {
    this.list = list;
    this.screenBox = screenBox;
    this.screenSelect = screenSelect;
    this.wall = wall;        // () => the Wall
    this.tour = tour;        // () => the Tour
    this.user = user;        // () => the signed-in user
    this.say = say;          // text => a notice
    this.views = [];
    this.screens = [];
  }

  async load() {
    const [views, screens] = await Promise.all([
      api.request("/api/v1/views"), api.request("/api/v1/screens").catch(() => [])]);
    this.views = views;
    this.screens = screens;
    this.render();
  }

  render() {
    const items = this.views.map((view) => {
      const li = el("li", "saved-item");
      li.dataset.view = view.id;
      const open = button(view.name, () => this.restore(view), "saved-open");
      open.title = t("saved.restore", { name: view.name });
      const owner = view.owner.unit ? t("saved.owner.unit", { unit: view.owner.unit })
                                    : t("saved.owner.user");
      li.append(open, el("span", "saved-kind", `${t(`saved.kind.${view.kind}`)} · ${owner}`));
      if (this.screens.length) {
        const send = button(t("screen.send"), () => this.send({ view: view.id }), "saved-send");
        send.title = t("screen.send.view", { name: view.name });
        li.append(send);
      }
      if (view.editable) {
        const del = button("×", () => this.remove(view), "saved-delete");
        del.title = t("saved.delete", { name: view.name });
        del.setAttribute("aria-label", del.title);
        li.append(del);
      }
      return li;
    });
    this.list.replaceChildren(...(items.length ? items : [el("li", "none", t("saved.none"))]));
    const chosen = this.screenSelect.value;
    this.screenSelect.replaceChildren(...this.screens.map((s) => new Option(s.name, String(s.id))));
    if (chosen) this.screenSelect.value = chosen;
    this.screenBox.hidden = !this.screens.length;
  }

  // One click: a layout back on the wall, or a tour started.
  restore(view) {
    const wall = this.wall();
    this.tour().stop();
    if (view.kind === "tour") {
      if (wall.layout !== view.layout) wall.setLayout(view.layout);
      this.tour().start(view.cameras, view.seconds);
    } else {
      wall.cameras = view.cameras.slice();
      wall.setLayout(view.layout);
    }
    this.list.dispatchEvent(new CustomEvent("restored", { detail: view }));
  }

  mayShare() { return UNIT_EDITORS.has((this.user() || {}).role); }

  // What the wall shows now: the running tour or the layout.
  current() {
    const wall = this.wall();
    const tour = this.tour();
    if (tour.running) {
      return { kind: "tour", layout: wall.layout, cameras: tour.cameras, seconds: tour.seconds };
    }
    return { kind: "layout", layout: wall.layout, cameras: wall.cameras.slice() };
  }

  async save(body) {
    const view = await api.post("/api/v1/views", body);
    await this.load();
    this.say(t("saved.saved", { name: view.name }));
    return view;
  }

  async remove(view) {
    try {
      await api.del(`/api/v1/views/${view.id}`);
      await this.load();
    } catch (err) { this.say(t("saved.failed", { reason: err.message })); }
  }

  // To the chosen screen: a saved view ({view}) or what the wall shows now.
  async send(body) {
    const id = this.screenSelect.value;
    const screen = this.screens.find((s) => String(s.id) === id);
    if (!screen) return;
    try {
      const shown = await api.post(`/api/v1/screens/${id}/show`, body || this.current());
      Object.assign(screen, shown);
      this.say(t("screen.sent", { screen: screen.name }));
    } catch (err) { this.say(t("screen.failed", { reason: err.message })); }
  }

  // The live channel's screen.show: another desk changed a screen.
  screenChanged(shown) {
    const screen = this.screens.find((s) => s.id === shown.id);
    if (screen) Object.assign(screen, shown);
  }
}

// The "Save layout" dialog: a name, and for administrators and operators the owner.
export function bindSaveForm(saved, $) {
  $("view-save").addEventListener("click", () => {
    const user = saved.user();
    $("save-owner").replaceChildren(new Option(t("saved.owner.user"), "user"),
      ...(saved.mayShare() ? [new Option(t("saved.owner.unit", { unit: user.unit }), "unit")] : []));
    $("save-message").textContent = "";
    $("save-name").value = "";
    $("save-dialog").showModal();
  });
  $("save-cancel").addEventListener("click", () => $("save-dialog").close());
  $("save-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.assign(saved.current(), { name: $("save-name").value.trim(),
                                                  owner: $("save-owner").value });
    if (!body.name) { $("save-message").textContent = t("saved.noname"); return; }
    try {
      await saved.save(body);
      $("save-dialog").close();
    } catch (err) { $("save-message").textContent = t("saved.failed", { reason: err.message }); }
  });
  $("screen-send").addEventListener("click", () => saved.send(null));
}
