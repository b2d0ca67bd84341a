"""umig-monitor: the monitoring daemon for UMIG environments."""

__version__ = "0.1.0"
