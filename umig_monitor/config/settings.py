"""The root settings object and the checks that span sections (routes naming sinks, ...)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from umig_monitor.config.models import (
    ConfigSilence,
    Daemon,
    DailyReportJob,
    DefaultRoute,
    Deployments,
    Environment,
    Jobs,
    MaintenanceWindow,
    Pushgateway,
    Route,
    Sink,
)

ENV_PREFIX = "UMIG_MONITOR_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class Settings(BaseSettings):
    """Everything the daemon is tuned by. YAML is the base; ``UMIG_MONITOR_*`` variables override it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        populate_by_name=True,
    )

    daemon: Daemon = Daemon()
    environments: dict[str, Environment] = Field(default_factory=dict)
    jobs: Jobs = Jobs()
    sinks: dict[str, Sink] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    default_route: DefaultRoute = DefaultRoute()
    pushgateway: Pushgateway | None = None
    silences: list[ConfigSilence] = Field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = Field(default_factory=list)
    deployments: Deployments = Deployments()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the YAML file (passed as init kwargs).
        return env_settings, init_settings

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        problems: list[str] = []
        named: list[tuple[str, list[str]]] = [
            ("environment", list(self.environments)),
            ("sink", list(self.sinks)),
        ]
        for kind, names in named:
            for name in names:
                if not _NAME.match(name):
                    problems.append(f"{kind} name '{name}' must be letters, digits, '.', '_' or '-'")
        known = set(self.sinks)

        def check(where: str, sinks: list[str]) -> None:
            for sink in sinks:
                if sink not in known:
                    problems.append(
                        f"{where} names unknown sink '{sink}' (known: {', '.join(sorted(known)) or 'none'})"
                    )

        for i, route in enumerate(self.routes):
            check(f"routes[{i}]", route.sinks)
            if route.escalate:
                check(f"routes[{i}].escalate", route.escalate.sinks)
        check("default_route", self.default_route.sinks)
        names = [r.name for r in self.routes if r.name]
        if len(names) != len(set(names)):
            problems.append("route names must be unique")
        report: DailyReportJob = self.jobs.daily_report
        if report.route is not None and report.route not in names:
            problems.append(f"jobs.daily_report.route names unknown route '{report.route}'")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def alertmanager_warnings(self) -> list[str]:
        """Routes that would leave alerts active in an Alertmanager (``format: alertmanager``)
        after they cleared. Alertmanager keeps an alert until it is resolved or its endsAt passes
        (24 h, or 3 x repeat_interval), and only reminders renew it: a route that sends no
        resolved notice, or a sink that only hears the escalation, leaves it there until then."""
        managers = {
            name
            for name, sink in self.sinks.items()
            if sink.type == "webhook" and sink.format == "alertmanager"
        }
        out = []
        routes: list[tuple[str, Route | DefaultRoute]] = [
            *((f"routes[{i}]", r) for i, r in enumerate(self.routes)),
            ("default_route", self.default_route),
        ]
        for where, route in routes:
            if not route.send_resolved:
                for sink in sorted(managers.intersection(route.sinks)):
                    out.append(
                        f"{where}: send_resolved is false, so Alertmanager sink '{sink}' keeps cleared "
                        "alerts active until they expire; leave send_resolved on and set it in "
                        "Alertmanager's receivers instead"
                    )
            escalate = route.escalate if isinstance(route, Route) else None
            if escalate is not None:
                for sink in sorted(managers.intersection(escalate.sinks) - set(route.sinks)):
                    out.append(
                        f"{where}.escalate: Alertmanager sink '{sink}' gets the escalation but no "
                        "reminder or resolved notice, so the alert stays active there until it "
                        "expires; add the sink to the route's sinks"
                    )
        return out

    def route_named(self, name: str) -> Route | None:
        return next((r for r in self.routes if r.name == name), None)

    def redacted(self) -> dict[str, Any]:
        """The effective config as JSON, secrets masked by their types: what /api/v1/config shows."""
        return self.model_dump(mode="json", by_alias=True)
