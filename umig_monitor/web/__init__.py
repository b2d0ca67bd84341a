"""The daemon's own HTTP server: probes for orchestrators, /metrics, the JSON API and the status page."""
