"""Strict request parsing: JSON bodies and query strings with known fields only.

Every failure is an ``ApiError`` whose message names the field, what was found and what is allowed;
unknown fields are errors, so a misspelt ``"actve": false`` cannot silently do nothing.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from flask import request

from hftshm.web.errors import ApiError, bad_request

MAX_BODY_BYTES = 64 * 1024


def json_body(fields: dict[str, Callable[[str, Any], Any]], required: tuple[str, ...] = (),
              allow_empty: bool = False) -> dict[str, Any]:
    """The request's JSON object with each field passed through its checker; 400/415 otherwise."""
    raw = request.get_data(cache=True)
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is {len(raw)} bytes; at most {MAX_BODY_BYTES}")
    if not raw.strip():
        if allow_empty and not required:
            return {}
        raise bad_request(f"a JSON object body is required with field(s): {', '.join(required or tuple(fields))}")
    mimetype = request.mimetype or ""
    if mimetype != "application/json":
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (got {mimetype or 'none'!r})")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request(f"the body must be a JSON object, found {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(fields) or '(none)'}")
    missing = [name for name in required if name not in data]
    if missing:
        raise bad_request(f"missing required field(s): {', '.join(missing)}")
    return {name: fields[name](name, value) for name, value in data.items()}


def query(fields: dict[str, Callable[[str, str], Any]], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Query-string parameters, each at most once, unknown ones refused."""
    args = request.args
    unknown = sorted(set(args) - set(fields))
    if unknown:
        raise bad_request(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(fields)}")
    out = dict(defaults or {})
    for name in args:
        values = args.getlist(name)
        if len(values) > 1:
            raise bad_request(f"query parameter {name!r} is given {len(values)} times; give it once")
        out[name] = fields[name](name, values[0])
    return out


# -- field checkers -------------------------------------------------------------------------------

def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false, found {json.dumps(value)}")
    return value


def text(max_len: int = 200) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise bad_request(f"{name} must be a string, found {json.dumps(value)}")
        if len(value) > max_len:
            raise bad_request(f"{name} must be at most {max_len} characters, found {len(value)}")
        return value
    return check


def choice(allowed: list[str]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            raise bad_request(f"{name} is {json.dumps(value)}; allowed: {', '.join(allowed)}")
        return value.strip().lower()
    return check


def int_param(lo: int, hi: int) -> Callable[[str, str], int]:
    def check(name: str, value: str) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise bad_request(f"{name} must be an integer, found {value!r}") from None
        if not lo <= number <= hi:
            raise bad_request(f"{name} must be between {lo} and {hi}, found {number}")
        return number
    return check


def name_param(max_len: int = 64) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        if not value or len(value) > max_len or not all(c.isalnum() or c in "-_.:" for c in value):
            raise bad_request(f"{name} must be 1-{max_len} characters of letters, digits, - _ . :, found {value!r}")
        return value
    return check


def any_json(name: str, value: Any) -> Any:
    return value
