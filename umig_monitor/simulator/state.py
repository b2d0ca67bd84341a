"""What one simulated UMIG environment reports, as a plain value, and the rules for changing it.

Pure on purpose: no aiohttp and no clock. ``now`` is passed in, so uptime, presets and control
patches can be tested as functions over tables of cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

HEALTHY = "healthy"

_ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_ENTITY_MANAGERS = (
    "TeamsEntityManager",
    "UsersEntityManager",
    "EnvironmentsEntityManager",
    "ApplicationsEntityManager",
    "LabelsEntityManager",
    "MigrationsEntityManager",
    "IterationsEntityManager",
    "StepsEntityManager",
)

_SERVICES = ("authenticationService", "emailService", "auditService", "importService")


def _default_services() -> dict[str, str]:
    return dict.fromkeys(_SERVICES, "active")


@dataclass(frozen=True, slots=True)
class EnvironmentState:
    """Everything the admin endpoints of one environment report.

    ``status`` is the umig status; ``None`` means "derive it from the component health", which is
    what makes a sick database show up as a degraded environment and heal with regeneration.
    ``services`` maps a service name to its status and is treated as read-only.
    """

    version: str
    build: str
    build_date: datetime
    started_at: datetime
    deployed_at: datetime
    deployed_by: str
    database_version: str
    api_version: str
    ui_version: str
    backend_version: str
    status: str | None = None
    database_status: str = HEALTHY
    database_connections: int = 12
    database_response_ms: int = 25
    api_status: str = HEALTHY
    ui_status: str = HEALTHY
    authentication_status: str = HEALTHY
    error_rate: float = 0.01
    active_users: int = 42
    response_time_ms: int = 180
    orchestrator_status: str = "active"
    entity_managers: tuple[str, ...] = _ENTITY_MANAGERS
    services: Mapping[str, str] = field(default_factory=_default_services)
    repositories_status: str = HEALTHY
    features: tuple[str, ...] = ()
    test_data_status: str = "ready"
    debug_enabled: bool = False

    def component_statuses(self) -> dict[str, str]:
        """The health document's components, in the order the guide lists them."""
        return {
            "database": self.database_status,
            "api": self.api_status,
            "ui": self.ui_status,
            "authentication": self.authentication_status,
        }

    def effective_status(self) -> str:
        if self.status is not None:
            return self.status
        statuses = self.component_statuses().values()
        return HEALTHY if all(s == HEALTHY for s in statuses) else "degraded"

    def uptime(self, now: datetime) -> timedelta:
        return max(now - self.started_at, timedelta(0))


def format_uptime(uptime: timedelta) -> str:
    """Render uptime like the guide does: ``2h 45m``, ``1d 2h 15m``; leading zero units are left out."""
    minutes_total = int(uptime.total_seconds()) // 60
    days, rest = divmod(minutes_total, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def isoformat_utc(moment: datetime) -> str:
    """``2024-10-25T10:15:30Z``: the form the guide's examples use."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_environment_name(name: str) -> str:
    """Environment names become URL path segments, so keep them to a safe alphabet."""
    if not _ENVIRONMENT_NAME.fullmatch(name):
        raise ValueError(
            f"environment name {name!r} must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


# --- presets -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Preset:
    version: str
    build: str
    build_date: str
    deployed_at: str
    deployed_by: str
    uptime: timedelta
    database_version: str
    api_version: str
    ui_version: str
    backend_version: str
    features: tuple[str, ...] = ()
    debug_enabled: bool = False


# From the guide's "Current Environment Status" example; hotfix follows its version pattern table.
_PRESETS: Mapping[str, _Preset] = MappingProxyType(
    {
        "development": _Preset(
            version="1.3.0-dev+ci.1245",
            build="ci.1245",
            build_date="2024-10-25T10:02:11Z",
            deployed_at="2024-10-25T10:15:30Z",
            deployed_by="automation",
            uptime=timedelta(hours=2, minutes=45),
            database_version="032-dev",
            api_version="2.4.0-dev",
            ui_version="1.3.0-dev",
            backend_version="1.3.0-dev",
            features=("iteration-view-v2", "bulk-import", "audit-trail", "email-templates"),
            debug_enabled=True,
        ),
        "uat": _Preset(
            version="1.2.0-rc.2",
            build="rc.2-1198",
            build_date="2024-10-24T13:48:05Z",
            deployed_at="2024-10-24T14:30:00Z",
            deployed_by="lucas.challamel",
            uptime=timedelta(days=1, hours=2, minutes=15),
            database_version="031",
            api_version="2.3.1",
            ui_version="1.2.0",
            backend_version="1.2.0",
            features=("bulk-import", "audit-trail"),
        ),
        "production": _Preset(
            version="1.1.2",
            build="1170",
            build_date="2024-10-19T16:20:44Z",
            deployed_at="2024-10-20T09:00:00Z",
            deployed_by="deployment-automation",
            uptime=timedelta(days=5, hours=7, minutes=45),
            database_version="030",
            api_version="2.3.0",
            ui_version="1.1.2",
            backend_version="1.1.2",
        ),
        "hotfix": _Preset(
            version="1.1.3+hotfix.1",
            build="hotfix.1-1176",
            build_date="2024-10-26T15:55:12Z",
            deployed_at="2024-10-26T16:40:00Z",
            deployed_by="oncall-automation",
            uptime=timedelta(hours=3, minutes=10),
            database_version="030",
            api_version="2.3.0",
            ui_version="1.1.3",
            backend_version="1.1.3",
        ),
    }
)

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def preset(name: str, now: datetime) -> EnvironmentState:
    """The starting state of an environment; names without a preset look like production."""
    chosen = _PRESETS.get(name, _PRESETS["production"])
    return EnvironmentState(
        version=chosen.version,
        build=chosen.build,
        build_date=datetime.fromisoformat(chosen.build_date),
        started_at=now - chosen.uptime,
        deployed_at=datetime.fromisoformat(chosen.deployed_at),
        deployed_by=chosen.deployed_by,
        database_version=chosen.database_version,
        api_version=chosen.api_version,
        ui_version=chosen.ui_version,
        backend_version=chosen.backend_version,
        features=chosen.features,
        debug_enabled=chosen.debug_enabled,
    )


# --- JSON form and merge patches for the control API ----------------------------------------------


class PatchError(ValueError):
    """A control patch that cannot be applied; the message names the offending field."""


def state_to_json(state: EnvironmentState) -> dict[str, Any]:
    """The control API's view: field names as in the dataclass, so it can be PATCHed back as is."""
    out: dict[str, Any] = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if isinstance(value, datetime):
            value = isoformat_utc(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[f.name] = value
    return out


def derived_to_json(state: EnvironmentState, now: datetime) -> dict[str, Any]:
    """What the endpoints compute from the state at ``now``; read-only, so kept apart from the state."""
    uptime = state.uptime(now)
    return {
        "effective_status": state.effective_status(),
        "uptime": format_uptime(uptime),
        "uptime_seconds": int(uptime.total_seconds()),
    }


def _text(field_name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PatchError(f"{field_name}: expected a non-empty string, got {value!r}")
    return value


def _optional_text(field_name: str, value: object) -> str | None:
    return None if value is None else _text(field_name, value)


def _count(field_name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PatchError(f"{field_name}: expected a non-negative integer, got {value!r}")
    return value


def _rate(field_name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise PatchError(f"{field_name}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def _flag(field_name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise PatchError(f"{field_name}: expected true or false, got {value!r}")
    return value


def _moment(field_name: str, value: object) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    raise PatchError(f"{field_name}: expected an ISO 8601 timestamp with a timezone, got {value!r}")


def _names(field_name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PatchError(f"{field_name}: expected a list of strings, got {value!r}")
    return tuple(_text(f"{field_name}[{i}]", item) for i, item in enumerate(value))


_FIELD_PARSERS: Mapping[str, Callable[[str, object], object]] = {
    "version": _text,
    "build": _text,
    "build_date": _moment,
    "started_at": _moment,
    "deployed_at": _moment,
    "deployed_by": _text,
    "database_version": _text,
    "api_version": _text,
    "ui_version": _text,
    "backend_version": _text,
    "status": _optional_text,
    "database_status": _text,
    "database_connections": _count,
    "database_response_ms": _count,
    "api_status": _text,
    "ui_status": _text,
    "authentication_status": _text,
    "error_rate": _rate,
    "active_users": _count,
    "response_time_ms": _count,
    "orchestrator_status": _text,
    "entity_managers": _names,
    "repositories_status": _text,
    "features": _names,
    "test_data_status": _text,
    "debug_enabled": _flag,
}

PATCHABLE_FIELDS: tuple[str, ...] = (*_FIELD_PARSERS, "services", "uptime_seconds")


def _merge_services(current: Mapping[str, str], value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise PatchError(f"services: expected an object of service name to status, got {value!r}")
    merged = dict(current)
    for name, status in value.items():
        if status is None:
            merged.pop(name, None)
        else:
            merged[_text("services", name)] = _text(f"services.{name}", status)
    return merged


def apply_patch(state: EnvironmentState, patch: Mapping[str, object], now: datetime) -> EnvironmentState:
    """Merge a JSON patch into a state (RFC 7396 style: ``services`` merges key by key, null removes).

    ``status: null`` returns the umig status to "derived from components". ``uptime_seconds`` is a
    convenience that moves ``started_at``; giving both is ambiguous and refused.
    """
    unknown = sorted(set(patch) - set(PATCHABLE_FIELDS))
    if unknown:
        raise PatchError(f"unknown field(s) {', '.join(unknown)}; patchable: {', '.join(PATCHABLE_FIELDS)}")
    if "uptime_seconds" in patch and "started_at" in patch:
        raise PatchError("uptime_seconds: give either uptime_seconds or started_at, not both")
    changes: dict[str, Any] = {}
    for name, value in patch.items():
        if name == "services":
            changes[name] = _merge_services(state.services, value)
        elif name == "uptime_seconds":
            changes["started_at"] = now - timedelta(seconds=_count(name, value))
        else:
            changes[name] = _FIELD_PARSERS[name](name, value)
    return replace(state, **changes)
