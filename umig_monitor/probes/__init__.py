"""The HTTP client side: one shared session, timeouts and body limits. Probes return results, never raise."""
