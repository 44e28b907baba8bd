"""Reports: a self-contained HTML page, a short Markdown summary and a tidy CSV from Results.

``render_reports`` is imported on first use: the run layer needs only the leaf ``images`` module,
and must not pay for jinja2 and matplotlib to encode a gallery PNG.
"""

__all__ = ["render_reports"]


def __getattr__(name: str):
    if name == "render_reports":
        from .render import render_reports

        return render_reports
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
