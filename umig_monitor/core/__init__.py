"""Pure rules of umig-monitor: no I/O, no event loop, no clock (``now`` is passed in)."""
