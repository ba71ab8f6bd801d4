"""Reading a job's upload: JSON Lines, one argument object per line, checked up front.

Every line is validated against the method's arguments model and encoded to its wire
arguments before anything is stored, so a job holds only inputs that can be sent. A bad
line is reported with its line number (the whole upload is refused) or, when the caller
asks (``bad_lines=keep``), stored as that input's error result. Runs in a worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pydantic

from runtime.http import params as stored_params
from runtime.http.errors import GatewayError, validation_error
from runtime.http.jsontext import dumps
from runtime.http.spec import MethodSpec
from runtime.http.store import NewItem

#: How many bad lines a refusal lists.
REPORTED = 10
_OBJECT: pydantic.TypeAdapter[dict[str, object]] = pydantic.TypeAdapter(dict[str, object])


@dataclass(frozen=True)
class Parsed:
    items: list[NewItem]
    bad: int
    duplicates: int


def _check(spec: MethodSpec, raw: bytes) -> list[object]:
    """The wire arguments of one line; GatewayError (422) when it does not fit."""
    if spec.model is None:
        try:
            value = _OBJECT.validate_json(raw)
        except pydantic.ValidationError as error:
            raise validation_error(spec, error.errors(include_url=False)) from None
        if value:
            raise GatewayError(
                422, "bad_request", f"{spec.name} takes no argument; give {{}} on each line"
            )
        return []
    try:
        body = spec.model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        raise validation_error(spec, error.errors(include_url=False)) from None
    return spec.encode(body)


def parse(spec: MethodSpec, lines: Iterable[bytes], *, keep_bad: bool, dedupe: bool) -> Parsed:
    """Every non-blank line of ``lines`` as an input to store (see the module docstring)."""
    items: list[NewItem] = []
    first: dict[bytes, int] = {}
    refused: list[dict[str, object]] = []
    bad = duplicates = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            params = _check(spec, raw)
        except GatewayError as error:
            bad += 1
            if keep_bad:
                problem = {"status": 422, "code": error.code, "message": error.message}
                items.append(NewItem(number, error=dumps(problem)))
            elif len(refused) < REPORTED:
                refused.append({"line": number, "message": error.message})
            continue
        blob = stored_params.pack(params)
        if dedupe:
            seen = first.get(blob)
            if seen is not None:
                duplicates += 1
                items.append(NewItem(number, dup_of=seen))
                continue
            first[blob] = len(items)
        items.append(NewItem(number, params=blob))
    if refused:
        text = "; ".join(f"line {r['line']}: {r['message']}" for r in refused)
        more = f" (and {bad - len(refused)} more bad lines)" if bad > len(refused) else ""
        raise GatewayError(
            422, "bad_input",
            f"{bad} of the lines do not fit {spec.name}, nothing was stored: {text}{more}; "
            "fix them, or submit with bad_lines=keep to store them as errors",
            lines=refused,
        )  # fmt: skip
    if not items:
        raise GatewayError(
            422, "bad_input", "the upload has no input: give one JSON object of arguments per line"
        )
    return Parsed(items, bad, duplicates)
