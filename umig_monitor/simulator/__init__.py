"""A UMIG simulator: the admin endpoints of several environments, with controllable state and faults.

It stands in for real UMIG environments in the demo (``umig-monitor simulate``) and in tests, so the
monitor's probes, alerts and drift rules can be exercised against every failure the guide worries about.
"""

from umig_monitor.simulator.app import DEFAULT_PREFIX, build_app
from umig_monitor.simulator.faults import Endpoint, Fault, FaultError, FaultKind, parse_fault
from umig_monitor.simulator.registry import DEFAULT_ENVIRONMENTS, Simulator, UnknownEnvironmentError
from umig_monitor.simulator.server import RunningSimulator, serve, start_simulator
from umig_monitor.simulator.state import EnvironmentState, PatchError, format_uptime, preset

__all__ = [
    "DEFAULT_ENVIRONMENTS",
    "DEFAULT_PREFIX",
    "Endpoint",
    "EnvironmentState",
    "Fault",
    "FaultError",
    "FaultKind",
    "PatchError",
    "RunningSimulator",
    "Simulator",
    "UnknownEnvironmentError",
    "build_app",
    "format_uptime",
    "parse_fault",
    "preset",
    "serve",
    "start_simulator",
]
