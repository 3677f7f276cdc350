// What the live channel announces to this user, as a list under the header: emergency
// access opened (approvers confirm or revoke it here), grant requests and decisions.
import * as api from "./api.js";
import { button, el, input, when } from "./dom.js";
import { t } from "./i18n.js";

export class Notices {
  constructor(root, { user, unitName, openAdmin }) {
    this.root = root;
    this.openAdmin = openAdmin;  // tab => show that administration page
    this.user = user;
    this.unitName = unitName;
    this.items = new Map();  // key => node
  }

  clear() { this.items.clear(); this.root.replaceChildren(); this.root.hidden = true; }

  put(key, text, extra = [], kind = "") {
    const node = el("div", `notice ${kind}`);
    node.dataset.key = key;
    node.setAttribute("role", "status");
    node.append(el("span", "notice-text", text), ...extra,
                button(t("note.dismiss"), () => this.drop(key), "dismiss"));
    const old = this.items.get(key);
    if (old) old.replaceWith(node); else this.root.prepend(node);
    this.items.set(key, node);
    this.root.hidden = false;
  }

  drop(key) {
    const node = this.items.get(key);
    if (node) node.remove();
    this.items.delete(key);
    this.root.hidden = !this.items.size;
  }

  say(text) { this.put(`say-${Date.now()}`, text); }

  emergency(kind, em) {
    const key = `em-${em.id}`;
    const by = em.revoked_by || em.confirmed_by || "";
    if (kind === "emergency.opened" || (kind === "list" && em.status === "open")) {
      const extra = [];
      if (this.user().role === "approver" && this.user().username !== em.opened_by) {
        const comment = input("comment");
        comment.placeholder = t("note.comment");
        comment.setAttribute("aria-label", t("note.comment"));
        const send = async (verb) => {
          try {
            await api.post(`/api/v1/emergencies/${em.id}/${verb}`,
                           { comment: comment.value.trim() || null });
          } catch (err) { this.say(t("admin.failed", { reason: err.message })); }
        };
        extra.push(comment, button(t("note.confirm"), () => send("confirm"), "approve"),
                   button(t("note.revoke"), () => send("revoke"), "reject"));
      }
      this.put(key, t("note.em.opened", { id: em.id, user: em.opened_by, unit: this.unitName(em.unit),
                                          reason: em.reason, incident: em.incident,
                                          until: when(em.expires_at) }), extra, "emergency");
    } else if (kind === "emergency.confirmed") {
      this.put(key, t("note.em.confirmed", { id: em.id, by }));
    } else if (kind === "emergency.revoked") {
      this.put(key, t("note.em.revoked", { id: em.id, by, comment: em.comment || "" }), [], "emergency");
    }
  }

  grant(kind, g) {
    const key = `grant-${g.id}`;
    if (kind === "grant.requested") {
      if (g.requested_by === this.user().username) return;  // one's own request: said already
      const extra = this.openAdmin ? [button(t("note.review"), () => this.openAdmin("requests"))] : [];
      this.put(key, t("note.grant.requested", { id: g.id, user: g.requested_by, purpose: g.purpose }),
               extra);
    } else if (["active", "scheduled", "rejected", "revoked"].includes(g.status)) {
      const status = g.status === "scheduled" ? "active" : g.status;
      this.put(key, t(`note.grant.${status}`, { id: g.id, by: g.revoked_by || g.decided_by || "",
                                                comment: g.revoke_reason || g.decision_comment || "" }));
    }
  }
}
