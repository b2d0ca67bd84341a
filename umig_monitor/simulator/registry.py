"""The simulator's memory: the state, faults and request counts of every simulated environment.

One ``Simulator`` instance is owned by one running app (no module-level state), and tests drive it
directly or through the control API. It knows nothing of HTTP; the clock is injected so uptime can
be moved forward in tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from umig_monitor.simulator.faults import Endpoint, Fault, FaultPlan, fault_to_json, take
from umig_monitor.simulator.state import (
    HEALTHY,
    EnvironmentState,
    apply_patch,
    derived_to_json,
    preset,
    state_to_json,
    validate_environment_name,
)

DEFAULT_ENVIRONMENTS: tuple[str, ...] = ("development", "uat", "production")


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnknownEnvironmentError(KeyError):
    """Raised for an environment the simulator does not serve."""

    def __init__(self, environment: str) -> None:
        super().__init__(environment)
        self.environment = environment

    def __str__(self) -> str:
        return f"unknown environment {self.environment!r}"


class Simulator:
    """Holds every environment's state, its pending faults and how often each endpoint was asked."""

    def __init__(
        self,
        environments: Iterable[str] = DEFAULT_ENVIRONMENTS,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._clock = clock
        self._initial = tuple(validate_environment_name(name) for name in dict.fromkeys(environments))
        self._states: dict[str, EnvironmentState] = {}
        self._faults: dict[str, tuple[Fault, ...]] = {}
        self._requests: dict[str, Counter[Endpoint]] = {}
        self.reset()

    # --- environments --------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    @property
    def environments(self) -> tuple[str, ...]:
        return tuple(self._states)

    def __contains__(self, environment: object) -> bool:
        return environment in self._states

    def state(self, environment: str) -> EnvironmentState:
        try:
            return self._states[environment]
        except KeyError:
            raise UnknownEnvironmentError(environment) from None

    def set_state(self, environment: str, state: EnvironmentState) -> None:
        """Replace (or create) an environment's state; its faults and counts are kept."""
        validate_environment_name(environment)
        self._states[environment] = state
        self._faults.setdefault(environment, ())
        self._requests.setdefault(environment, Counter())

    def add_environment(self, environment: str) -> EnvironmentState:
        """Serve ``environment`` from its preset if it is not served yet; return its state."""
        if environment not in self._states:
            self.set_state(environment, preset(environment, self.now()))
        return self._states[environment]

    def update(self, environment: str, **changes: Any) -> EnvironmentState:
        """Change typed fields, e.g. ``update("uat", version="1.2.0", database_status="unhealthy")``.

        Creates the environment from its preset first if needed.
        """
        state = replace(self.add_environment(environment), **changes)
        self._states[environment] = state
        return state

    def patch(self, environment: str, patch: Mapping[str, object]) -> EnvironmentState:
        """Merge an untrusted JSON patch (see ``state.apply_patch``); raises PatchError when invalid."""
        validate_environment_name(environment)
        base = self._states[environment] if environment in self._states else preset(environment, self.now())
        state = apply_patch(base, patch, self.now())
        self.set_state(environment, state)
        return state

    def remove(self, environment: str) -> None:
        self.state(environment)
        del self._states[environment], self._faults[environment], self._requests[environment]

    def reset(self) -> None:
        """Back to the environments and presets the simulator started with; faults and counts cleared."""
        self._states.clear()
        self._faults.clear()
        self._requests.clear()
        for name in self._initial:
            self.add_environment(name)

    # --- faults ------------------------------------------------------------------------------------

    def add_fault(self, environment: str, fault: Fault) -> None:
        self.state(environment)
        self._faults[environment] = (*self._faults[environment], fault)

    def clear_faults(self, environment: str) -> int:
        """Drop all of the environment's faults; returns how many there were."""
        self.state(environment)
        cleared = len(self._faults[environment])
        self._faults[environment] = ()
        return cleared

    def faults(self, environment: str) -> tuple[Fault, ...]:
        self.state(environment)
        return self._faults[environment]

    def take_faults(self, environment: str, endpoint: Endpoint) -> FaultPlan:
        """The faults for one request to ``endpoint``, counted down."""
        plan, self._faults[environment] = take(self.faults(environment), endpoint)
        return plan

    # --- requests ----------------------------------------------------------------------------------

    def record_request(self, environment: str, endpoint: Endpoint) -> int:
        """Count a request that reached ``endpoint`` (whatever fault it then got); returns the new count."""
        self.state(environment)
        self._requests[environment][endpoint] += 1
        return self._requests[environment][endpoint]

    def request_counts(self, environment: str) -> dict[str, int]:
        """Requests received per endpoint, every endpoint listed, zero included."""
        self.state(environment)
        counts = self._requests[environment]
        return {endpoint.value: counts[endpoint] for endpoint in Endpoint}

    def request_totals(self) -> dict[str, int]:
        """Requests received per endpoint, summed over every environment (zero included)."""
        totals = dict.fromkeys((endpoint.value for endpoint in Endpoint), 0)
        for counts in self._requests.values():
            for endpoint, count in counts.items():
                totals[endpoint.value] += count
        return totals

    def regenerate_test_data(self, environment: str) -> EnvironmentState:
        """What UMIG's regeneration fixes: fresh test data and a healthy database."""
        return self.update(environment, database_status=HEALTHY, test_data_status="ready")

    # --- views ---------------------------------------------------------------------------------------

    def snapshot(self, environment: str) -> dict[str, Any]:
        return {
            "name": environment,
            "state": state_to_json(self.state(environment)),
            "derived": derived_to_json(self.state(environment), self.now()),
            "faults": [fault_to_json(f) for f in self.faults(environment)],
            "requests": self.request_counts(environment),
        }
