"""A self-contained HTML report: one file a shifter can open, mail or attach to an elog entry.

Everything is inside the file: CSS inline, figures as base64 PNG ``data:`` URIs, no script, no
external font or stylesheet, so it renders the same offline, from an e-mail attachment or behind a
proxy. Every piece of text that comes from data (ME names, run numbers, labels) is HTML-escaped;
links are restricted to in-page anchors and relative or http(s) URLs.

The builder knows nothing of Kedro or of what the sections mean::

    report = Report("DQM anomaly detection report")
    runs = report.section("Runs", anchor="runs")
    run = runs.subsection("Run 315322", anchor="run-315322")
    run.figure(fig, caption="LS scores")
    run.table(flagged, links={"lumi": lambda row: f"#ls-{row['run']}-{row['lumi']}"})
    html = report.to_html()
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dqm_playground_ds.reporting.plotting.style import figure_to_png

__all__ = ["Report", "Section", "anchor_id", "format_value"]

MISSING = "\u2013"  # en dash: an empty cell
ROW_CLASSES = ("good", "bad", "unknown", "flagged", "muted")
_SAFE_HREF = re.compile(r"^(#[A-Za-z0-9_.:-]*|https?://[^\s\"'<>]+|[A-Za-z0-9_./-]+)$")

_CSS = """
:root { --fg:#1d1d1f; --muted:#6e6e73; --line:#d2d2d7; --bad:#d62728; --good:#2ca02c;
        --unknown:#9c9ca1; --accent:#1f5fa8; --bg-bad:#fbe9e9; --bg-good:#eaf5ea;
        --bg-unknown:#f1f1f3; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0; line-height: 1.45; font-size: 15px; }
header { background: #14213d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 24px; }
header p { margin: 4px 0 0; color: #cdd3e0; font-size: 13px; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; z-index: 10; font-size: 14px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; white-space: nowrap; }
nav .runs { margin-top: 4px; color: var(--muted); }
nav .runs a { margin-right: 10px; }
main { padding: 8px 32px 64px; max-width: 1500px; }
section { margin-top: 28px; }
h2 { border-bottom: 2px solid #14213d; padding-bottom: 4px; font-size: 21px; }
h3 { font-size: 18px; margin-top: 26px; }
h4 { font-size: 16px; margin-top: 18px; }
a { color: var(--accent); }
p.note { color: var(--muted); font-size: 13px; }
.top { font-size: 12px; font-weight: normal; margin-left: 10px; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 13px; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f7; position: sticky; top: 62px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: var(--bg-bad); }
tr.good td { background: var(--bg-good); }
tr.unknown td { background: var(--bg-unknown); }
tr.flagged td:first-child { border-left: 4px solid var(--bad); }
tr.muted td { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 18px; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
.gallery { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; }
figure { margin: 8px 0; }
.gallery figure { flex: 1 1 var(--w, 100%); max-width: var(--w, 100%); }
figure img { width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 13px; color: var(--muted); margin-top: 2px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px;
         color: #fff; background: var(--muted); }
.badge.bad { background: var(--bad); } .badge.good { background: var(--good); }
"""


def anchor_id(*parts: object) -> str:
    """A stable, valid HTML id from parts: ``anchor_id("run", 315322)`` -> ``run-315322``."""
    text = "-".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", text).strip("-") or "section"


def _safe_href(href: str) -> str:
    if not _SAFE_HREF.match(href) or href.lower().startswith(("javascript", "data")):
        raise ValueError(f"refusing link {href!r}: only #anchors and relative/http(s) URLs")
    return html.escape(href, quote=True)


def _format_float(value: float, float_format: str) -> str:
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "\u221e" if value > 0 else "-\u221e"
    return float_format.format(value)


def format_value(value: Any, float_format: str = "{:.4g}") -> str:
    """Text of one table cell: NaN as a dash, lists joined, floats to 4 significant digits."""
    if value is None or value is pd.NA or value is pd.NaT:
        text = MISSING
    elif isinstance(value, (list, tuple, np.ndarray)):
        text = ", ".join(format_value(v, float_format) for v in value)
    elif isinstance(value, (bool, np.bool_)):
        text = "yes" if value else "no"
    elif isinstance(value, (float, np.floating)):
        text = _format_float(float(value), float_format)
    else:
        text = str(value)
    return text


@dataclass
class _Block:
    html: str


@dataclass
class Section:
    """A titled part of the report; holds paragraphs, fact lists, tables, figures, subsections."""

    title: str
    anchor: str
    level: int = 2
    image_dpi: float | None = None
    reuse_drawn: bool = False
    palette: bool = True
    blocks: list[_Block | Section] = field(default_factory=list)

    # -- content ----------------------------------------------------------------------------
    def paragraph(self, text: str, *, note: bool = False) -> Section:
        cls = ' class="note"' if note else ""
        self.blocks.append(_Block(f"<p{cls}>{html.escape(text)}</p>"))
        return self

    def links(self, items: Iterable[tuple[str, str]], *, label: str = "") -> Section:
        """A line of links (text, href)."""
        parts = [f'<a href="{_safe_href(h)}">{html.escape(t)}</a>' for t, h in items]
        head = f"{html.escape(label)} " if label else ""
        self.blocks.append(_Block(f"<p>{head}{' · '.join(parts)}</p>"))
        return self

    def facts(self, items: Mapping[str, Any]) -> Section:
        """A two-column list of key facts."""
        rows = "".join(
            f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(format_value(v))}</dd>"
            for k, v in items.items()
        )
        self.blocks.append(_Block(f'<dl class="facts">{rows}</dl>'))
        return self

    def table(
        self,
        frame: pd.DataFrame,
        *,
        caption: str = "",
        links: Mapping[str, Callable[[Mapping[str, Any]], str | None]] | None = None,
        row_class: Callable[[Mapping[str, Any]], str | None] | None = None,
        formats: Mapping[str, str] | None = None,
        max_rows: int | None = None,
        empty: str = "nothing to show",
    ) -> Section:
        """A table of ``frame``; ``links[col](row)`` makes a cell a link, ``row_class(row)`` one of
        :data:`ROW_CLASSES` colours the row, ``formats[col]`` is a ``str.format`` pattern."""
        links, formats = dict(links or {}), dict(formats or {})
        if frame.empty:
            return self.paragraph(f"{caption}: {empty}." if caption else f"{empty}.", note=True)
        shown = frame if max_rows is None else frame.head(max_rows)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
        body = []
        for record in shown.to_dict(orient="records"):
            cells = []
            for col, value in record.items():
                text = html.escape(format_value(value, formats.get(col, "{:.4g}")))
                href = links[col](record) if col in links else None
                if href:
                    text = f'<a href="{_safe_href(href)}">{text}</a>'
                numeric = isinstance(value, (int, float, np.integer, np.floating)) and not (
                    isinstance(value, (bool, np.bool_))
                )
                cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
            cls = row_class(record) if row_class else None
            if cls is not None and cls not in ROW_CLASSES:
                raise ValueError(f"row class {cls!r} not among {ROW_CLASSES}")
            attr = f' class="{cls}"' if cls else ""
            body.append(f"<tr{attr}>{''.join(cells)}</tr>")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        more = ""
        if max_rows is not None and len(frame) > max_rows:
            more = f'<p class="note">{len(frame) - max_rows} more rows not shown.</p>'
        self.blocks.append(
            _Block(
                f"<table>{cap}<thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>{more}"
            )
        )
        return self

    def figure(
        self, fig: Figure | bytes, *, caption: str = "", anchor: str | None = None
    ) -> Section:
        """One figure, full width."""
        return self.figures([(fig, caption)], columns=1, anchors=[anchor] if anchor else None)

    def figures(
        self,
        items: Sequence[tuple[Figure | bytes, str]],
        *,
        columns: int = 2,
        anchors: Sequence[str | None] | None = None,
    ) -> Section:
        """A gallery of (figure or PNG bytes, caption), ``columns`` per row on a wide screen."""
        if not items:
            return self
        width = f"calc({100 / max(columns, 1):.3f}% - 14px)" if columns > 1 else "100%"
        parts = []
        for k, (fig, caption) in enumerate(items):
            png = (
                fig
                if isinstance(fig, bytes)
                else figure_to_png(
                    fig, self.image_dpi, reuse_drawn=self.reuse_drawn, palette=self.palette
                )
            )
            data = base64.b64encode(png).decode("ascii")
            anchor = anchors[k] if anchors and k < len(anchors) else None
            ident = f' id="{html.escape(anchor_id(anchor))}"' if anchor else ""
            alt = html.escape(caption or "figure", quote=True)
            cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
            parts.append(
                f'<figure{ident} style="--w:{width}">'
                f'<img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>'
            )
        self.blocks.append(_Block(f'<div class="gallery">{"".join(parts)}</div>'))
        return self

    def subsection(self, title: str, anchor: str | None = None) -> Section:
        sub = Section(
            title,
            anchor_id(anchor or title),
            min(self.level + 1, 6),
            self.image_dpi,
            self.reuse_drawn,
            self.palette,
        )
        self.blocks.append(sub)
        return sub

    # -- output -----------------------------------------------------------------------------
    def to_html(self) -> str:
        top = '<a class="top" href="#top">top</a>' if self.level <= 3 else ""
        head = (
            f'<h{self.level} id="{html.escape(self.anchor)}">{html.escape(self.title)}{top}'
            f"</h{self.level}>"
        )
        inner = "\n".join(b.to_html() if isinstance(b, Section) else b.html for b in self.blocks)
        tag = "section" if self.level == 2 else "div"
        return f"<{tag}>{head}\n{inner}</{tag}>"


class Report:
    """An HTML report: a header, a sticky navigation bar (sections, and optional quick links such
    as one per run) and sections; :meth:`to_html` gives one self-contained document.

    ``image_dpi`` is the resolution of embedded figures (default: the figure's); ``reuse_drawn``
    embeds figures that were already saved from their canvas instead of drawing them again, and
    ``palette`` stores them with 256 colours (see
    :func:`~dqm_playground_ds.reporting.plotting.style.figure_to_png`).
    """

    def __init__(
        self,
        title: str,
        subtitle: str = "",
        *,
        image_dpi: float | None = None,
        reuse_drawn: bool = False,
        palette: bool = True,
    ):
        self.title = title
        self.subtitle = subtitle
        self.image_dpi = image_dpi
        self.reuse_drawn = reuse_drawn
        self.palette = palette
        self.sections: list[Section] = []
        self.quick_links: list[tuple[str, list[tuple[str, str]]]] = []

    def section(self, title: str, anchor: str | None = None) -> Section:
        ident = anchor_id(anchor or title)
        if any(s.anchor == ident for s in self.sections):
            raise ValueError(f"duplicate section anchor {ident!r}")
        sec = Section(title, ident, 2, self.image_dpi, self.reuse_drawn, self.palette)
        self.sections.append(sec)
        return sec

    def add_quick_links(self, label: str, items: Sequence[tuple[str, str]]) -> None:
        """A second navigation line, e.g. ``("Runs", [("315322", "#run-315322"), ...])``."""
        for _, href in items:
            _safe_href(href)
        self.quick_links.append((label, list(items)))

    def to_html(self) -> str:
        nav = " ".join(
            f'<a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a>' for s in self.sections
        )
        for label, items in self.quick_links:
            links = " ".join(f'<a href="{_safe_href(h)}">{html.escape(t)}</a>' for t, h in items)
            nav += f'<div class="runs">{html.escape(label)}: {links}</div>'
        sub = f"<p>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        body = "\n".join(s.to_html() for s in self.sections)
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
            f'<body><header id="top"><h1>{html.escape(self.title)}</h1>{sub}</header>\n'
            f"<nav>{nav}</nav>\n<main>\n{body}\n</main></body></html>\n"
        )
