"""Read the YAML file, expand ``${VAR}``, validate, and report every error with its path and line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import SettingsError

from umig_monitor.config.models import SINK_TYPES
from umig_monitor.config.settings import ENV_PREFIX, Settings

# libyaml's safe loader where PyYAML was built with it (the wheels are): about 10x less CPU and
# memory than the pure-Python one for a config of thousands of environments; the same documents.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_CONFIG_PATH = Path("/etc/umig-monitor/umig-monitor.yaml")
CONFIG_ENV_VAR = "UMIG_MONITOR_CONFIG"
# Discriminator values pydantic puts in error locations of tagged unions.
_UNION_TAGS = frozenset(SINK_TYPES) | {"none", "basic", "bearer"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path}: {self.message}{where}" if self.path else f"{self.message}{where}"


class ConfigError(Exception):
    """The config cannot be used; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        super().__init__(f"{source}: " + "; ".join(str(i) for i in issues))


def resolve_config_path(
    cli_path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path:
    """``--config`` first, then ``$UMIG_MONITOR_CONFIG``, then the system path."""
    environ = os.environ if environ is None else environ
    if cli_path:
        return Path(cli_path)
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    return DEFAULT_CONFIG_PATH


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_map(text: str) -> dict[Loc, int]:
    """Map every key path in the document to its 1-based line, for error messages."""
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, loc: Loc) -> None:
        lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*loc, str(key.value))
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i))

    root = yaml.compose(text, Loader=SAFE_LOADER)
    if root is not None:
        walk(root, ())
    return lines


def _expand(value: Any, loc: Loc, environ: Mapping[str, str], issues: list[ConfigIssue]) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` inside string values only (never in keys), so a
    variable's content cannot change the document's structure."""
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, str(k)), environ, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), environ, issues) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in environ and (environ[name] or default is None):
            return environ[name]
        if default is not None:
            return default
        issues.append(ConfigIssue(format_loc(loc), f"environment variable {name} is not set"))
        return ""

    return _VAR.sub(sub, value)


def _locate(loc: Loc, lines: Mapping[Loc, int]) -> tuple[Loc, int | None]:
    """Drop pydantic's union tags from a loc (they are not YAML keys) and find the line."""
    kept: Loc = ()
    for part in loc:
        candidate = (*kept, part)
        if candidate not in lines and isinstance(part, str) and (part in _UNION_TAGS or "[" in part):
            continue
        kept = candidate
    line = None
    probe = kept
    while probe and line is None:
        line = lines.get(probe)
        probe = probe[:-1]
    return kept, line


# Keys whose values may hold a credential: an error names the key and the line, never the value.
_SECRET_KEYS = frozenset(
    {"password", "token", "api_token", "url", "webhook_url", "base_url", "storage", "headers"}
)
# A quoted value in a message: shown when short, otherwise only its length (a token pasted into the
# wrong key must not reach the log or the API through the error about it).
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SHOWN_VALUE_CHARS = 24


def conceal(path: str, message: str) -> str:
    """``message`` with the values it quotes hidden where they may be secrets."""
    parts = [p for p in re.split(r"[.\[\]]", path) if p]
    secret = any(part in _SECRET_KEYS for part in parts)

    def hide(match: re.Match[str]) -> str:
        inner = match.group(0)[1:-1]
        if secret:
            return "<hidden>"
        return match.group(0) if len(inner) <= _SHOWN_VALUE_CHARS else f"<{len(inner)} characters>"

    return _QUOTED.sub(hide, message)


_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "missing required key",
}


def _issues_from(exc: ValidationError, lines: Mapping[Loc, int]) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc, line = _locate(tuple(err["loc"]), lines)
        message = _FRIENDLY.get(err["type"], err["msg"])
        message = message.removeprefix("Value error, ")
        if err["type"] == "url_parsing" or err["type"].startswith("url_"):
            message = f"invalid URL: {message}"
        path = format_loc(loc)
        issues.append(ConfigIssue(path, conceal(path, message), line))
    return issues


def parse_config(text: str, source: str = "<config>", environ: Mapping[str, str] | None = None) -> Settings:
    """Validate YAML text. Raises ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    try:
        # The line of each key is only needed to report a problem: mapped then, not every time.
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            source, [ConfigIssue("", f"YAML syntax error: {problem}", mark.line + 1 if mark else None)]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "the top level must be a mapping of sections", 1)])
    issues: list[ConfigIssue] = []
    data = _expand(data, (), environ, issues)
    lines = _line_map(text) if issues else {}
    for issue in issues:
        object.__setattr__(issue, "line", _locate(tuple(issue.path.split(".")), lines)[1])
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        issues.extend(_issues_from(exc, lines or _line_map(text)))
        raise ConfigError(source, issues) from None
    except SettingsError as exc:
        issues.append(ConfigIssue("", f"environment override {ENV_PREFIX}*: {exc}"))
        raise ConfigError(source, issues) from None
    if issues:
        raise ConfigError(source, issues)
    return settings


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """The daemon's config file: readable UTF-8 text that configures at least one environment.
    An empty or truncated file is an error, never a daemon that silently monitors nothing."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            str(path), [ConfigIssue("", f"cannot read config file: {exc.strerror or exc}")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        issue = ConfigIssue("", f"the file is not UTF-8 text (invalid byte at offset {exc.start})", line)
        raise ConfigError(str(path), [issue]) from None
    if not text.strip():
        raise ConfigError(str(path), [ConfigIssue("", "the file is empty (truncated?): nothing to monitor")])
    settings = parse_config(text, str(path), environ)
    if not settings.environments:
        raise ConfigError(
            str(path),
            [ConfigIssue("environments", "no environment is configured: the daemon would monitor nothing")],
        )
    return settings


def secret_file_warnings(settings: Settings) -> list[str]:
    """Secret files that cannot be read now. They are read at use time, so this is a warning."""
    out = []
    candidates: list[tuple[str, Path | None]] = [("daemon.api_token_file", settings.daemon.api_token_file)]
    for name, env in settings.environments.items():
        for attr in ("password_file", "token_file"):
            candidates.append((f"environments.{name}.auth.{attr}", getattr(env.auth, attr, None)))
        candidates.append((f"environments.{name}.tls.ca_file", env.tls.ca_file))
    for name, sink in settings.sinks.items():
        for attr in ("password_file", "url_file", "webhook_url_file"):
            candidates.append((f"sinks.{name}.{attr}", getattr(sink, attr, None)))
    for where, file in candidates:
        if file is not None and not os.access(file, os.R_OK):
            out.append(f"{where}: {file} is not readable")
    return out
