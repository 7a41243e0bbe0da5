"""Django fixture for the leak probe: settings, URLs and views in one module.

Run with ``python -m django runserver --noreload --settings=django_site``; the
environment decides the mode (POSTURE_DEBUG=1 for DEBUG=True) and the one
host name it answers to (POSTURE_HOST). /catalogue/ is deliberately buggy:
``id`` goes through int() (a quote or a word raises ValueError) and ``q`` is
pasted into SQL (a quote is a real SQLite syntax error).
"""

from __future__ import annotations

import os

from django.db import connection  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.urls import path  # type: ignore[import-untyped]

DEBUG = os.environ.get("POSTURE_DEBUG") == "1"
SECRET_KEY = "posture-test-fixture-not-secret"
ALLOWED_HOSTS = [os.environ.get("POSTURE_HOST", "127.0.0.1")]
ROOT_URLCONF = __name__
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True

HOME = """<!doctype html><html><head><title>Fixture Securities</title></head><body>
<h1>Fixture Securities</h1>
<p>Our blog explains how an exception, an error or a bad SQL query is handled.</p>
<a href="/catalogue/?q=alpha&amp;id=1">Catalogue</a> <a href="/about/">About</a>
</body></html>"""


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(HOME)


def about(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<html><body><p>About us</p></body></html>")


def catalogue(request: HttpRequest) -> HttpResponse:
    item = int(request.GET.get("id", "0"))
    q = request.GET.get("q", "")
    with connection.cursor() as cursor:
        # The bug under test: a query built by string formatting.
        cursor.execute(f"SELECT name FROM (SELECT 'alpha' AS name) WHERE name = '{q}'")
        rows = cursor.fetchall()
    return HttpResponse(f"<html><body><p>Item {item}: {len(rows)} result(s)</p></body></html>")


urlpatterns = [
    path("", home),
    path("about/", about),
    path("catalogue/", catalogue),
]
