"""Use-cases the API (``web/``), the CLI (``commands/``) and the jobs (``jobs/``) share: recording
deployment events and verifying them with watches; the environment, detail and DORA views;
drift; the daily report; performance baselines. One implementation each, whatever calls it.

It calls ``core/`` (the rules), ``storage/``, ``probes/`` and ``pipeline/``; it never imports
``web/``, ``commands/`` or ``jobs/``."""
