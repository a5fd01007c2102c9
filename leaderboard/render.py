"""The jinja2 environment of the site: templates under ``leaderboard/templates``,
autoescaped, so every name read from the database reaches the page escaped."""

from __future__ import annotations

from functools import cache
from typing import Any

from leaderboard.names import arrow, metric_name
from leaderboard.util import fmt


@cache
def environment() -> Any:
    """The site's ``jinja2.Environment`` (built once; jinja2 imported on first use)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("leaderboard", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["pct"] = lambda v: fmt(v, True)
    env.filters["arrow"] = arrow
    env.filters["metric_name"] = metric_name
    env.filters["num"] = lambda v: f"{v:.2f}"  # SVG coordinates
    env.filters["g6"] = lambda v: f"{v:.6g}"  # exact-enough values in data-* attributes
    return env


def render(template: str, **context: Any) -> str:
    """Render ``template`` with ``context``."""
    return environment().get_template(template).render(**context)
