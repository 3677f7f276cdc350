"""Reading catalogue files the information centre compiles (CSV or JSON).

Windows tools export CSV in GBK/GB18030, others in UTF-8 with or without a BOM: the
encoding is detected (or given), and every row keeps its line number so errors can
point at it.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from camrelay import jsonsafe
from camrelay.catalog.fields import COLUMNS, REQUIRED_COLUMNS
from camrelay.errors import ValidationError


def decode(data: bytes, encoding: str | None = None) -> str:
    if encoding:
        try:
            return data.decode(encoding)
        except LookupError:
            raise ValidationError(f"unknown encoding {encoding!r}", field="encoding") from None
        except UnicodeDecodeError as err:
            raise ValidationError(
                f"the file is not valid {encoding} (byte {err.start}); check --encoding",
                field="encoding") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise ValidationError(
            "the file is neither UTF-8 nor GBK/GB18030; give its encoding with --encoding",
            field="encoding") from None


def read_rows(data: bytes, *, fmt: str = "auto", encoding: str | None = None
              ) -> list[tuple[int, dict[str, Any]]]:
    """(line number, fields) for every row; empty cells are left out."""
    text = decode(data, encoding)
    if fmt == "auto":
        fmt = "json" if text.lstrip().startswith(("[", "{")) else "csv"
    if fmt == "json":
        return _json_rows(text)
    if fmt == "csv":
        return _csv_rows(text)
    raise ValidationError(f"unknown format {fmt!r} (csv or json)", field="format")


def _json_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        items = jsonsafe.loads(text)
    except jsonsafe.UnsafeJson as err:
        raise ValidationError(f"the file is not valid JSON: {err}", field="file") from None
    if isinstance(items, dict) and isinstance(items.get("cameras"), list):
        items = items["cameras"]
    if not isinstance(items, list):
        raise ValidationError("a JSON catalogue is a list of camera objects", field="file")
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValidationError(f"item {index} is not an object", field="file")
        rows.append((index, {k: v for k, v in item.items() if v not in (None, "")}))
    return rows


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValidationError("the CSV file is empty", field="file") from None
    except csv.Error as err:
        raise ValidationError(f"the CSV header cannot be read: {err}", field="file") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValidationError(f"the CSV file lacks the column(s) {', '.join(missing)} "
                              f"(it has: {', '.join(header) or 'none'})", field="columns")
    unknown = [c for c in header if c and c not in COLUMNS]
    if unknown:
        raise ValidationError(f"unknown CSV column(s) {', '.join(unknown)}; known: "
                              f"{', '.join(COLUMNS)}", field="columns")
    rows: list[tuple[int, dict[str, Any]]] = []
    line = reader.line_num
    try:
        for cells in reader:
            start = line + 1
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                rows.append((start, {"__error__": f"{len(cells)} cells, the header has "
                                                  f"{len(header)}"}))
                continue
            fields = {h: c.strip() for h, c in zip(header, cells) if h and c.strip() != ""}
            rows.append((start, fields))
    except csv.Error as err:
        raise ValidationError(f"line {reader.line_num}: the CSV cannot be read: {err}",
                              field="file") from None
    return rows
