"""Config loading: valid files, every class of invalid file, expansion, *_file secrets, overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from umig_monitor.cli import main
from umig_monitor.config import ConfigError, load_config, parse_config
from umig_monitor.config.loader import resolve_config_path
from umig_monitor.config.types import SecretFileError, parse_duration, redact_url
from umig_monitor.core.timetext import format_duration

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
BASE = """
environments:
  production:
    base_url: http://127.0.0.1:1/production
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("UMIG_MONITOR_") or key.startswith("UMIG_TEST_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_configs_validate(path: Path) -> None:
    settings = load_config(path)
    assert settings.environments


def test_example_config_documents_every_section() -> None:
    settings = load_config(CONFIG_DIR / "umig-monitor.example.yaml")
    prod = settings.environments["production"]
    assert prod.poll_interval == timedelta(seconds=30)
    assert prod.full_poll_every == 4
    assert prod.thresholds.db_connections == 80
    assert prod.alert_severity == "critical"
    assert settings.environments["uat"].alert_severity == "warning"
    assert settings.jobs.health.failure_threshold == 3
    assert set(settings.sinks) == {"ops-mail", "ops-webhook", "ops-slack"}
    assert settings.route_named("ops-daily") is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        (45, timedelta(seconds=45)),
    ],
)
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


# (yaml, the error path, a fragment of the message, the line)
INVALID = [
    (
        BASE + "    poll_interval: fast\n",
        "environments.production.poll_interval",
        "invalid duration 'fast'",
        5,
    ),
    (BASE + "    poll_interval: 0s\n", "environments.production.poll_interval", "greater than 0", 5),
    (BASE + "    pol_interval: 30s\n", "environments.production.pol_interval", "unknown key", 5),
    (BASE + "    full_poll_every: 0\n", "environments.production.full_poll_every", "greater than or", 5),
    (
        "environments:\n  production:\n    base_url: not-a-url\n",
        "environments.production.base_url",
        "invalid URL",
        3,
    ),
    (
        "environments:\n  production:\n    kind: production\n",
        "environments.production.base_url",
        "missing required key",
        2,
    ),
    (BASE + "    kind: staging\n", "environments.production.kind", "'development', 'uat', 'production'", 5),
    (BASE + "    auth: {type: basic, username: u}\n", "environments.production.auth", "password", 5),
    (
        BASE + "    auth: {type: basic, username: u, password: a, password_file: /x}\n",
        "environments.production.auth",
        "not both",
        5,
    ),
    (BASE + "daemon: {timezone: Mars/Olympus}\n", "daemon.timezone", "unknown timezone", 5),
    (BASE + "daemon: {listen: nowhere}\n", "daemon.listen", "invalid listen address", 5),
    (BASE + "daemon: {storage: 'mysql://x'}\n", "daemon.storage", "unsupported storage URL", 5),
    (BASE + "jobs: {baseline: {cron: 'every hour'}}\n", "jobs.baseline.cron", "invalid cron", 5),
    (
        BASE + "sinks:\n  m: {type: mail, host: h, port: 99999, from: a@b, to: [c@d]}\n",
        "sinks.m.port",
        "less than 65536",
        6,
    ),
    (BASE + "sinks:\n  s: {type: slack}\n", "sinks.s", "webhook_url", 6),
    (BASE + "sinks:\n  p: {type: pager}\n", "sinks.p", "does not match any of the expected tags", 6),
    (BASE + "routes:\n  - sinks: [nowhere]\n", "", "routes[0] names unknown sink 'nowhere'", None),
    (
        BASE + "sinks:\n  w: {type: webhook, url: 'http://x'}\nroutes:\n  - match_re: {environment: '(('}\n"
        "    sinks: [w]\n",
        "routes[0].match_re",
        "invalid regex",
        8,
    ),
    (BASE + "jobs: {daily_report: {route: nope}}\n", "", "unknown route 'nope'", None),
    (BASE + "surprise: 1\n", "surprise", "unknown key", 5),
    ("environments: [1, 2]\n", "environments", "dictionary", 1),
    ("- just a list\n", "", "top level must be a mapping", 1),
    ("environments:\n  production: {base_url: [\n", "", "YAML syntax error", None),
    (
        BASE + '    labels: {team: "${UMIG_TEST_UNSET}"}\n',
        "environments.production.labels.team",
        "UMIG_TEST_UNSET is not set",
        5,
    ),
]


@pytest.mark.parametrize(("text", "path", "fragment", "line"), INVALID, ids=[c[2] for c in INVALID])
def test_invalid_configs_name_the_key(text: str, path: str, fragment: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    issues = info.value.issues
    matching = [i for i in issues if i.path == path and fragment in i.message]
    assert matching, [str(i) for i in issues]
    if line is not None:
        assert matching[0].line == line


def test_every_error_is_reported_not_just_the_first() -> None:
    text = BASE + "    poll_interval: fast\n    timeout: never\n    bogus: 1\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert {i.path.rsplit(".", 1)[-1] for i in info.value.issues} == {"poll_interval", "timeout", "bogus"}


def test_variable_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMIG_TEST_URL", "http://10.0.0.1:8090")
    monkeypatch.setenv("UMIG_TEST_EMPTY", "")
    text = """
environments:
  production:
    base_url: ${UMIG_TEST_URL}/prod
    labels: {a: "${UMIG_TEST_MISSING:-fallback}", b: "${UMIG_TEST_EMPTY:-was-empty}", c: "$${NOT_EXPANDED}"}
"""
    env = parse_config(text).environments["production"]
    assert str(env.base_url) == "http://10.0.0.1:8090/prod"
    assert env.labels == {"a": "fallback", "b": "was-empty", "c": "${NOT_EXPANDED}"}


def test_expansion_cannot_inject_structure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMIG_TEST_EVIL", "x\n    kind: development")
    settings = parse_config(BASE + "    labels: {note: '${UMIG_TEST_EVIL}'}\n")
    assert settings.environments["production"].kind == "production"


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMIG_MONITOR_DAEMON__LISTEN", "127.0.0.1:1234")
    monkeypatch.setenv("UMIG_MONITOR_ENVIRONMENTS__PRODUCTION__POLL_INTERVAL", "2m")
    monkeypatch.setenv("UMIG_MONITOR_CONFIG", "/ignored/by/settings.yaml")
    settings = parse_config(BASE + "    poll_interval: 30s\n")
    assert settings.daemon.listen_address == ("127.0.0.1", 1234)
    assert settings.environments["production"].poll_interval == timedelta(minutes=2)


def test_bad_environment_override_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMIG_MONITOR_ENVIRONMENTS__PRODUCTION__TIMEOUT", "soon")
    with pytest.raises(ConfigError) as info:
        parse_config(BASE)
    assert any(i.path == "environments.production.timeout" for i in info.value.issues)


def test_secret_files_are_read_at_use_time(tmp_path: Path) -> None:
    secret = tmp_path / "slack"
    secret.write_text("https://hooks.example/T/B/first\n")
    text = BASE + f"sinks:\n  s: {{type: slack, webhook_url_file: {secret}}}\n"
    sink = parse_config(text).sinks["s"]
    assert sink.read_url() == "https://hooks.example/T/B/first"  # type: ignore[union-attr]
    secret.write_text("https://hooks.example/T/B/rotated")
    assert sink.read_url() == "https://hooks.example/T/B/rotated"  # type: ignore[union-attr]
    secret.unlink()
    with pytest.raises(SecretFileError, match="cannot read secret file"):
        sink.read_url()  # type: ignore[union-attr]


def test_secrets_never_appear_in_redacted_config(tmp_path: Path) -> None:
    text = """
daemon: {api_token: hunter2-token}
environments:
  production:
    base_url: https://monitor:pa55@umig.example.com/
    auth: {type: basic, username: monitor, password: s3cret-pass}
sinks:
  m: {type: mail, host: h, from: a@b, to: [c@d], password: mail-pass}
  s: {type: slack, webhook_url: https://hooks.slack.com/services/T/B/XYZ}
"""
    dumped = str(parse_config(text).redacted())
    for secret in ("hunter2-token", "pa55", "s3cret-pass", "mail-pass", "XYZ"):
        assert secret not in dumped


def test_redact_url() -> None:
    assert redact_url("https://u:p@host:8443/a?token=x") == "https://***@host:8443/a?***"


def test_config_path_resolution() -> None:
    assert resolve_config_path("a.yaml", {"UMIG_MONITOR_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert resolve_config_path(None, {"UMIG_MONITOR_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert resolve_config_path(None, {}) == Path("/etc/umig-monitor/umig-monitor.yaml")


def test_check_config_cli_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(CONFIG_DIR / "umig-monitor.example.yaml")]) == 0
    assert "OK (3 environments" in capsys.readouterr().out


def test_check_config_cli_bad_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "    poll_interval: fast\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "environments.production.poll_interval: invalid duration 'fast'" in err
    assert "Traceback" not in err


def test_check_config_cli_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err


AM_SINKS = """
sinks:
  am: {type: webhook, url: http://127.0.0.1:9093, format: alertmanager}
  hook: {type: webhook, url: http://127.0.0.1:1/hook}
  pager: {type: webhook, url: http://127.0.0.1:9094, format: alertmanager}
"""


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ("default_route: {sinks: [am, hook]}", []),
        # a plain webhook without resolved notices is the receiver's business, not a stale alert
        ("default_route: {sinks: [hook], send_resolved: false}", []),
        (
            "default_route: {sinks: [am, hook], send_resolved: false}",
            ["default_route: send_resolved is false, so Alertmanager sink 'am' keeps cleared alerts"],
        ),
        (
            "routes: [{match: {severity: critical}, sinks: [hook], escalate: {after: 15m, sinks: [pager]}}]",
            ["routes[0].escalate: Alertmanager sink 'pager' gets the escalation but no reminder"],
        ),
        # an escalation sink that is also a route sink hears the reminders and the resolve
        ("routes: [{match: {severity: critical}, sinks: [am], escalate: {after: 15m, sinks: [am]}}]", []),
    ],
)
def test_alertmanager_warnings(routes: str, expected: list[str]) -> None:
    warnings = parse_config(BASE + AM_SINKS + routes + "\n").alertmanager_warnings()
    assert len(warnings) == len(expected)
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start)


def test_check_config_prints_alertmanager_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "am.yaml"
    path.write_text(BASE + AM_SINKS + "default_route: {sinks: [am], send_resolved: false}\n")
    assert main(["check-config", "--config", str(path)]) == 0  # a warning, not an error
    captured = capsys.readouterr()
    assert "OK (1 environments" in captured.out
    assert "warning: default_route: send_resolved is false, so Alertmanager sink 'am'" in captured.err


def test_certificate_thresholds() -> None:
    prod = parse_config(BASE).environments["production"]
    assert (prod.thresholds.certificate_warning, prod.thresholds.certificate_critical) == (
        timedelta(days=21),
        timedelta(days=7),
    )
    custom = parse_config(BASE + "    thresholds: {certificate_warning: 30d, certificate_critical: 14d}\n")
    assert custom.environments["production"].thresholds.certificate_critical == timedelta(days=14)


def test_certificate_critical_beyond_warning_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "    thresholds: {certificate_warning: 7d, certificate_critical: 21d}\n")
    assert "certificate_critical (21d) must not exceed certificate_warning (7d)" in str(info.value)


@pytest.mark.parametrize(
    ("baseline", "path", "fragment"),
    [
        ("{}", None, ""),
        ("{reference_baselines: 1, history_baselines: 1, min_baselines: 1}", None, ""),
        ("{min_baselines: 6}", "jobs.baseline", "nothing would ever be compared"),  # the previous version's 5
        ("{history_baselines: 2}", "jobs.baseline", "history_baselines (2)"),
        ("{reference_baselines: 0}", "jobs.baseline.reference_baselines", "greater than or equal to 1"),
    ],
)
def test_baseline_reference_counts_can_be_met(baseline: str, path: str | None, fragment: str) -> None:
    text = BASE + f"jobs:\n  baseline: {baseline}\n"
    if path is None:
        cfg = parse_config(text).jobs.baseline
        assert cfg.min_baselines <= min(cfg.reference_baselines, cfg.history_baselines)
        return
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert [i.path for i in info.value.issues] == [path]
    assert fragment in info.value.issues[0].message


def test_cli_times_are_shown_in_the_daemon_timezone(tmp_path: Path) -> None:
    from umig_monitor.commands.common import local_time

    path = tmp_path / "tz.yaml"
    path.write_text(
        "daemon: {timezone: Europe/Zurich}\n"
        "environments:\n  uat: {base_url: 'http://127.0.0.1:1', kind: uat}\n"
    )
    settings = load_config(path)
    assert local_time("2024-10-25T12:00:00Z", settings) == "2024-10-25 14:00:00 CEST"
    assert local_time("2024-12-25T12:00:00+00:00", settings) == "2024-12-25 13:00:00 CET"
    assert local_time(None, settings) is None
    assert local_time("not a time", settings) == "not a time"
