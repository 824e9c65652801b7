"""The OpenAPI 3.1 document served at ``/api/v1/openapi.json``.

Kept beside the routes it describes; a test checks that every route the server registers is
documented here and nothing else is.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request; nothing changed.",
        401: "Missing or wrong bearer token; nothing changed.",
        404: "No such target.",
        409: "Refused by a guard (playbook running, cooldown, rate limit, frozen).",
        408: "Body not sent within server.body_timeout; nothing changed.",
        413: "Body over the size limit; nothing changed.",
        415: "Compressed body (Content-Encoding other than identity); nothing changed.",
        421: "Host header not an IP address, localhost, the listen host or in server.hosts.",
        422: "The target or the image cannot be deployed (no traffic: section, image not on "
        "this host, blue not in HAProxy); nothing changed.",
        503: "The state store cannot record the request, or (deploy) HAProxy or Docker cannot "
        "be reached; nothing acted on.",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_OBJECT = {"type": "object"}
_DEPLOY = {
    "type": "object",
    "properties": {
        "deploy": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": "string"},
                "target": {"type": "string"},
                "image": {"type": "string"},
                "stage": {"type": "string"},
                "final": {"type": "boolean"},
                "reason": {"type": "string"},
                "lines": {"type": "array", "items": {"type": "string"}},
                "numbers": _OBJECT,
                "bake": {"type": ["object", "null"], "description": "Steps, weight, paused."},
            },
        }
    },
}

# An image reference: what unquarantine clears and what deploy starts.
_IMAGE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string"}},
            }
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "watchdogd", "version": "1", "description": "Status and control API."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}},
            },
            "Target": {
                "type": "object",
                "required": ["name", "state", "checks", "gates"],
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"type": "string"},
                    "state": {"type": "string"},
                    "warming_up": {"type": "boolean"},
                    "deploy": {
                        "type": ["object", "null"],
                        "description": "The running deploy: id, stage, and its steps under "
                        "bake (strategy, step, steps with verdicts, weight, paused).",
                    },
                    "since": {"type": "number"},
                    "current_release": {"type": ["object", "null"]},
                    "known_good_release": {"type": ["object", "null"]},
                    "quarantined": {"type": "array", "items": _OBJECT},
                    "checks": {"type": "array", "items": _OBJECT},
                    "gates": {"type": "array", "items": _OBJECT},
                    "incident": {"type": ["object", "null"]},
                },
            },
        },
    },
    "paths": {
        "/healthz": {
            "get": {
                "summary": "The process is alive.",
                "responses": {"200": _json(_OBJECT, "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Sources running and the store open.",
                "responses": {
                    "200": _json(_OBJECT, "Ready."),
                    "503": _json(_OBJECT, "Not ready, with reasons."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics.",
                "responses": {
                    "200": {"description": "Text exposition format.", "content": {"text/plain": {}}}
                },
            }
        },
        "/hooks/alertmanager": {
            "post": {
                "summary": "Alertmanager webhook, payload version 4.",
                "security": _AUTH,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _OBJECT}},
                },
                "responses": {
                    "200": _json(
                        _OBJECT, "Alerts recorded; matching firing alerts start playbooks."
                    )
                }
                | _errors(400, 401, 408, 413, 415, 503),
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {"200": _json(_OBJECT, "OpenAPI 3.1.")},
            }
        },
        "/api/v1/targets": {
            "get": {
                "summary": "Every target's state, releases, windows and gate verdicts.",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "targets": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Target"},
                                }
                            },
                        },
                        "All targets.",
                    )
                },
            }
        },
        "/api/v1/targets/{name}": {
            "get": {
                "summary": "One target.",
                "parameters": [_NAME],
                "responses": {"200": _json({"$ref": "#/components/schemas/Target"}, "The target.")}
                | _errors(404),
            }
        },
        "/api/v1/targets/{name}/rollback": {
            "post": {
                "summary": "Start the target's playbook now, to the known-good release or to `to`.",
                "security": _AUTH,
                "parameters": [_NAME],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "to": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"202": _json(_OBJECT, "Playbook started.")}
                | _errors(400, 401, 404, 408, 409, 413, 415),
            }
        },
        "/api/v1/targets/{name}/freeze": {
            "post": {
                "summary": "Stop automatic action on the target.",
                "security": _AUTH,
                "parameters": [_NAME],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"reason": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": {"200": _json(_OBJECT, "Frozen.")}
                | _errors(400, 401, 404, 408, 409, 413, 415),
            }
        },
        "/api/v1/targets/{name}/unfreeze": {
            "post": {
                "summary": "Resume automatic action; the current release is baked again.",
                "security": _AUTH,
                "parameters": [_NAME],
                "responses": {"200": _json(_OBJECT, "Unfrozen.")} | _errors(401, 404, 409),
            }
        },
        "/api/v1/targets/{name}/unquarantine": {
            "post": {
                "summary": "Clear a release's quarantine; it must bake again if deployed.",
                "security": _AUTH,
                "parameters": [_NAME],
                "requestBody": _IMAGE_BODY,
                "responses": {"200": _json(_OBJECT, "Quarantine cleared.")}
                | _errors(400, 401, 404, 408, 413, 415),
            }
        },
        "/api/v1/targets/{name}/deploy": {
            "post": {
                "summary": "Start a blue-green or canary deploy of `image` (targets with "
                "`traffic:`).",
                "description": "Green starts from blue's configuration, is checked directly, "
                "takes the traffic and bakes; then it is promoted or switched back. Poll the GET "
                "for progress.",
                "security": _AUTH,
                "parameters": [_NAME],
                "requestBody": _IMAGE_BODY,
                "responses": {"202": _json(_DEPLOY, "Deploy started.")}
                | _errors(400, 401, 404, 409, 413, 422, 503),
            },
            "get": {
                "summary": "A deploy's stage and progress lines (the newest, or `id`).",
                "parameters": [
                    _NAME,
                    {"name": "id", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(_DEPLOY, "The deploy (null when none).")} | _errors(404),
            },
        },
        "/api/v1/targets/{name}/deploy/{order}": {
            "post": {
                "summary": "An operator's order to the running deploy: pause, resume, promote "
                "or abort (docs/canary.md).",
                "description": "pause stops the step's clock (the gates still judge), resume "
                "starts it again, promote skips the remaining steps, abort switches every "
                "request back to blue. 409 when the order does not apply now.",
                "security": _AUTH,
                "parameters": [
                    _NAME,
                    {
                        "name": "order",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": ["pause", "resume", "promote", "abort"],
                        },
                    },
                ],
                "responses": {"200": _json(_OBJECT, "The deploy, and what the order did.")}
                | _errors(401, 404, 409),
            }
        },
        "/api/v1/events": {
            "get": {
                "summary": "The audit log, newest first, paged with `before` (at most `limit` "
                "events and about 1 MiB).",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                    },
                    {"name": "before", "in": "query", "schema": {"type": "integer"}},
                    {"name": "target", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(_OBJECT, "A page of events and the cursor of the next.")}
                | _errors(400),
            }
        },
    },
}

# Every endpoint answers 421 to a Host it does not serve (a DNS-rebinding page's name).
for _operations in OPENAPI["paths"].values():
    for _operation in _operations.values():
        _operation["responses"] |= _errors(421)
