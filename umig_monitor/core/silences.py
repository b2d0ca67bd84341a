"""Silences and maintenance windows: while one matches an alert, checks still run and record, but
its notifications are suppressed. Matchers use Alertmanager's syntax: ``name=value``,
``name!=value``, ``name=~regex``, ``name!~regex`` (regexes fully anchored)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

# name, operator, then a value either fully quoted ("...", \" inside) or bare (no quotes at all)
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"]*?))\s*$')
MAX_MATCHER = 256  # characters of one matcher
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    if len(text) > MAX_MATCHER:
        raise ValueError(f"matcher longer than {MAX_MATCHER} characters")
    m = _MATCHER.match(text)
    if not m:
        raise ValueError(
            f"invalid matcher '{text}' (use name=value, name!=value, name=~regex or name!~regex; "
            'quote a value in full, e.g. environment="uat", or not at all)'
        )
    name, op, quoted, bare = m.groups()
    value = quoted.replace('\\"', '"') if quoted is not None else bare
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex in matcher '{text}': {exc}") from None
    return Matcher(name, op, value)


def matches_nothing_specific(matchers: Sequence[Matcher]) -> bool:
    """Alertmanager's rule for silences: when every matcher also matches a missing label, the
    silence would match every alert (``environment=`` or ``type=~".*"``): refused."""
    return all(m.matches({}) for m in matchers)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True, slots=True)
class Silence:
    """A one-off silence (from config or the API)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class WeeklyWindow:
    """A recurring maintenance window, e.g. Saturdays 22:00 for 4h, in a timezone."""

    id: str
    matchers: tuple[Matcher, ...]
    days: tuple[int, ...]  # 0 = Monday
    start: time
    duration: timedelta
    timezone: str = "UTC"
    comment: str = ""

    def active(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        # A window that started on an earlier day may still be running (e.g. 22:00 + 4h).
        lookback = self.duration.days + 1
        for back in range(lookback + 1):
            day = (local - timedelta(days=back)).date()
            if day.weekday() not in self.days:
                continue
            start = datetime.combine(day, self.start, tzinfo=local.tzinfo)
            if start <= local < start + self.duration:
                return True
        return False


def silenced_by(
    labels: Mapping[str, str], now: datetime, silences: Sequence[Silence], windows: Sequence[WeeklyWindow]
) -> str | None:
    """The id of the first silence or window that covers these labels now, if any."""
    for silence in silences:
        if silence.active(now) and matches_all(silence.matchers, labels):
            return silence.id
    for window in windows:
        if window.active(now) and matches_all(window.matchers, labels):
            return window.id
    return None
