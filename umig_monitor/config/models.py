"""The configuration schema: one pydantic model per YAML section, unknown keys rejected.

Sinks are a union keyed on ``type``; SINK_TYPES is the single registry of sink kinds."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from umig_monitor.config.secrets import CredentialHttpUrl, CredentialUrl, SecretText, redacted_repr_args
from umig_monitor.config.types import (
    Duration,
    Listen,
    PositiveDuration,
    read_secret,
    split_listen,
)
from umig_monitor.core.timetext import format_duration

EnvironmentKind = Literal["development", "uat", "production", "hotfix"]
Severity = Literal["critical", "warning", "info"]
DEFAULT_API_PREFIX = "/rest/scriptrunner/latest/custom"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return redacted_repr_args(self, super().__repr_args__())


def _one_of(value: object, file: object, name: str) -> None:
    if value is not None and file is not None:
        raise ValueError(f"set either {name} or {name}_file, not both")


# --- daemon -----------------------------------------------------------------------------------


class Retention(Strict):
    raw_samples: PositiveDuration = timedelta(days=30)
    hourly_rollups: PositiveDuration = timedelta(days=400)
    alerts: PositiveDuration = timedelta(days=400)
    outbox_sent: PositiveDuration = timedelta(days=30)
    interval: PositiveDuration = timedelta(hours=1)


class Cluster(Strict):
    """Several replicas on one PostgreSQL: heartbeats, a leader lease, environments split by a
    rendezvous hash. A lone replica (and every SQLite setup) is a cluster of one."""

    # Unique per replica; default "<hostname>:<listen port>", stable across restarts so a
    # restarted leader takes its own lease back at once.
    member_id: str | None = Field(default=None, min_length=1, max_length=200)
    # How other replicas and the CLI reach this one; default: the listen address.
    advertise_url: CredentialHttpUrl | None = None
    heartbeat_interval: PositiveDuration = timedelta(seconds=5)
    lease_ttl: PositiveDuration = timedelta(seconds=15)

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Cluster:
        if self.lease_ttl < 2 * self.heartbeat_interval:
            raise ValueError(
                f"lease_ttl ({format_duration(self.lease_ttl)}) must be at least twice heartbeat_interval "
                f"({format_duration(self.heartbeat_interval)}): the leader renews once per heartbeat"
            )
        return self

    @property
    def member_timeout(self) -> timedelta:
        """A member whose last heartbeat is older than this is dead: its environments move."""
        return self.heartbeat_interval * 1.5


class Http(Strict):
    """The daemon's own HTTP server's self-protection against clients that hold connections."""

    max_connections: int = Field(default=1024, ge=8, le=60000)
    # A client must send a request's headers within this; then the connection is closed.
    header_timeout: PositiveDuration = timedelta(seconds=10)
    # An idle keep-alive connection is closed after this.
    keepalive_timeout: PositiveDuration = timedelta(seconds=15)
    # The status page and GET /api/v1/environments are built at most this often and served from
    # memory in between (a build reads every environment's state).
    page_max_age: PositiveDuration = Field(default=timedelta(seconds=1), le=timedelta(minutes=5))


class Daemon(Strict):
    listen: Listen = "127.0.0.1:9464"
    storage: CredentialUrl = "sqlite:////var/lib/umig-monitor/umig-monitor.db"
    storage_pool_size: int = Field(default=5, ge=1, le=100)
    timezone: str = "UTC"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    external_url: CredentialHttpUrl | None = None
    shutdown_timeout: PositiveDuration = timedelta(seconds=8)
    max_concurrent_polls: int = Field(default=50, ge=1, le=10000)
    # How often the daemon checks its own storage (reachable; a SQLite file not deleted or replaced).
    storage_check_interval: PositiveDuration = timedelta(seconds=15)
    retention: Retention = Retention()
    cluster: Cluster = Cluster()
    http: Http = Http()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone '{value}'") from None
        return value

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql|postgres)(\+\w+)?://", value):
            raise ValueError(f"unsupported storage URL '{value}' (use sqlite:///path or postgresql://...)")
        return value

    @model_validator(mode="after")
    def _token_once(self) -> Daemon:
        _one_of(self.api_token, self.api_token_file, "api_token")
        return self

    @property
    def listen_address(self) -> tuple[str, int]:
        return split_listen(self.listen)

    def read_api_token(self) -> str | None:
        return read_secret(self.api_token, self.api_token_file)


# --- environments -----------------------------------------------------------------------------


class NoAuth(Strict):
    type: Literal["none"] = "none"


class BasicAuth(Strict):
    type: Literal["basic"]
    username: str
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _password_once(self) -> BasicAuth:
        _one_of(self.password, self.password_file, "password")
        if self.password is None and self.password_file is None:
            raise ValueError("basic auth needs password or password_file")
        return self


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _token_once(self) -> BearerAuth:
        _one_of(self.token, self.token_file, "token")
        if self.token is None and self.token_file is None:
            raise ValueError("bearer auth needs token or token_file")
        return self


Auth = Annotated[NoAuth | BasicAuth | BearerAuth, Field(discriminator="type")]


class Tls(Strict):
    verify: bool = True
    ca_file: Path | None = None


class Thresholds(Strict):
    """The guide's production checks: errorRate, responseTime (ms), database connections; and
    how long before its TLS certificate expires an https environment warns, then is critical."""

    error_rate: float = Field(default=0.05, ge=0)
    response_time_ms: float = Field(default=3000, gt=0)
    db_connections: int = Field(default=80, gt=0)
    certificate_warning: PositiveDuration = timedelta(days=21)
    certificate_critical: PositiveDuration = timedelta(days=7)

    @model_validator(mode="after")
    def _certificate_order(self) -> Thresholds:
        if self.certificate_critical > self.certificate_warning:
            raise ValueError(
                f"certificate_critical ({format_duration(self.certificate_critical)}) must not exceed "
                f"certificate_warning ({format_duration(self.certificate_warning)})"
            )
        return self


class Actions(Strict):
    regenerate_test_data: bool = False


class Environment(Strict):
    base_url: CredentialHttpUrl
    api_prefix: str = DEFAULT_API_PREFIX
    kind: EnvironmentKind = "production"
    auth: Auth = NoAuth()
    tls: Tls = Tls()
    poll_interval: PositiveDuration = timedelta(seconds=30)
    timeout: PositiveDuration = timedelta(seconds=10)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Version and components are read on every N-th poll (and at once on a change or a bad poll,
    # see core/details.py); the default sees an orchestrator go inactive within 2 min at 30 s.
    full_poll_every: int = Field(default=4, ge=1, le=1000)
    thresholds: Thresholds = Thresholds()
    severity: Severity | None = None
    actions: Actions = Actions()
    labels: dict[str, str] = Field(default_factory=dict)
    # Also append the guide's `timestamp|status|version|uptime` line per poll, for existing tooling.
    health_log: Path | None = None

    @field_validator("api_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"api_prefix must start with '/', got '{value}'")
        return value.rstrip("/")

    @property
    def alert_severity(self) -> Severity:
        """Critical in production, warning elsewhere, unless set."""
        if self.severity is not None:
            return self.severity
        return "critical" if self.kind == "production" else "warning"

    def endpoint(self, path: str) -> str:
        return f"{str(self.base_url).rstrip('/')}{self.api_prefix}{path}"


# What the shipped dashboard and rules read, and the guide's uptime: pushed unless configured.
PUSHED_METRICS = (
    "umig_version_info",
    "umig_health_status",
    "umig_uptime_seconds",
    "umig_environment_status",
    "umig_probe_duration_seconds",
    "umig_probe_failures_total",
    "umig_deployment_total",
    "umig_alerts_firing",
    "umig_outbox_pending",
    "umig_notifications_total",
    "umig_version_drift",
    "umig_baseline_latency_seconds",
    "umig_monitor_job_runs_total",
    "umig_monitor_job_last_success_timestamp_seconds",
    "umig_monitor_config_last_reload_successful",
)
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class Pushgateway(Strict):
    """Push metrics to a Prometheus Pushgateway (the guide's export script). Each replica pushes
    its own share to its own group: ``job``, ``instance`` (its member id unless set here) and the
    other ``grouping_key`` labels."""

    url: CredentialHttpUrl
    job: str = "umig-deployment-tracking"
    interval: PositiveDuration = timedelta(seconds=30)
    grouping_key: dict[str, str] = Field(default_factory=dict)
    metrics: tuple[str, ...] = PUSHED_METRICS

    @field_validator("job")
    @classmethod
    def _job(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("grouping_key")
    @classmethod
    def _grouping_key(cls, value: dict[str, str]) -> dict[str, str]:
        for name, label in value.items():
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"'{name}' is not a Prometheus label name")
            if name == "job":
                raise ValueError("'job' is pushgateway.job, not a grouping_key label")
            if not label:
                raise ValueError(f"{name}: a grouping label needs a value")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not _METRIC_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"not metric names: {', '.join(bad)}")
        if not value:
            raise ValueError("push at least one metric (or remove the pushgateway section)")
        return value


# --- jobs -------------------------------------------------------------------------------------


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger  # local: config stays importable cheaply

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression '{value}': {exc}") from None
    return value


class HealthJob(Strict):
    failure_threshold: int = Field(default=3, ge=1)
    success_threshold: int = Field(default=2, ge=1)
    # More than this many version changes within the window is flapping: one notice per window
    # with the count instead of one deployment_observed notice per change.
    version_flap_changes: int = Field(default=3, ge=1, le=10_000)
    version_flap_window: PositiveDuration = timedelta(minutes=10)


def _default_stale_after() -> dict[EnvironmentKind, timedelta]:
    # The guide's matrix: development multiple daily, UAT weekly, production bi-weekly.
    return {"development": timedelta(days=1), "uat": timedelta(days=7), "production": timedelta(days=14)}


class DriftJob(Strict):
    enabled: bool = True
    interval: PositiveDuration = timedelta(minutes=5)
    max_versions_behind: int = Field(default=2, ge=0)
    # Components whose versions must match within one environment (the guide: UI vs backend).
    component_pairs: list[tuple[str, str]] = Field(default_factory=lambda: [("ui", "backend")])
    # No deployment for longer than this, per environment kind, is a stale environment.
    stale_after: dict[EnvironmentKind, PositiveDuration] = Field(default_factory=_default_stale_after)


class BaselineJob(Strict):
    enabled: bool = True
    cron: str = "0 * * * *"
    samples: int = Field(default=5, ge=1, le=1000)
    regression_threshold: float = Field(default=0.20, gt=0)
    # The floor: a regression must also grow by more than this (ms), so noise on fast endpoints is
    # quiet; percentages are only given against references above it.
    min_delta_ms: float = Field(default=50.0, ge=0)
    # The previous version's reference is the median of its last reference_baselines baselines in
    # the environment; this version's rolling median that of its last history_baselines. Either
    # needs at least min_baselines of them, else that comparison is not made.
    reference_baselines: int = Field(default=5, ge=1, le=100)
    history_baselines: int = Field(default=10, ge=1, le=100)
    min_baselines: int = Field(default=3, ge=1, le=100)

    _cron = field_validator("cron")(classmethod(lambda cls, v: _check_cron(v)))

    @model_validator(mode="after")
    def _reachable_minimum(self) -> BaselineJob:
        if self.min_baselines > min(self.reference_baselines, self.history_baselines):
            raise ValueError(
                f"min_baselines ({self.min_baselines}) is more than reference_baselines "
                f"({self.reference_baselines}) or history_baselines ({self.history_baselines}): "
                "nothing would ever be compared"
            )
        return self


class DailyReportJob(Strict):
    enabled: bool = True
    cron: str = "0 7 * * *"
    route: str | None = None
    # Where daily-status-YYYY-MM-DD.{txt,html,json} are written; null: not written, only sent.
    directory: Path | None = Path("/var/lib/umig-monitor/reports")

    _cron = field_validator("cron")(classmethod(lambda cls, v: _check_cron(v)))


class Jobs(Strict):
    health: HealthJob = HealthJob()
    drift: DriftJob = DriftJob()
    baseline: BaselineJob = BaselineJob()
    daily_report: DailyReportJob = DailyReportJob()
    misfire_grace_time: PositiveDuration = timedelta(seconds=30)


# --- sinks ------------------------------------------------------------------------------------


class Retry(Strict):
    deadline: PositiveDuration = timedelta(hours=24)
    initial_backoff: PositiveDuration = timedelta(seconds=1)
    max_backoff: PositiveDuration = timedelta(minutes=5)


class SinkBase(Strict):
    timeout: PositiveDuration = timedelta(seconds=10)
    retry: Retry = Retry()
    rate_limit_per_second: float | None = Field(default=None, gt=0)


class MailSink(SinkBase):
    type: Literal["mail"]
    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    starttls: bool = False
    tls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    subject_prefix: str = ""

    @model_validator(mode="after")
    def _coherent(self) -> MailSink:
        _one_of(self.password, self.password_file, "password")
        if self.starttls and self.tls:
            raise ValueError("starttls and tls (implicit TLS) are exclusive")
        return self

    def read_password(self) -> str | None:
        return read_secret(self.password, self.password_file)


class WebhookSink(SinkBase):
    type: Literal["webhook"]
    url: SecretStr | None = None
    url_file: Path | None = None
    headers: dict[str, SecretText] = Field(default_factory=dict)
    format: Literal["webhook", "alertmanager"] = "webhook"
    # format: alertmanager only: how long a one-off notice (deployment event, test) stays active
    # there. Longer than that Alertmanager route's group_wait + group_interval, or it resolves
    # before Alertmanager sends it.
    notice_ttl: PositiveDuration = timedelta(minutes=10)

    @model_validator(mode="after")
    def _url_once(self) -> WebhookSink:
        _one_of(self.url, self.url_file, "url")
        if self.url is None and self.url_file is None:
            raise ValueError("webhook sink needs url or url_file")
        return self

    def read_url(self) -> str | None:
        return read_secret(self.url, self.url_file)


class SlackSink(SinkBase):
    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    channel: str | None = None
    username: str | None = None
    rate_limit_per_second: float | None = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _url_once(self) -> SlackSink:
        _one_of(self.webhook_url, self.webhook_url_file, "webhook_url")
        if self.webhook_url is None and self.webhook_url_file is None:
            raise ValueError("slack sink needs webhook_url or webhook_url_file")
        return self

    def read_url(self) -> str | None:
        return read_secret(self.webhook_url, self.webhook_url_file)


# The one registry of sink kinds: a new sink type is added here and in umig_monitor.sinks.
SINK_TYPES: dict[str, type[SinkBase]] = {"mail": MailSink, "webhook": WebhookSink, "slack": SlackSink}
Sink = Annotated[MailSink | WebhookSink | SlackSink, Field(discriminator="type")]


# --- routes -----------------------------------------------------------------------------------


class Escalation(Strict):
    after: PositiveDuration
    sinks: list[str] = Field(min_length=1)


class Route(Strict):
    name: str | None = None
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    sinks: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] = Field(default_factory=lambda: ["type", "environment"])
    group_wait: Duration = timedelta(0)
    repeat_interval: PositiveDuration = timedelta(hours=4)
    send_resolved: bool = True
    escalate: Escalation | None = None

    @field_validator("match_re")
    @classmethod
    def _regex_compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for key, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{key}: invalid regex '{pattern}': {exc}") from None
        return value


class DefaultRoute(Strict):
    sinks: list[str] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=lambda: ["type", "environment"])
    group_wait: Duration = timedelta(0)
    repeat_interval: PositiveDuration = timedelta(hours=4)
    send_resolved: bool = True


# --- silences and maintenance windows ---------------------------------------------------------


def _check_matchers(value: list[str]) -> list[str]:
    from umig_monitor.core.silences import parse_matcher

    for text in value:
        parse_matcher(text)
    return value


class ConfigSilence(Strict):
    """A one-off window during which matching alerts are not notified."""

    matchers: list[str] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    comment: str = ""

    _matchers = field_validator("matchers")(classmethod(lambda cls, v: _check_matchers(v)))

    @model_validator(mode="after")
    def _ordered(self) -> ConfigSilence:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class MaintenanceWindow(Strict):
    """A weekly window, e.g. ``{days: [sat], start: "22:00", duration: 4h}``, in ``timezone``."""

    matchers: list[str] = Field(default_factory=list)
    days: list[Weekday] = Field(min_length=1)
    start: time
    duration: PositiveDuration
    timezone: str | None = None
    comment: str = ""

    _matchers = field_validator("matchers")(classmethod(lambda cls, v: _check_matchers(v)))

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone '{value}'") from None
        return value


# --- deployments ------------------------------------------------------------------------------

ValidationCheck = Literal["health", "orchestrator", "teams", "users"]
DEFAULT_VALIDATION: tuple[ValidationCheck, ...] = ("health", "orchestrator", "teams")


class Deployments(Strict):
    """Deployment tracking: forwarding to a central log, and the post-deployment validation."""

    forward_url: SecretStr | None = None
    forward_url_file: Path | None = None
    forward_headers: dict[str, SecretText] = Field(default_factory=dict)
    forward_retry: Retry = Retry()
    watch_interval: PositiveDuration = timedelta(seconds=10)
    watch_timeout: PositiveDuration = timedelta(minutes=10)
    # Events about one environment and version this close together are one deployment (a start,
    # its watch, its success, the version polling then sees), with or without an id.
    window: PositiveDuration = timedelta(hours=24)
    # While a deployment runs (a start with no outcome yet, or a watch), a health incident of its
    # environment waits this long before it pages: a restart during a rollout is not an outage.
    # 0 pages at once, as with no deployment.
    alert_grace: Duration = timedelta(minutes=5)
    # An incident that starts this soon after a deployment reached its environment is linked to
    # that deployment: in the alert, the API, the page, the report and the change failure rate.
    incident_link_window: PositiveDuration = timedelta(hours=1)
    # The guide's defaults: health healthy, orchestrator active, teams endpoint 200.
    validation: list[ValidationCheck] = Field(default_factory=lambda: list(DEFAULT_VALIDATION))

    @model_validator(mode="after")
    def _url_once(self) -> Deployments:
        _one_of(self.forward_url, self.forward_url_file, "forward_url")
        return self

    @property
    def forwarding(self) -> bool:
        return self.forward_url is not None or self.forward_url_file is not None

    def read_forward_url(self) -> str | None:
        return read_secret(self.forward_url, self.forward_url_file)
