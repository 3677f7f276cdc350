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
    "nav.wall": "视频墙", "nav.admin": "管理",
    "tour": "轮巡", "tour.start": "开始轮巡", "tour.stop": "停止轮巡", "tour.title": "轮巡设置",
    "tour.cameras": "摄像机（按住 Ctrl 多选）", "tour.unit": "或选择单位（含下级）的全部摄像机",
    "tour.none": "—", "tour.seconds": "每页停留（秒）", "tour.page": "轮巡 第 {page}/{pages} 页",
    "tour.empty": "请选择摄像机或单位",
    "dialog.cancel": "取消", "dialog.submit": "提交",
    "em.open": "应急调阅", "em.title": "开启应急调阅", "em.reason": "原因（必填）",
    "em.incident": "事件编号（必填）", "em.cameras": "摄像机（按住 Ctrl 多选）",
    "em.unit": "单位（含下级）", "em.near": "或地图上的点及半径",
    "em.lat": "纬度", "em.lon": "经度", "em.radius": "半径（公里）", "em.hours": "时长（小时）",
    "em.badge": "应急", "em.tile": "应急调阅 #{id}",
    "note.em.opened": "应急调阅 #{id}：{user}（{unit}）因「{reason}」开启，事件 {incident}，至 {until}",
    "note.em.confirmed": "应急调阅 #{id} 已由 {by} 确认",
    "note.em.revoked": "应急调阅 #{id} 已由 {by} 撤销：{comment}",
    "note.grant.requested": "新的授权申请 #{id}：{user} 申请「{purpose}」",
    "note.grant.active": "授权申请 #{id} 已批准（{by}）：{comment}",
    "note.grant.rejected": "授权申请 #{id} 已驳回（{by}）：{comment}",
    "note.grant.revoked": "授权 #{id} 已撤销（{by}）：{comment}",
    "note.review": "去审批", "note.dismiss": "知道了", "note.confirm": "确认", "note.revoke": "撤销",
    "note.comment": "意见", "notes.label": "通知",
    "grant.apply": "申请授权", "grant.title": "申请观看授权", "grant.camera": "摄像机",
    "grant.actions": "权限", "grant.purpose": "用途（必填）", "grant.until": "有效期至",
    "grant.sent": "申请 #{id} 已提交，等待审批",
    "action.live": "实时观看", "action.snapshot": "截图", "action.ptz": "云台控制",
    "ptz.label": "云台控制", "ptz.up": "上", "ptz.down": "下", "ptz.left": "左", "ptz.right": "右",
    "ptz.zoomin": "放大", "ptz.zoomout": "缩小", "ptz.presets": "预置位", "ptz.goto": "转到预置位",
    "ptz.free": "控制权空闲", "ptz.holder": "控制人：{user}", "ptz.holder.em": "控制人：{user}（应急）",
    "ptz.failed": "云台失败：{reason}",
    "admin.title": "管理", "tab.requests": "待审批申请", "tab.grants": "有效授权",
    "tab.emergencies": "应急调阅", "tab.audit": "访问日志", "tab.cameras": "摄像机",
    "tab.users": "用户与令牌",
    "col.id": "编号", "col.requester": "申请人", "col.grantee": "被授权", "col.cameras": "摄像机",
    "col.actions": "权限", "col.purpose": "用途", "col.until": "有效期至", "col.decide": "审批",
    "col.status": "状态", "col.decided": "审批人", "col.opened": "开启人", "col.incident": "事件",
    "col.reason": "原因", "col.time": "时间", "col.user": "用户", "col.unit": "单位",
    "col.camera": "摄像机", "col.kind": "类型", "col.basis": "依据", "col.result": "结果",
    "col.name": "名称", "col.category": "类别", "col.lastseen": "最后在线", "col.role": "角色",
    "col.disabled": "已停用", "col.token": "令牌", "col.expires": "到期", "col.revoked": "已撤销",
    "col.created": "创建时间", "col.end": "结束",
    "btn.approve": "批准", "btn.reject": "驳回", "btn.revoke": "撤销", "btn.confirm": "确认",
    "btn.search": "查询", "btn.export": "导出 CSV", "btn.refresh": "刷新",
    "admin.none": "没有记录", "admin.failed": "操作失败：{reason}", "admin.done": "已完成",
    "admin.forbidden": "无权查看：{reason}", "yes": "是", "no": "否",
    "filter.user": "用户", "filter.unit": "单位代码", "filter.camera": "摄像机编号",
    "filter.since": "开始时间", "filter.until": "结束时间", "filter.result": "结果",
    "filter.kind": "类型",
    "result.allowed": "允许", "result.denied": "拒绝", "result.ok": "成功",
    "kind.view": "观看", "kind.denied": "拒绝", "kind.admin": "管理操作", "kind.auth": "认证",
    "kind.journal": "日志",
    "grant.status.pending": "待审批", "grant.status.active": "有效", "grant.status.scheduled": "未生效",
    "grant.status.expired": "已到期", "grant.status.rejected": "已驳回", "grant.status.revoked": "已撤销",
    "em.status.open": "待确认", "em.status.confirmed": "已确认", "em.status.revoked": "已撤销",
    "em.status.ended": "已结束",
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
    "nav.wall": "Video wall", "nav.admin": "Administration",
    "tour": "Tour", "tour.start": "Start tour", "tour.stop": "Stop tour", "tour.title": "Tour",
    "tour.cameras": "Cameras (Ctrl-click for several)", "tour.unit": "or every camera of a unit (and below)",
    "tour.none": "—", "tour.seconds": "Seconds per page", "tour.page": "Tour page {page}/{pages}",
    "tour.empty": "Choose cameras or a unit",
    "dialog.cancel": "Cancel", "dialog.submit": "Submit",
    "em.open": "Emergency", "em.title": "Open emergency access", "em.reason": "Reason (required)",
    "em.incident": "Incident reference (required)", "em.cameras": "Cameras (Ctrl-click for several)",
    "em.unit": "Unit (and below)", "em.near": "or a point on the map and a radius",
    "em.lat": "Latitude", "em.lon": "Longitude", "em.radius": "Radius (km)", "em.hours": "Hours",
    "em.badge": "emergency", "em.tile": "emergency access #{id}",
    "note.em.opened": "Emergency access #{id}: {user} ({unit}) opened it for \u201c{reason}\u201d, incident {incident}, until {until}",
    "note.em.confirmed": "Emergency access #{id} confirmed by {by}",
    "note.em.revoked": "Emergency access #{id} revoked by {by}: {comment}",
    "note.grant.requested": "New grant request #{id}: {user} for \u201c{purpose}\u201d",
    "note.grant.active": "Grant request #{id} approved ({by}): {comment}",
    "note.grant.rejected": "Grant request #{id} rejected ({by}): {comment}",
    "note.grant.revoked": "Grant #{id} revoked ({by}): {comment}",
    "note.review": "Review", "note.dismiss": "Dismiss", "note.confirm": "Confirm", "note.revoke": "Revoke",
    "note.comment": "Comment", "notes.label": "Notifications",
    "grant.apply": "Apply for a grant", "grant.title": "Apply for a viewing grant", "grant.camera": "Camera",
    "grant.actions": "Actions", "grant.purpose": "Purpose (required)", "grant.until": "Valid until",
    "grant.sent": "Request #{id} sent; waiting for an approver",
    "action.live": "live", "action.snapshot": "snapshot", "action.ptz": "PTZ",
    "ptz.label": "PTZ control", "ptz.up": "Up", "ptz.down": "Down", "ptz.left": "Left", "ptz.right": "Right",
    "ptz.zoomin": "Zoom in", "ptz.zoomout": "Zoom out", "ptz.presets": "Presets", "ptz.goto": "Go to preset",
    "ptz.free": "control free", "ptz.holder": "controlled by {user}", "ptz.holder.em": "controlled by {user} (emergency)",
    "ptz.failed": "PTZ failed: {reason}",
    "admin.title": "Administration", "tab.requests": "Pending requests", "tab.grants": "Active grants",
    "tab.emergencies": "Emergency access", "tab.audit": "Access log", "tab.cameras": "Cameras",
    "tab.users": "Users and tokens",
    "col.id": "No.", "col.requester": "Requested by", "col.grantee": "Grantee", "col.cameras": "Cameras",
    "col.actions": "Actions", "col.purpose": "Purpose", "col.until": "Valid until", "col.decide": "Decision",
    "col.status": "Status", "col.decided": "Decided by", "col.opened": "Opened by", "col.incident": "Incident",
    "col.reason": "Reason", "col.time": "Time", "col.user": "User", "col.unit": "Unit",
    "col.camera": "Camera", "col.kind": "Kind", "col.basis": "Basis", "col.result": "Result",
    "col.name": "Name", "col.category": "Category", "col.lastseen": "Last seen", "col.role": "Role",
    "col.disabled": "Disabled", "col.token": "Token", "col.expires": "Expires", "col.revoked": "Revoked",
    "col.created": "Created", "col.end": "End",
    "btn.approve": "Approve", "btn.reject": "Reject", "btn.revoke": "Revoke", "btn.confirm": "Confirm",
    "btn.search": "Search", "btn.export": "Export CSV", "btn.refresh": "Refresh",
    "admin.none": "Nothing here", "admin.failed": "Failed: {reason}", "admin.done": "Done",
    "admin.forbidden": "Not allowed: {reason}", "yes": "yes", "no": "no",
    "filter.user": "User", "filter.unit": "Unit code", "filter.camera": "Camera id",
    "filter.since": "From", "filter.until": "To", "filter.result": "Result",
    "filter.kind": "Kind",
    "result.allowed": "allowed", "result.denied": "denied", "result.ok": "ok",
    "kind.view": "view", "kind.denied": "refused", "kind.admin": "administration", "kind.auth": "sign-in",
    "kind.journal": "journal",
    "grant.status.pending": "pending", "grant.status.active": "active", "grant.status.scheduled": "scheduled",
    "grant.status.expired": "expired", "grant.status.rejected": "rejected", "grant.status.revoked": "revoked",
    "em.status.open": "awaiting confirmation", "em.status.confirmed": "confirmed", "em.status.revoked": "revoked",
    "em.status.ended": "ended",
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
