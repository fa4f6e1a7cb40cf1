"""A query's answer for a person or a pipe: a text table, or JSON lines, with what it is based on
(jobs/query.py)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json

from .query import Result


def _cell(v, width: int) -> str:
    if v is None:
        s = ""
    elif isinstance(v, float):
        s = f"{v:.4g}"
    elif isinstance(v, (list, tuple)):
        s = "[" + ", ".join(_cell(x, 10**6) for x in v) + "]"
    elif isinstance(v, (bytes, bytearray)):
        s = f"<{len(v)} bytes>"
    elif isinstance(v, dt.datetime):
        s = v.isoformat(sep=" ", timespec="seconds")
    elif isinstance(v, dict):
        s = json.dumps(v, default=str)
    else:
        s = str(v)
    return s if len(s) <= width else s[: width - 1] + "…"


def format_table(rows, columns=None, max_width: int = 48) -> str:
    """A plain-text table (numbers right-aligned, long cells cut at ``max_width``)."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if not columns:
        return "(no columns)"
    cells = [[_cell(r.get(c), max_width) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [
        bool(rows)
        and all(
            isinstance(r.get(c), (int, float, decimal.Decimal)) and not isinstance(r.get(c), bool)
            for r in rows
            if r.get(c) is not None
        )
        for c in columns
    ]

    def line(vals):  # noqa: E306
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def json_default(v):
    """``json.dumps(default=...)`` for Spark values: timestamps ISO, bytes base64, decimals float."""
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, decimal.Decimal):
        return float(v)
    return str(v)


def json_lines(rows) -> str:
    """One JSON object per row, one per line."""
    return "\n".join(json.dumps(r, default=json_default) for r in rows)


def format_confusion(c: dict) -> str:
    """The confusion of :func:`~artifactspark.serve.query.disagreements` as a small text table."""
    w = max(len(str(c[k])) for k in ("tp", "fp", "fn", "tn")) + 2
    return "\n".join(
        [
            f"confusion among {c['n_compared']} inspected CCDs with a label ({c['n_scored']} scored in scope):",
            f"{'':18}{'flagged':>{max(w, 9)}}{'not flagged':>{max(w, 13)}}",
            f"{'label 1 (artifact)':18}{c['tp']:>{max(w, 9)}}{c['fn']:>{max(w, 13)}}",
            f"{'label 0 (clean)':18}{c['fp']:>{max(w, 9)}}{c['tn']:>{max(w, 13)}}",
            "precision {}  recall {}  accuracy {}".format(
                *(("-" if c[k] is None else c[k]) for k in ("precision", "recall", "accuracy"))
            ),
        ]
    )


def describe_info(info: dict) -> list[str]:
    """Human lines about an answer (which model, why, truncation)."""
    out = []
    if info.get("model_version") is not None:
        kind = " ".join(str(info[k]) for k in ("problem", "model_kind") if info.get(k))
        out.append(
            f"model {info['model_version']}"
            + (f" ({kind})" if kind else "")
            + (f": {info['model_choice']}" if info.get("model_choice") not in (None, "given") else "")
        )
    if info.get("note"):
        out.append(info["note"])
    return out


def print_result(res: Result, as_json: bool = False, command: str | None = None, out=None) -> dict:
    """Print ``res`` (a table with what it is based on, or JSON lines) and return the job summary."""
    import sys

    out = out or sys.stdout
    info = res.info
    if as_json:
        if res:
            print(json_lines(res), file=out)
    else:
        for line in describe_info(info):
            print(f"# {line}", file=out)
        if info.get("confusion"):
            print(format_confusion(info["confusion"]), file=out)
            print("disagreeing CCDs:", file=out)
        print(format_table(res, res.columns), file=out)
        if info.get("truncated"):
            print(f"(cut at {len(res)} rows: --limit N for more, --limit 0 for all)", file=out)
    out.flush()
    summary = {
        "job": "query",
        "question": command or info.get("question"),
        "rows": len(res),
        **{k: v for k, v in info.items() if k not in ("question",)},
    }
    return json.loads(json.dumps(summary, default=json_default))
