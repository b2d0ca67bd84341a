"""Typed keys for what the simulator's aiohttp app carries, shared by the UMIG and control routes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from umig_monitor.simulator.registry import Simulator

SIMULATOR_KEY = web.AppKey("simulator", Simulator)
# Set when the app shuts down; requests held open by a fault wait on it.
RELEASE_KEY = web.AppKey("release", asyncio.Event)
