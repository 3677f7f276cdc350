"""Merging the workers' answers to the fanned-out routes (pure functions).

* ``GET /api/v1/sessions``: the lists concatenated, each session marked with its
  ``worker``.
* ``GET /metrics``: one Prometheus text; every sample gets a ``worker="k"`` label, each
  family's ``# HELP`` and ``# TYPE`` appear once, and all samples of a family stay
  together (the text format requires it), in the order families first appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

_SUFFIXES = ("", "_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_gcount")


def merge_sessions(answers: Iterable[tuple[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for worker, sessions in answers:
        out.extend(dict(session, worker=worker) for session in sessions)
    return out


@dataclass
class _Family:
    help: str | None = None
    type: str | None = None
    samples: list[str] = field(default_factory=list)


def with_worker_label(sample: str, worker: int) -> str:
    """``name{a="b"} 1`` -> ``name{worker="k",a="b"} 1``; ``name 1`` -> ``name{worker="k"} 1``."""
    label = f'worker="{worker}"'
    brace = sample.find("{")
    space = sample.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        rest = sample[brace + 1:]
        return f"{sample[:brace + 1]}{label}{'' if rest.startswith('}') else ','}{rest}"
    if space == -1:
        raise ValueError(f"not a Prometheus sample: {sample[:80]!r}")
    return f"{sample[:space]}{{{label}}}{sample[space:]}"


def _sample_name(sample: str) -> str:
    end = len(sample)
    for sep in ("{", " "):
        at = sample.find(sep)
        if at != -1:
            end = min(end, at)
    return sample[:end]


def merge_metrics(texts: Sequence[tuple[int, str]], extra: str = "") -> str:
    """The workers' expositions as one, labelled by worker; ``extra`` (already labelled
    families of the front's own) is appended."""
    families: dict[str, _Family] = {}
    for worker, text in texts:
        current: str | None = None
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith(("# HELP ", "# TYPE ")):
                parts = line.split(None, 3)
                if len(parts) < 3:
                    continue
                current = parts[2]
                family = families.setdefault(current, _Family())
                if parts[1] == "HELP":
                    family.help = family.help or line
                else:
                    family.type = family.type or line
                continue
            if line.startswith("#"):
                continue
            name = _sample_name(line)
            owner = current if current is not None and any(
                name == current + s for s in _SUFFIXES) else name
            families.setdefault(owner, _Family()).samples.append(
                with_worker_label(line, worker))
    lines: list[str] = []
    for family in families.values():
        lines.extend(x for x in (family.help, family.type) if x is not None)
        lines.extend(family.samples)
    text = "\n".join(lines) + "\n"
    return text + extra if extra else text
