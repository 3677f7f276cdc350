// The unit tree (province → city → county) with each unit's cameras and their status,
// filtered by text, category and status.  A camera row is dragged onto a tile, or
// clicked (or Enter) to go onto the selected tile.
import { DRAG_TYPE } from "./wall.js";
import { t } from "./i18n.js";
import { thumbnail } from "./api.js";

const HOVER_MS = 400; // a thumbnail is fetched (and journalled) only on a deliberate hover

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class UnitTree {
  constructor(root, { onPick, health }) {
    this.root = root;
    this.onPick = onPick;
    this.health = health;  // Health: the badge (reason, since when) of a camera
    this.units = [];
    this.cameras = new Map();
    this.filter = { text: "", category: "", status: "" };
    this.collapsed = new Set();
  }

  load(units, cameras) {
    this.units = units;
    this.cameras = new Map(cameras.map((c) => [c.id, c]));
    this.render();
  }

  camera(id) { return this.cameras.get(id); }

  unitName(code) {
    const unit = this.units.find((u) => u.code === code);
    return unit ? unit.name : code;
  }

  categories() { return [...new Set([...this.cameras.values()].map((c) => c.category))].sort(); }

  setFilter(filter) {
    Object.assign(this.filter, filter);
    this.render();
  }

  // A camera.status event: its dot and badge, or the list again when filtered by status.
  setStatus(cameraId, status, reason) {
    this.health.update(cameraId, status, reason);
    const camera = this.cameras.get(cameraId);
    if (!camera) return;
    const was = camera.status;
    camera.status = status;
    if (this.filter.status && was !== status) { this.render(); return; }
    const row = this.root.querySelector(`[data-camera="${Number(cameraId)}"]`);
    if (row) this.drawStatus(row, camera);
  }

  matches(camera) {
    const { text, category, status } = this.filter;
    if (category && camera.category !== category) return false;
    if (status && camera.status !== status) return false;
    if (text) {
      const hay = `${camera.name} ${camera.location || ""} ${camera.external_id}`.toLowerCase();
      if (!hay.includes(text.toLowerCase())) return false;
    }
    return true;
  }

  render() {
    const children = new Map();
    for (const unit of this.units) {
      const list = children.get(unit.parent ?? null) || [];
      list.push(unit);
      children.set(unit.parent ?? null, list);
    }
    const byUnit = new Map();
    for (const camera of this.cameras.values()) {
      if (!this.matches(camera)) continue;
      const list = byUnit.get(camera.unit) || [];
      list.push(camera);
      byUnit.set(camera.unit, list);
    }
    const known = new Set(this.units.map((u) => u.code));
    const roots = (children.get(null) || []).concat(
      this.units.filter((u) => u.parent && !known.has(u.parent)));
    const list = el("ul", "tree");
    list.setAttribute("role", "tree");
    let shown = 0;
    const filtering = this.filter.text || this.filter.category || this.filter.status;
    const branch = (unit, depth) => {
      const cams = (byUnit.get(unit.code) || []).sort((a, b) => a.name.localeCompare(b.name));
      const subs = (children.get(unit.code) || []).map((u) => branch(u, depth + 1)).filter(Boolean);
      if (filtering && !cams.length && !subs.length) return null;
      const item = el("li", "unit");
      item.setAttribute("role", "treeitem");
      const open = !this.collapsed.has(unit.code);
      item.setAttribute("aria-expanded", open ? "true" : "false");
      const head = el("button", "unit-name");
      head.type = "button";
      head.append(el("span", "twisty", open ? "▾" : "▸"), el("span", "", unit.name));
      head.addEventListener("click", () => {
        if (open) this.collapsed.add(unit.code); else this.collapsed.delete(unit.code);
        this.render();
      });
      item.append(head);
      if (open) {
        const group = el("ul");
        group.setAttribute("role", "group");
        // a unit's own cameras first, then its sub-units
        for (const camera of cams) { group.append(this.cameraRow(camera)); shown++; }
        for (const sub of subs) group.append(sub);
        item.append(group);
      } else {
        shown += cams.length;
      }
      return item;
    };
    for (const unit of roots) {
      const node = branch(unit, 0);
      if (node) list.append(node);
    }
    this.root.replaceChildren(list);
    if (!shown) this.root.append(el("p", "tree-empty", t("tree.empty")));
  }

  cameraRow(camera) {
    const row = el("li", "camera");
    row.setAttribute("role", "treeitem");
    row.tabIndex = 0;
    row.dataset.camera = camera.id;
    row.draggable = true;
    row.append(el("span", "status"), el("span", "camera-name", camera.name),
               el("span", "status-badge"));
    this.drawStatus(row, camera);
    // the tooltip's "down for …" counts on: drawn again as the pointer or focus arrives
    row.addEventListener("mouseenter", () => this.drawStatus(row, camera));
    row.addEventListener("focus", () => this.drawStatus(row, camera));
    if (!camera.rights.includes("live")) {
      row.classList.add("locked");
      const lock = el("span", "lock");
      lock.title = t("tree.locked");
      lock.setAttribute("aria-label", t("tree.locked"));
      row.append(lock);
    }
    if (camera.rights.includes("snapshot")) this.hoverThumbnail(row, camera.id);
    row.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(DRAG_TYPE, String(camera.id));
      event.dataTransfer.effectAllowed = "copy";
    });
    row.addEventListener("click", () => this.onPick(camera.id));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        this.onPick(camera.id);
      }
    });
    return row;
  }

  // The latest checked keyframe as a small picture while the pointer rests on the row.
  hoverThumbnail(row, cameraId) {
    let timer = null;
    let shown = null;
    const hide = () => {
      clearTimeout(timer);
      timer = null;
      if (shown) { URL.revokeObjectURL(shown.src); shown.remove(); shown = null; }
    };
    row.addEventListener("mouseenter", () => {
      timer = setTimeout(async () => {
        const url = await thumbnail(cameraId).catch(() => null);
        if (!url || timer === null) { if (url) URL.revokeObjectURL(url); return; }
        shown = el("img", "thumb");
        shown.alt = "";
        shown.src = url;
        row.append(shown);
      }, HOVER_MS);
    });
    row.addEventListener("mouseleave", hide);
    row.addEventListener("dragstart", hide);
  }

  // The dot (every status) and, for offline and fault, a badge with the reason; the
  // tooltip says how long it has been down.
  drawStatus(row, camera) {
    const dot = row.querySelector(".status");
    const badge = row.querySelector(".status-badge");
    const bad = this.health.badge(camera.id, camera.status);
    const title = bad ? bad.title : t(`status.${camera.status}`);
    dot.dataset.status = camera.status;
    dot.title = title;
    dot.setAttribute("aria-label", title);
    badge.hidden = !bad;
    badge.dataset.status = camera.status;
    badge.textContent = bad ? bad.short : "";
    badge.title = title;
    row.title = bad ? `${camera.name} · ${title}` : "";
  }
}
