"""Flask fixture (production mode) whose own error pages say too much.

Many in-house applications replace the framework's error page with their own
"helpful" one. This one renders each stack frame in HTML markup (file, line and
function in separate elements, no plain-text traceback anywhere) and shows a
Jinja template error with the numbered source lines around the failing line:
neither carries a framework's debug-page markers. /item parses ?id= with int();
/report renders a broken template when ?id= is not a number. The home page links
to one of them, chosen by POSTURE_PAGE (item or report): the leak probe varies the
parameters of one linked page.
"""

from __future__ import annotations

import os
import traceback
from html import escape

from flask import Flask, request
from jinja2 import Environment, TemplateSyntaxError

app = Flask(__name__)

HOME = """<!doctype html><html><head><title>Fixture Futures</title></head><body>
<h1>Fixture Futures</h1><p>Read how we handle an exception or an error on our blog.</p>
<a href="/{page}?id=1">Page 1</a>
</body></html>"""

BROKEN = "<ul>\n{% for row in rows %}\n  <li>{{ row.name }}</li>\n</ul>\n"


@app.get("/")
def home() -> str:
    return HOME.format(page="report" if os.environ.get("POSTURE_PAGE") == "report" else "item")


@app.get("/item")
def item() -> str:
    return f"<html><body><p>Item {int(request.args.get('id', '0'))}</p></body></html>"


@app.get("/report")
def report() -> str:
    ident = request.args.get("id", "0")
    source = BROKEN if not ident.isdigit() else "<p>Report {{ n }}</p>"
    return Environment().from_string(source).render(n=ident, rows=[])


@app.errorhandler(TemplateSyntaxError)
def template_error(exc: TemplateSyntaxError) -> tuple[str, int]:
    lines = (exc.source or "").splitlines()
    lineno = exc.lineno or 1
    rows = "".join(
        f'<tr class="{"current" if n == lineno else ""}"><td class="n">{n}</td>'
        f"<td><code>{escape(text)}</code></td></tr>"
        for n, text in enumerate(lines, 1) if abs(n - lineno) <= 3
    )
    return (f"<html><body><h1>Template error</h1><p><b>{type(exc).__module__}.{type(exc).__name__}</b>: "
            f"{escape(exc.message or '')}</p><table>{rows}</table></body></html>", 500)


@app.errorhandler(ValueError)
def value_error(exc: ValueError) -> tuple[str, int]:
    frames = "".join(
        f'<div class="frame">File <span class="frame-filename">{escape(f.filename)}</span>, line '
        f'<i>{f.lineno}</i>, in <b>{escape(f.name)}</b></div>'
        for f in traceback.extract_tb(exc.__traceback__)
    )
    return f"<html><body><h1>Something went wrong</h1>{frames}</body></html>", 500
