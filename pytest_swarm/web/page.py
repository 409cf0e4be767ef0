"""The dashboard page: one HTML document with every style and script inlined.

The charts are the HTML report's own (``report/assets/charts.js``, SVG with no library) and
so is its stylesheet; ``assets/dashboard.js`` keeps the page's state from the event stream
and redraws. Nothing is fetched but the page and its stream: the page works on a machine
with no network, and its Content-Security-Policy allows exactly these inline scripts and
styles (by hash), connections to its own origin, and nothing else.

Example:
    >>> page, csp = render_page("tok")
    >>> b'<meta name="swarm-token" content="tok">' in page, "connect-src 'self'" in csp
    (True, True)
"""

from __future__ import annotations

import base64
import hashlib
import html
from functools import cache
from importlib import resources

from .. import __version__

__all__ = ["render_page"]


def _asset(package: str, name: str) -> str:
    return (resources.files(package) / "assets" / name).read_text(encoding="utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def _parts() -> tuple[str, str]:
    style = _asset("pytest_swarm.report", "report.css") + _asset(__package__, "dashboard.css")
    script = _asset("pytest_swarm.report", "charts.js") + _asset(__package__, "dashboard.js")
    return style, script


_BODY = """<header class="top"><div class="brand"><h1>pytest-swarm <span>live</span></h1>
<div class="context">pytest-swarm {version} &middot; the session's load tests as they run
</div></div>
<div id="connection" class="pill connecting">connecting&hellip;</div></header>
<main>
<section class="test idle" id="idle"><p>Waiting for a load test to start&hellip;</p></section>
<section class="test now" id="now" hidden>
 <div class="now-head"><span class="verdict running">RUNNING</span><h2 id="now-name"></h2>
  <button id="stop" type="button" hidden>Stop this load test</button></div>
 <div class="meta" id="now-settings"></div>
 <div class="progress" aria-hidden="true"><div class="bar" id="bar"></div></div>
 <div class="meta" id="now-progress"></div>
 <div class="tiles" id="tiles"></div>
 <div class="problems" id="problems"></div>
 <h3>Over time</h3><div class="charts" id="charts"></div>
 <div class="columns"><div><h3>Objectives so far</h3><table id="objectives"></table></div>
 <div><h3>Workers</h3><table id="workers"></table><div class="meta" id="health"></div></div></div>
 <h3>Requests</h3><table id="requests"></table><div class="meta" id="names-note"></div>
 <div id="errors"></div>
</section>
<section class="test"><h3>This session's load tests</h3>
<table class="overview" id="session"></table></section>
</main>"""


def render_page(token: str) -> tuple[bytes, str]:
    """The page's bytes and the Content-Security-Policy header that goes with them."""
    style, script = _parts()
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="swarm-token" content="{html.escape(token)}">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>pytest-swarm live</title>\n<style>{style}</style></head>\n"
        f"<body>{_BODY.format(version=html.escape(__version__))}\n"
        f"<script>{script}</script></body></html>\n"
    )
    csp = (
        f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return page.encode("utf-8"), csp
