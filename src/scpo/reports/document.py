"""A tiny document model for the reports, rendered to self-contained HTML and to Markdown.

A :class:`Doc` is a list of blocks (headings, paragraphs, lists, tables, figures); a block's
text is a sequence of inline parts: plain strings, a level badge :class:`Lv`, a verdict
:class:`Verdict` and code :class:`Code`. The HTML has no script, no external style sheet or font
and embeds every figure as base64 PNG, so it opens offline and touches no network.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audit.reader import recorded_number

__all__ = ["Code", "Doc", "Inline", "LEVEL_MEANING", "Lv", "Verdict", "fmt"]

LEVEL_MEANING = {
    "exact": "proved in exact rational arithmetic (sympy) or by structure",
    "sound": "floating-point bounds that over-approximate with an outward margin",
    "evaluated": "computed at finitely many points (a grid, a batch of rollouts)",
    "estimated": "a statistical or sampled estimate",
}
"""What each level of evidence means (DESIGN §2), shown on every page."""


def fmt(v: Any, digits: int = 4) -> str:
    """A recorded number for a page: ``digits`` significant digits, scientific notation below
    1e-3 and from 1e4 on, ``—`` for a missing value, the value as it is for anything else.

    Parameters
    ----------
    v : any
    digits : int
    """
    x = recorded_number(v)
    if math.isnan(x):
        return "—" if v is None else str(v)
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


@dataclass(frozen=True)
class Lv:
    """A level-of-evidence badge.

    Attributes
    ----------
    level : str
        ``"exact"``, ``"sound"``, ``"evaluated"`` or ``"estimated"``.
    """

    level: str


@dataclass(frozen=True)
class Verdict:
    """A verdict: green when it holds, red when it fails, grey when only reported.

    Attributes
    ----------
    holds : bool or None
        ``None``: reported, not required.
    text : str
        Shown instead of ``holds`` / ``FAILS`` / ``report only`` when given.
    """

    holds: bool | None
    text: str = ""


@dataclass(frozen=True)
class Code:
    """Inline code (a file name, a setting).

    Attributes
    ----------
    text : str
    """

    text: str


Inline = str | Lv | Verdict | Code | list
"""An inline part of a block: text, a badge, a verdict, code, or a list of them."""


def _verdict_text(v: Verdict) -> str:
    if v.text:
        return v.text
    return "holds" if v.holds else ("FAILS" if v.holds is False else "report only")


def _html_inline(x: Inline) -> str:
    if isinstance(x, list):
        return "".join(_html_inline(y) for y in x)
    if isinstance(x, Lv):
        return f'<span class="lv lv-{html.escape(x.level)}" title="{html.escape(LEVEL_MEANING.get(x.level, ""))}">{html.escape(x.level)}</span>'
    if isinstance(x, Verdict):
        cls = "ok" if x.holds else ("fail" if x.holds is False else "info")
        return f'<span class="verdict {cls}">{html.escape(_verdict_text(x))}</span>'
    if isinstance(x, Code):
        return f"<code>{html.escape(x.text)}</code>"
    return html.escape(str(x))


def _md_inline(x: Inline, *, cell: bool = False) -> str:
    if isinstance(x, list):
        return "".join(_md_inline(y, cell=cell) for y in x)
    if isinstance(x, Lv):
        return f"**[{x.level}]**"
    if isinstance(x, Verdict):
        t = _verdict_text(x)
        return f"**{t}**" if x.holds is not True else t
    if isinstance(x, Code):
        return f"`{x.text}`"
    s = str(x)
    if cell:
        s = s.replace("|", "\\|").replace("\n", " ")
    return s


class Doc:
    """Blocks of a page: headings, paragraphs, lists, tables and figures."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        """A heading.

        Parameters
        ----------
        level : int
            1 for the title, 2 for sections.
        text : str
        anchor : str, optional
            The HTML ``id``.
        """
        self.blocks.append(("h", level, text, anchor))

    def p(self, *parts: Inline) -> None:
        """A paragraph.

        Parameters
        ----------
        *parts : Inline
        """
        self.blocks.append(("p", list(parts)))

    def ol(self, items: list[Inline]) -> None:
        """A numbered list.

        Parameters
        ----------
        items : list of Inline
        """
        self.blocks.append(("ol", items))

    def ul(self, items: list[Inline]) -> None:
        """A bulleted list.

        Parameters
        ----------
        items : list of Inline
        """
        self.blocks.append(("ul", items))

    def table(self, header: list[str], rows: list[list[Inline]], *, table_id: str | None = None) -> None:
        """A table.

        Parameters
        ----------
        header : list of str
        rows : list of list of Inline
            One cell per header entry.
        table_id : str, optional
            The HTML ``id``.
        """
        self.blocks.append(("table", header, rows, table_id))

    def figure(self, name: str, png: bytes, caption: str) -> None:
        """A figure: embedded in the HTML, linked beside the Markdown.

        Parameters
        ----------
        name : str
            The PNG's file name beside the page.
        png : bytes
            Its content.
        caption : str
        """
        self.blocks.append(("figure", name, png, caption))

    def to_markdown(self) -> str:
        """The document as Markdown (figures linked by file name)."""
        out: list[str] = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(_md_inline(b[1]))
            elif kind in ("ol", "ul"):
                out.append("\n".join((f"{i + 1}. " if kind == "ol" else "- ") + _md_inline(item) for i, item in enumerate(b[1])))
            elif kind == "table":
                header, rows = b[1], b[2]
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(_md_inline(c, cell=True) for c in row) + " |" for row in rows]
                out.append("\n".join(lines))
            elif kind == "figure":
                out.append(f"![{b[3]}]({b[1]})\n\n*{b[3]}*")
        return "\n\n".join(out) + "\n"

    def to_html(self, title: str) -> str:
        """The document as one self-contained HTML page.

        Parameters
        ----------
        title : str
            The page title.

        Returns
        -------
        str
        """
        body: list[str] = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                anchor = f' id="{html.escape(b[3])}"' if b[3] else ""
                body.append(f"<h{b[1]}{anchor}>{html.escape(b[2])}</h{b[1]}>")
            elif kind == "p":
                body.append(f"<p>{_html_inline(b[1])}</p>")
            elif kind in ("ol", "ul"):
                items = "".join(f"<li>{_html_inline(item)}</li>" for item in b[1])
                body.append(f"<{kind}>{items}</{kind}>")
            elif kind == "table":
                header, rows, tid = b[1], b[2], b[3]
                idattr = f' id="{html.escape(tid)}"' if tid else ""
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>" for row in rows)
                body.append(f"<table{idattr}><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "figure":
                data = base64.b64encode(b[2]).decode("ascii")
                stem = html.escape(Path(b[1]).stem)
                body.append(
                    f'<figure id="fig-{stem}"><img src="data:image/png;base64,{data}" alt="{html.escape(b[3])}" '
                    f'data-file="{html.escape(b[1])}"><figcaption>{html.escape(b[3])} '
                    f'(<a href="{html.escape(b[1])}">{html.escape(b[1])}</a>)</figcaption></figure>'
                )
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#1d2330;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ccd;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ccd;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#eef0f6}code{background:#f2f3f7;padding:0 .2em;font-size:.92em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #dde}figcaption{font-size:.85em;color:#555}
.lv{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.82em;font-weight:600;color:#fff}
.lv-exact{background:#1b5e20}.lv-sound{background:#2e7d32}.lv-evaluated{background:#b26a00}.lv-estimated{background:#6d6d6d}
.verdict{font-weight:600}.verdict.ok{color:#1b5e20}.verdict.fail{color:#b00020}.verdict.info{color:#555}
ol>li{margin-bottom:.6em}
"""
