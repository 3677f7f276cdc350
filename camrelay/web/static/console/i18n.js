// Every label, message and error of the console in Chinese (default) and English.
// A text is looked up by key; {name} placeholders are filled from the params object.
const LANG_KEY = "camrelay.lang";

const DICT = {
  zh: {
    "app.title": "指挥大厅视频控制台",
    "signin.title": "登录", "signin.user": "用户名", "signin.password": "密码",
    "signin.submit": "登录", "signin.busy": "正在登录…",
    "signin.failed": "登录失败：{reason}", "signin.ended": "已退出：{reason}",
    "signout": "退出", "signed.in.as": "{user}（{unit}，{role}）",
    "lang.switch": "English", "lang.switch.label": "切换到英文",
    "layout": "布局", "layout.1": "1 画面", "layout.2x2": "2×2", "layout.3x3": "3×3",
    "layout.4x4": "4×4", "layout.1+5": "1+5", "layout.1+7": "1+7",
    "wall.clear": "清空", "wall.label": "视频墙",
    "tree.title": "资源目录", "tree.filter": "搜索名称或位置", "tree.category": "类别",
    "tree.status": "状态", "tree.all": "全部", "tree.empty": "没有符合条件的摄像机",
    "tree.hint": "拖到画面上，或先选中画面再点击摄像机（回车键亦可）",
    "tree.loading": "正在加载目录…", "tree.locked": "无观看权限",
    "status.online": "在线", "status.offline": "离线", "status.fault": "故障",
    "status.unknown": "未知",
    "tile.empty": "空闲画面：拖入或点击摄像机", "tile.selected": "已选中：点击左侧摄像机放入",
    "tile.close": "关闭画面", "tile.label": "画面 {n}",
    "state.idle": "空闲", "state.connecting": "正在连接…", "state.live": "实时",
    "state.reconnecting": "正在重连…", "state.offline": "离线", "state.denied": "无权观看",
    "state.revoked": "已中断", "state.error": "错误", "state.paused": "已暂停（页面隐藏）",
    "msg.reconnecting": "信号中断，{seconds} 秒后重连：{reason}",
    "msg.upstream": "摄像机信号中断，正在重连：{reason}",
    "msg.offline": "摄像机离线：{reason}",
    "msg.denied": "您无权观看此摄像机：{reason}",
    "msg.apply": "申请方法：向平台审批人提交授权申请（所属单位 {unit}，摄像机 {camera}）；命令行：{cli}",
    "msg.revoked": "观看已被中断：{reason}",
    "msg.error": "无法播放：{reason}",
    "msg.auth": "登录已失效：{reason}",
    "channel.down": "实时通道断开，正在重连…",
    "role.administrator": "管理员", "role.approver": "审批人", "role.operator": "值班员",
    "role.viewer": "观看员", "role.technician": "技术员", "role.auditor": "审计员",
    "watermark": "{user} · {unit} · {time}",
    "reason.unreachable": "无法连接摄像机", "reason.auth": "摄像机拒绝了用户名或密码",
    "reason.timeout": "摄像机无响应（超时）", "reason.no_video": "摄像机没有发送视频",
    "reason.disabled": "摄像机已停用或不在有效期内", "reason.no_stream": "目录中没有流地址",
    "reason.unsupported": "不支持的视频格式", "reason.network": "网络连接中断",
    "reason.grant revoked": "授权已撤销", "reason.grant expired": "授权已到期",
    "reason.token revoked": "登录凭证已撤销", "reason.token expired": "登录凭证已过期",
    "reason.user disabled": "账号已停用", "reason.emergency access revoked": "应急授权已撤销",
    "reason.emergency access ended": "应急授权已结束",
    "reason.camera removed from the catalogue": "摄像机已从目录中删除",
    "msg.denied.short": "您无权观看此摄像机",
    "reason.the bearer token has been revoked": "登录凭证已撤销",
    "reason.the bearer token has expired; log in again": "登录已过期，请重新登录",
    "reason.the account is disabled": "账号已停用",
    "reason.the bearer token is not known": "登录凭证无效",
    "reason.signed out": "已退出登录",
  },
  en: {
    "app.title": "Command hall video console",
    "signin.title": "Sign in", "signin.user": "User", "signin.password": "Password",
    "signin.submit": "Sign in", "signin.busy": "Signing in…",
    "signin.failed": "Sign-in failed: {reason}", "signin.ended": "Signed out: {reason}",
    "signout": "Sign out", "signed.in.as": "{user} ({unit}, {role})",
    "lang.switch": "中文", "lang.switch.label": "Switch to Chinese",
    "layout": "Layout", "layout.1": "1 tile", "layout.2x2": "2×2", "layout.3x3": "3×3",
    "layout.4x4": "4×4", "layout.1+5": "1+5", "layout.1+7": "1+7",
    "wall.clear": "Clear", "wall.label": "Video wall",
    "tree.title": "Catalogue", "tree.filter": "Search name or location", "tree.category": "Category",
    "tree.status": "Status", "tree.all": "All", "tree.empty": "No camera matches",
    "tree.hint": "Drag onto a tile, or select a tile and click a camera (Enter works too)",
    "tree.loading": "Loading the catalogue…", "tree.locked": "not allowed to watch",
    "status.online": "online", "status.offline": "offline", "status.fault": "fault",
    "status.unknown": "unknown",
    "tile.empty": "Empty tile: drop or click a camera", "tile.selected": "Selected: click a camera to place it",
    "tile.close": "Close tile", "tile.label": "Tile {n}",
    "state.idle": "idle", "state.connecting": "connecting…", "state.live": "live",
    "state.reconnecting": "reconnecting…", "state.offline": "offline", "state.denied": "not allowed",
    "state.revoked": "cut off", "state.error": "error", "state.paused": "paused (page hidden)",
    "msg.reconnecting": "Signal lost, reconnecting in {seconds} s: {reason}",
    "msg.upstream": "The camera's signal dropped, reconnecting: {reason}",
    "msg.offline": "Camera offline: {reason}",
    "msg.denied": "You may not watch this camera: {reason}",
    "msg.apply": "To apply: send a grant request to the platform's approvers (owner unit {unit}, camera {camera}); CLI: {cli}",
    "msg.revoked": "The view was cut: {reason}",
    "msg.error": "Cannot play: {reason}",
    "msg.auth": "Your sign-in has ended: {reason}",
    "channel.down": "Live channel lost, reconnecting…",
    "role.administrator": "administrator", "role.approver": "approver", "role.operator": "operator",
    "role.viewer": "viewer", "role.technician": "technician", "role.auditor": "auditor",
    "watermark": "{user} · {unit} · {time}",
    "msg.denied.short": "You may not watch this camera",
    "reason.unreachable": "cannot connect to the camera", "reason.auth": "the camera refused the user or password",
    "reason.timeout": "the camera does not answer (timeout)", "reason.no_video": "the camera sends no video",
    "reason.disabled": "the camera is disabled or outside its validity", "reason.no_stream": "no stream address in the catalogue",
    "reason.unsupported": "unsupported video format", "reason.network": "network connection lost",
  },
};

let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
const listeners = new Set();

export function t(key, params = {}) {
  const text = DICT[lang][key] ?? DICT.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

export function language() { return lang; }

// A reason the server gives as a code ("unreachable") or a known phrase ("grant
// revoked") in the page's language; anything else as it came.
export function reasonText(reason) {
  if (!reason) return "";
  const key = `reason.${reason.replace(/^revoked: /, "")}`;
  return DICT[lang][key] ?? (lang === "en" ? reason.replace(/^revoked: /, "") : DICT.zh[key] ?? reason);
}

export function setLanguage(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  translate(document);
  for (const fn of listeners) fn(lang);
}

export function onLanguage(fn) { listeners.add(fn); }

// Elements name their text with data-i18n (textContent), data-i18n-placeholder,
// data-i18n-label (aria-label) and data-i18n-title.
export function translate(root) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("app.title");
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
}
