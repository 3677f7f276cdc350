// Small DOM helpers: every text goes in as textContent, never as markup.
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function button(text, onClick, className = "") {
  const node = el("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

// A local time such as 2026-10-07 14:05 from an ISO string (or "" for none).
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

// A table: columns are [header text, row => text or Node].
export function table(columns, rows, emptyText) {
  const node = el("table", "grid-table");
  const head = el("tr");
  for (const [title] of columns) head.append(el("th", "", title));
  const thead = el("thead");
  thead.append(head);
  node.append(thead);
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const [, cell] of columns) {
      const value = cell(row);
      const td = el("td");
      if (value instanceof Node) td.append(value); else td.textContent = value ?? "";
      tr.append(td);
    }
    body.append(tr);
  }
  node.append(body);
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "none", emptyText);
    td.colSpan = columns.length;
    tr.append(td);
    body.append(tr);
  }
  return node;
}

// A <label> with its text and control.
export function field(text, control) {
  const label = el("label", "field");
  label.append(el("span", "", text), control);
  return label;
}

export function input(name, type = "text", value = "") {
  const node = el("input");
  node.name = name;
  node.type = type;
  if (value !== "") node.value = value;
  return node;
}

// Save a Blob as a file named `name` (the browser's download).
export function download(data, name) {
  const url = URL.createObjectURL(data);
  const a = el("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
