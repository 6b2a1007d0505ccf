"""The report's index.html: one self-contained page linking every table and figure.

Links are relative (the folder can be zipped, copied to a web server or opened from disk) and every
piece of text that comes from results — host names, model names, file paths — is HTML-escaped, since
a host name or an exported file is input we did not write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

_MISSING_PICTURES = """
document.querySelectorAll("img").forEach(function (img) {
  function missing() {
    img.setAttribute("data-missing", "true");
    var note = document.createElement("p");
    note.className = "missing";
    note.textContent = "missing picture: " + img.getAttribute("src") + " (copy the whole report folder)";
    img.after(note);
  }
  if (img.complete && img.naturalWidth === 0) { missing(); } else { img.addEventListener("error", missing); }
});
"""
"""A report copied without all its files says which picture is missing instead of a broken-image icon;
the browser test (tests/test_report.py) reads the same mark from chromium's DOM."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem;
       color: #222; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #555; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9rem; }
li.skipped { color: #666; }
.headline { font-size: 1.05rem; background: #f6f8fa; padding: 0.6rem 1rem 0.6rem 2rem; }
table.results { border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }
table.results th, table.results td { border-bottom: 1px solid #e4e4e4; padding: 0.25rem 0.6rem;
  text-align: right; white-space: nowrap; }
table.results th { background: #fafafa; position: sticky; top: 0; }
table.results td.t, table.results th.t { text-align: left; }
.scroll { overflow-x: auto; }
.missing { color: #b00; font-weight: bold; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


@dataclass
class Entry:
    """One linked item: an SVG shown inline plus its other formats."""

    title: str
    caption: str
    files: list[str]
    """File names inside the report folder; the first .svg is shown."""


def _link(name: str) -> str:
    return escape(quote(name), quote=True)


def _figure(e: Entry) -> str:
    shown = next((f for f in e.files if f.endswith(".svg")), e.files[0])
    links = " · ".join(
        f'<a href="{_link(f)}">{escape(Path(f).suffix.lstrip(".").upper())}</a>' for f in e.files
    )
    return (
        f'<figure><img src="{_link(shown)}" alt="{escape(e.title, quote=True)}">'
        f"<figcaption><b>{escape(e.title)}</b> — {escape(e.caption)} ({links})</figcaption></figure>"
    )


def write_index(
    out: Path,
    title: str,
    meta: list[str],
    tables: list[Entry],
    figures: list[Entry],
    skipped: list[tuple[str, str]],
    data_file: str,
    sections: list[tuple[str, list[str]]] | None = None,
    headline: list[str] | None = None,
    results_html: str = "",
) -> Path:
    """Write ``out/index.html`` and return its path. ``sections``: extra (heading, lines) lists shown
    before the tables (a recipe's steps and the commands they ran)."""
    when = dt.datetime.now(tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">generated {escape(when)} by edgebench</p>',
        "<ul class='meta'>" + "".join(f"<li>{escape(m)}</li>" for m in meta) + "</ul>",
        *(
            ["<ul class='headline'>" + "".join(f"<li>{escape(h)}</li>" for h in headline) + "</ul>"]
            if headline
            else []
        ),
        *(
            f"<h2>{escape(h)}</h2><ul>"
            + "".join(f"<li><code>{escape(x)}</code></li>" for x in lines)
            + "</ul>"
            for h, lines in sections or ()
        ),
        *([f"<h2>Results</h2><div class='scroll'>{results_html}</div>"] if results_html else []),
        "<h2>Tables</h2>",
        *(_figure(t) for t in tables),
        "<h2>Plots</h2>",
        *(_figure(f) for f in figures),
    ]
    if not figures:
        parts.append("<p>No plot could be drawn from the selected results (see below).</p>")
    if skipped:
        parts.append("<h2>Plots not drawn</h2><ul>")
        parts += [f'<li class="skipped"><b>{escape(t)}</b>: {escape(why)}</li>' for t, why in skipped]
        parts.append("</ul>")
    parts.append(
        f'<h2>Data</h2><p>The result documents behind this report: <a href="{_link(data_file)}">'
        f"{escape(data_file)}</a> (usable with <code>edgebench-agent compare --from</code>).</p>"
    )
    parts.append(f"<script>{_MISSING_PICTURES}</script>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def results_table_html(rows: list[dict[str, str]], text_columns: set[str]) -> str:
    """A plain, selectable HTML table (copy it into a spreadsheet); every cell escaped."""
    if not rows:
        return ""
    columns = list(rows[0])
    head = "".join(f'<th class="{"t" if c in text_columns else ""}">{escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"t" if c in text_columns else ""}">{escape(r[c])}</td>' for c in columns)
        + "</tr>"
        for r in rows
    )
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
