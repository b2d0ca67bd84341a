"""The live schema: the tables as the current code queries them.

This is not what creates the database; ``migrations.py`` does, step by step. A test compares a
freshly migrated database with these definitions, so a change here without a migration (or
the reverse) fails the build instead of failing in production.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from umig_monitor.storage.types import UTCDateTime, json_doc, surrogate_id

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

health_samples = sa.Table(
    "health_samples",
    metadata,
    sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String, nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("umig_status", sa.String),
    sa.Column("version", sa.String),
    sa.Column("build", sa.String),
    sa.Column("uptime_seconds", sa.BigInteger),
    sa.Column("uptime_text", sa.String),
    sa.Column("response_ms", sa.Double),
    sa.Column("components", json_doc(), nullable=False),
    sa.Column("metrics", json_doc(), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("component_versions", json_doc(), nullable=False),
    sa.Column("tls_cert_expiry", UTCDateTime),
    sa.Column("deployed_at", UTCDateTime),
    sa.Column("deployed_by", sa.String),
    sa.Index("ix_health_samples_environment_ts", "environment", "ts"),
    # Rollup and prune select a time range across all environments.
    sa.Index("ix_health_samples_ts", "ts"),
)

health_rollups_hourly = sa.Table(
    "health_rollups_hourly",
    metadata,
    sa.Column("environment", sa.String, primary_key=True),
    sa.Column("hour", UTCDateTime, primary_key=True),
    sa.Column("samples", sa.Integer, nullable=False),
    sa.Column("healthy", sa.Integer, nullable=False),
    sa.Column("degraded", sa.Integer, nullable=False),
    sa.Column("unhealthy", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("response_ms_avg", sa.Double),
    sa.Column("response_ms_max", sa.Double),
    # A time range over every environment (the status page); the key serves one environment.
    sa.Index("ix_health_rollups_hourly_hour_environment", "hour", "environment"),
)

deployment_events = sa.Table(
    "deployment_events",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("deployment_id", sa.String, nullable=False),
    sa.Column("environment", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("version", sa.String),
    sa.Column("from_version", sa.String),
    sa.Column("to_version", sa.String),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("initiated_by", sa.String),
    sa.Column("duration_seconds", sa.Double),
    sa.Column("error", sa.Text),
    sa.Column("status", sa.String),
    sa.Column("metadata", json_doc(none_as_null=True)),
    sa.Column("flags", json_doc(none_as_null=True)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_deployment_events_summary", "environment", "ts", "type", "deployment_id"),
    sa.Index("ix_deployment_events_deployment_id", "deployment_id"),
    sa.Index("ix_deployment_events_created_at", "created_at"),
    # The latest events of all environments (the status page).
    sa.Index("ix_deployment_events_ts", "ts"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
    sa.Column("alert_key", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("environment", sa.String),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("labels", json_doc(), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", json_doc(), nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime),
    sa.Column("last_notified_at", UTCDateTime),
    sa.Column("acked_at", UTCDateTime),
    sa.Column("acked_by", sa.String),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_alerts_alert_key_state", "alert_key", "state"),
    # At most one firing alert per key, whichever replica or restart raised it.
    sa.Index(
        "uq_alerts_firing_key",
        "alert_key",
        unique=True,
        sqlite_where=sa.text("state = 'firing'"),
        postgresql_where=sa.text("state = 'firing'"),
    ),
    # Firing or recently resolved alerts, newest first; one environment's over a window.
    sa.Index("ix_alerts_state_starts_at", "state", "starts_at"),
    sa.Index("ix_alerts_environment_starts_at", "environment", "starts_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
    # SET NULL: pruning an old resolved alert must not take its delivery record with it.
    sa.Column("alert_id", surrogate_id(), sa.ForeignKey("alerts.id", ondelete="SET NULL")),
    sa.Column("sink", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("idempotency_key", sa.String, nullable=False),
    sa.Column("payload", json_doc(), nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("deadline", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    # The deliverer holding the row while it sends it; free again once claimed_until passes.
    sa.Column("claimed_by", sa.String),
    sa.Column("claimed_until", UTCDateTime),
    sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

baselines = sa.Table(
    "baselines",
    metadata,
    sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String, nullable=False),
    sa.Column("version", sa.String),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("endpoints", json_doc(), nullable=False),
    sa.Column("figures", json_doc(), nullable=False),
    sa.Index("ix_baselines_environment_ts", "environment", "ts"),
)

drift_findings = sa.Table(
    "drift_findings",
    metadata,
    sa.Column("id", surrogate_id(), primary_key=True, autoincrement=True),
    sa.Column("finding_key", sa.String, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("environment", sa.String),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", json_doc(), nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Index("ix_drift_findings_finding_key", "finding_key"),
)

kv_state = sa.Table(
    "kv_state",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", json_doc(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

notification_log = sa.Table(
    "notification_log",
    metadata,
    sa.Column("alert_id", surrogate_id(), primary_key=True, autoincrement=False),
    sa.Column("route_key", sa.String, primary_key=True),
    sa.Column("last_kind", sa.String, nullable=False),
    sa.Column("last_at", UTCDateTime, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("escalated_at", UTCDateTime),
    # The alerts whose resolved notice may be due (the dispatcher, every second).
    sa.Index("ix_notification_log_last_kind", "last_kind"),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("matchers", json_doc(), nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=False),
    sa.Column("ends_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_silences_ends_at", "ends_at"),
)

deployment_watches = sa.Table(
    "deployment_watches",
    metadata,
    sa.Column("deployment_id", sa.String, primary_key=True),
    sa.Column("environment", sa.String, nullable=False),
    sa.Column("expected_version", sa.String, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("deadline", UTCDateTime, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("result", json_doc(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_deployment_watches_state", "state"),
)

# One row per deployment, kept in step with deployment_events: the history summary reads these
# instead of grouping every event of the window.
deployment_rollups = sa.Table(
    "deployment_rollups",
    metadata,
    sa.Column("deployment_id", sa.String, primary_key=True),
    sa.Column("environment", sa.String, nullable=False),
    sa.Column("first_ts", UTCDateTime, nullable=False),
    sa.Column("last_ts", UTCDateTime, nullable=False),
    sa.Column("started", sa.Integer, nullable=False),
    sa.Column("observed", sa.Integer, nullable=False),
    sa.Column("success_ts", UTCDateTime),
    sa.Column("failure_ts", UTCDateTime),
    sa.Column("rollback_ts", UTCDateTime),
    # Covering: the history summary reads the window's deployments from the index alone.
    sa.Index(
        "ix_deployment_rollups_summary",
        "environment",
        "last_ts",
        "started",
        "observed",
        "success_ts",
        "failure_ts",
        "rollback_ts",
    ),
)

# Per environment and UTC day, kept in step with deployment_events and deployment_rollups (in the
# transaction that writes them): the day's events by type, and the deployments whose latest event
# falls on that day by outcome. A history window "since T" reads its whole days here and only T's
# own day from the events and rollups, so its cost does not grow with the window.
deployment_days = sa.Table(
    "deployment_days",
    metadata,
    sa.Column("environment", sa.String, primary_key=True),
    sa.Column("day", UTCDateTime, primary_key=True),
    sa.Column("deployment_start_events", sa.Integer, nullable=False),
    sa.Column("deployment_success_events", sa.Integer, nullable=False),
    sa.Column("deployment_failure_events", sa.Integer, nullable=False),
    sa.Column("rollback_events", sa.Integer, nullable=False),
    sa.Column("observed_events", sa.Integer, nullable=False),
    sa.Column("outcome_success", sa.Integer, nullable=False),
    sa.Column("outcome_failure", sa.Integer, nullable=False),
    sa.Column("outcome_rollback", sa.Integer, nullable=False),
    sa.Column("outcome_in_progress", sa.Integer, nullable=False),
    sa.Column("outcome_observed", sa.Integer, nullable=False),
    # Had a failure, a rollback, whatever their outcome (the summary's "failed" and "rollbacks").
    sa.Column("with_failure", sa.Integer, nullable=False),
    sa.Column("with_rollback", sa.Integer, nullable=False),
    # A window over every environment (the key serves one environment's).
    sa.Index("ix_deployment_days_day", "day"),
)

# One row per replica, rewritten at every heartbeat.
cluster_members = sa.Table(
    "cluster_members",
    metadata,
    sa.Column("member_id", sa.String, primary_key=True),
    sa.Column("url", sa.String),
    sa.Column("hostname", sa.String, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("polling", sa.Integer, nullable=False),
)

# Named leases ("leader"): held by one member until expires_at unless it renews.
cluster_leases = sa.Table(
    "cluster_leases",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)
