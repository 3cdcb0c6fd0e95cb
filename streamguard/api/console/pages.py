"""The console's page and file handlers."""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from aiohttp import web

__all__ = ["ConsolePages"]

_FILES = resources.files("streamguard.api.console")

STATIC_TYPES = {
    "console.js": "text/javascript; charset=utf-8",
    "search.js": "text/javascript; charset=utf-8",
    "try.js": "text/javascript; charset=utf-8",
    "usage.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " media-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

_NAV = (
    ("rooms", "/console/", "Rooms"),
    ("incidents", "/console/incidents", "Incidents"),
    ("search", "/console/search", "Search"),
    ("try", "/console/try", "Try it"),
    ("usage", "/console/usage", "Usage"),
)

_TITLES = {"search": "Search", "try": "Try it", "usage": "Usage"}
"""Pages with a script of their own (``static/{page}.js``), after ``console.js``."""


def _template(name: str) -> Template:
    return Template(_FILES.joinpath("templates", name).read_text(encoding="utf-8"))


class ConsolePages:
    """Renders the pages; the templates and files are read once, from the package."""

    def __init__(self) -> None:
        self._layout = _template("layout.html")
        self._bodies = {
            name: _template(f"{name}.html")
            for name in ("login", "rooms", "incidents", "incident", *_TITLES)
        }
        self._static = {name: _FILES.joinpath("static", name).read_bytes() for name in STATIC_TYPES}

    def routes(self) -> list[web.RouteDef]:
        """The routes to register."""
        return [
            web.get("/console", self.home),
            web.get("/console/", self.rooms),
            web.get("/console/login", self.login),
            web.get("/console/incidents", self.incidents),
            web.get("/console/incidents/{id}", self.incident),
            *(web.get(f"/console/{page}", self.simple) for page in _TITLES),
            web.get("/console/static/{name}", self.static),
        ]

    async def home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/console/")

    async def login(self, request: web.Request) -> web.Response:
        return self._page("login", "Sign in")

    async def rooms(self, request: web.Request) -> web.Response:
        return self._page("rooms", "Rooms")

    async def incidents(self, request: web.Request) -> web.Response:
        return self._page("incidents", "Incidents")

    async def incident(self, request: web.Request) -> web.Response:
        return self._page("incident", "Incident", incident_id=request.match_info["id"])

    async def simple(self, request: web.Request) -> web.Response:
        """A page whose template needs no values: its name is the path's last part."""
        page = request.path.rsplit("/", 1)[1]
        return self._page(page, _TITLES[page])

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._static:
            raise web.HTTPNotFound()
        headers = {**SECURITY_HEADERS, "Content-Type": STATIC_TYPES[name]}
        return web.Response(body=self._static[name], headers=headers)

    def _page(self, page: str, title: str, **values: str) -> web.Response:
        escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
        body = self._bodies[page].substitute(escaped)
        section = "incidents" if page == "incident" else page
        nav = "".join(
            f'<a href="{href}"{" aria-current=page" if key == section else ""}>{label}</a>'
            for key, href, label in _NAV
        )
        script = (
            f'<script src="/console/static/{page}.js" defer></script>' if page in _TITLES else ""
        )
        text = self._layout.substitute(
            title=html.escape(title),
            page=page,
            nav=nav if page != "login" else "",
            body=body,
            scripts=script,
        )
        headers = {**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}
        return web.Response(body=text.encode("utf-8"), headers=headers)
