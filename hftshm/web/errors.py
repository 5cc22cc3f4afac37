"""JSON errors for every failure the web app answers: ``{"error": <status name>, "message": ...}``."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error answered as JSON with ``status``; ``message`` says what was wrong and what is allowed."""

    def __init__(self, status: int, message: str, *, reason: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _body(status: int, name: str, message: str, reason: str | None = None) -> dict:
    body = {"error": name, "status": status, "message": message}
    if reason:
        body["reason"] = reason
    return body


def install(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        from http import HTTPStatus

        name = HTTPStatus(exc.status).phrase.lower().replace(" ", "_")
        response = jsonify(_body(exc.status, name, exc.message, exc.reason))
        response.status_code = exc.status
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or []))
        messages = {
            404: "no such path; see GET /api for the routes",
            405: f"method not allowed here; allowed: {allowed}",
            413: "request body too large",
            415: "send JSON (Content-Type: application/json)",
        }
        status = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        response = jsonify(_body(status, name, messages.get(status, exc.description or "")))
        response.status_code = status
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error")
        response = jsonify(_body(500, "internal_server_error", "internal error; see the server log"))
        response.status_code = 500
        return response
