"""The one place Jinja is configured: strict, deterministic, layout only.

Templates live in ``jenerator/templates/<target>/``. ``StrictUndefined`` turns a typo in a
template into an error instead of empty text; ``keep_trailing_newline`` keeps files
ending in a newline. Decisions (names, types, imports) are made in Python before
rendering, never in templates.
"""

from __future__ import annotations

import functools

import jinja2


@functools.cache
def environment() -> jinja2.Environment:
    """The shared, lazily built Jinja environment."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("jenerator", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template_name: str, **context: object) -> str:
    """Render ``template_name`` (e.g. ``"server/types.py.j2"``) with ``context``."""
    return environment().get_template(template_name).render(**context)
