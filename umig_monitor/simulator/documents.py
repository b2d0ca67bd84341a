"""The JSON documents UMIG's admin endpoints answer with, built from an EnvironmentState.

The shapes follow the jq paths of the deployment tracking guide (``.umig.status``,
``.components.database.connections``, ``.entityManagers | length`` ...), which are the only
specification of the wire format we have. Pure: plain dicts in, plain dicts out; the HTTP layer
serialises them with ``json.dumps``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from umig_monitor.simulator.state import EnvironmentState, format_uptime, isoformat_utc

TEAMS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Platform Engineering", "email": "platform@example.com"},
    {"id": 2, "name": "Migration Control", "email": "migration@example.com"},
    {"id": 3, "name": "Database Operations", "email": "dbops@example.com"},
)

USERS: tuple[dict[str, Any], ...] = (
    {"id": 1, "code": "ADM", "firstName": "Ada", "lastName": "Admin", "isAdmin": True},
    {"id": 2, "code": "PIL", "firstName": "Pat", "lastName": "Pilot", "isAdmin": False},
    {"id": 3, "code": "OPS", "firstName": "Olu", "lastName": "Operator", "isAdmin": False},
)

LOGIN_PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Log in - Confluence</title></head>
<body>
<form id="loginform" method="post" action="/dologin.action">
<label for="os_username">Username</label><input id="os_username" name="os_username" type="text">
<label for="os_password">Password</label><input id="os_password" name="os_password" type="password">
<input type="submit" value="Log in">
</form>
</body>
</html>
"""


def health_document(state: EnvironmentState, now: datetime) -> dict[str, Any]:
    statuses = state.component_statuses()
    components: dict[str, Any] = {name: {"status": status} for name, status in statuses.items()}
    components["database"] |= {
        "connections": state.database_connections,
        "responseTime": state.database_response_ms,
    }
    return {
        "umig": {
            "status": state.effective_status(),
            "version": state.version,
            "uptime": format_uptime(state.uptime(now)),
        },
        "components": components,
        "metrics": {
            "errorRate": state.error_rate,
            "activeUsers": state.active_users,
            "responseTime": state.response_time_ms,
        },
    }


def version_document(environment: str, state: EnvironmentState) -> dict[str, Any]:
    return {
        "umig": {
            "version": state.version,
            "build": state.build,
            "buildDate": isoformat_utc(state.build_date),
        },
        "components": {
            "database": {"version": state.database_version},
            "api": {"version": state.api_version},
            "ui": {"version": state.ui_version},
            "backend": {"version": state.backend_version},
        },
        "deployment": {
            "environment": environment,
            "deployedAt": isoformat_utc(state.deployed_at),
            "deployedBy": state.deployed_by,
        },
    }


def components_document(state: EnvironmentState) -> dict[str, Any]:
    return {
        "orchestrator": {"status": state.orchestrator_status},
        "entityManagers": list(state.entity_managers),
        "services": {name: {"status": status} for name, status in state.services.items()},
        "repositories": {"status": state.repositories_status},
    }


def dev_status_document(state: EnvironmentState) -> dict[str, Any]:
    return {
        "features": list(state.features),
        "testData": {"status": state.test_data_status},
        "debug": {"enabled": state.debug_enabled},
    }


def regenerate_document(environment: str, regenerations: int, now: datetime) -> dict[str, Any]:
    return {
        "status": "accepted",
        "environment": environment,
        "regenerations": regenerations,
        "testData": {"status": "ready"},
        "regeneratedAt": isoformat_utc(now),
    }


def error_document(status: int, message: str) -> dict[str, Any]:
    """The Atlassian REST error shape, which is what ScriptRunner endpoints answer errors with."""
    return {"errorMessages": [message], "errors": {}, "status": status}


def malformed_body(document: dict[str, Any]) -> bytes:
    """A real document cut off half-way: starts like JSON, cannot be parsed."""
    text = json.dumps(document).encode()
    return text[: max(len(text) // 2, 1)]


def huge_body(document: dict[str, Any], size_bytes: int) -> bytes:
    """A valid document padded to exactly ``size_bytes`` (or its natural size, if that is larger)."""
    padded = document | {"padding": ""}
    base = len(json.dumps(padded).encode())
    padded["padding"] = "x" * max(size_bytes - base, 0)
    return json.dumps(padded).encode()
