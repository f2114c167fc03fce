"""Server-rendered pages: Jinja2 templates and the static files (CSS, JS) they use, shipped in the package."""

from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from foodorder import releases

PACKAGE = resources.files("foodorder") / "gateway"
templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
# The static files' URLs name the release (`?v=`): a browser never runs a script cached from another
# release against this one's API (the event stream's numbering changed once already).
templates.env.globals["release"] = releases.code_version()


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(PACKAGE / "static"))


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A page; every template gets the request and its own context."""
    return templates.TemplateResponse(request, template, context)
