"""Reports: a self-contained HTML page, a short Markdown summary and a tidy CSV from Results."""

from .render import render_reports

__all__ = ["render_reports"]
