"""Configuration: pydantic models over one YAML file, ``${VAR}`` expansion, ``*_file`` secrets."""

from umig_monitor.config.loader import (
    ConfigError,
    ConfigIssue,
    load_config,
    parse_config,
    resolve_config_path,
    secret_file_warnings,
)
from umig_monitor.config.models import Environment, Route
from umig_monitor.config.settings import Settings

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "Environment",
    "Route",
    "Settings",
    "load_config",
    "parse_config",
    "resolve_config_path",
    "secret_file_warnings",
]
