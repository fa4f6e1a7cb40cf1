"""The report's document: one list of blocks rendered as Markdown and as HTML, and the number
formatting every table of the report shares."""

from __future__ import annotations

import html
import math
import re


class _Doc:
    def __init__(self):
        self.blocks = []

    def h(self, level, text):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def warn(self, text):
        self.blocks.append(("warn", text))

    def table(self, header, rows):
        self.blocks.append(("table", header, rows))

    def img(self, src, alt):
        self.blocks.append(("img", src, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "warn":
                out.append("> **Warning:** " + b[1])
            elif b[0] == "table":
                cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
                out.append("| " + " | ".join(cell(c) for c in b[1]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out.extend("| " + " | ".join(cell(c) for c in r) + " |" for r in b[2])
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})")
            out.append("")
        return "\n".join(out)

    def html(self, title) -> str:
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>{e(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;"
            "text-align:right}th{background:#eee}td:first-child{text-align:left}"
            ".warn{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em}"
            "img{max-width:100%;border:1px solid #ddd;margin:.3em 0}</style></head><body>",
        ]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "warn":
                out.append(f'<p class="warn"><b>Warning:</b> {e(b[1])}</p>')
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in b[1]) + "</tr>")
                out.extend("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in b[2])
                out.append("</table>")
            elif b[0] == "img":
                out.append(f'<p><img src="{e(b[1])}" alt="{e(b[2])}"></p>')
        out.append("</body></html>")
        return "\n".join(out)


def _f(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def _ci(ci) -> str:
    return f"[95% {ci[0]:.3f}-{ci[1]:.3f}]"


def _size(s):
    b = s["binary"]
    return f"{s['n']} CCDs ({b['positives']} artifact, {b['negatives']} clean; {s['n_exposures']} exposures)"


def _vc(s, value, key_path, nd=4) -> str:
    """A volunteer-label figure, with its ceiling when the truth is known (``key_path`` into truth.ceiling)."""
    t = s.get("truth")
    if not t:
        return _f(value, nd)
    c = t["ceiling"]
    for k in key_path:
        c = None if c is None else c.get(k)
    return f"{_f(value, nd)} (ceiling {_f(c, nd)})"
