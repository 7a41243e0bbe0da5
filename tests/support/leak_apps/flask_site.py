"""Flask fixture for the leak probe.

Run with ``flask --app flask_site run --no-reload`` (production) or with
``--debug`` (Werkzeug's debugger). /item parses its id with int(), so a quote
or a word in ?id= raises.
"""

from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)

HOME = """<!doctype html><html><head><title>Fixture Securities</title></head><body>
<h1>Fixture Securities</h1>
<p>Read how we handle an exception, a traceback or an SQL error in our blog.</p>
<a href="/item?id=1">Item 1</a> <a href="/about">About</a>
</body></html>"""


@app.get("/")
def home() -> str:
    return HOME


@app.get("/about")
def about() -> str:
    return "<html><body><p>About us</p></body></html>"


@app.get("/item")
def item() -> str:
    return f"<html><body><p>Item {int(request.args.get('id', '0'))}</p></body></html>"
