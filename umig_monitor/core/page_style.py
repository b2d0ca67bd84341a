"""The status page's look: state colours and the one inline stylesheet (light and dark), kept apart
from the markup in ``core.page``. Colour follows a ``state-*`` class through the ``--c`` property, so
a table cell, a pill, a legend swatch and an SVG segment of the same state always match."""

from __future__ import annotations

from collections.abc import Mapping

from umig_monitor.core.timeline import NO_DATA

STATE_COLORS: Mapping[str, str] = {
    "healthy": "#2e9d5b",
    "degraded": "#d99100",
    "unhealthy": "#d0312d",
    "failed": "#8a1c1c",
    NO_DATA: "#9aa3af",
}
_SEVERITY_COLORS = {"critical": "#d0312d", "warning": "#c27c00", "info": "#3b82c4"}

_BASE = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1d2330;--muted:#5d6878;--line:#dde2e8;--panel:#eef1f5;
 --nodata:#dfe3e9}
@media (prefers-color-scheme:dark){
 :root{--bg:#12161d;--fg:#e5e8ed;--muted:#9ba6b5;--line:#2b323d;--panel:#1b212b;--nodata:#2c333e}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
 font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header,main,footer{max-width:76rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}
h1{font-size:1.5rem;margin:.25rem 0 .5rem}
h2{font-size:1.15rem;margin:2rem 0 .5rem;padding-bottom:.25rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:0 0 .25rem;display:flex;flex-wrap:wrap;justify-content:space-between;gap:0 1rem}
h3 .muted{font-weight:400;white-space:nowrap}
.overall{display:inline-block;margin:0;padding:.4rem .8rem;border-radius:.4rem;color:#fff;
 background:var(--c);font-weight:600}
.figures{display:flex;flex-wrap:wrap;gap:.5rem 2.5rem;list-style:none;padding:0;margin:1rem 0 0}
.figures li{color:var(--muted)}
.figures strong{display:block;font-size:1.35rem;color:var(--fg)}
.muted,small,caption{color:var(--muted)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
caption{text-align:left;padding:.25rem 0;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:.45rem .6rem;border-bottom:1px solid var(--line)}
thead th{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
tbody th{white-space:nowrap}
.pill{display:inline-block;padding:.05rem .55rem;border-radius:1rem;color:#fff;background:var(--c);
 font-weight:600;font-size:.85rem;white-space:nowrap}
.error{color:#d0312d}
.timeline{margin:.9rem 0}
.bar{display:block;width:100%;height:1.6rem;border-radius:.3rem;background:var(--panel)}
.bar rect{fill:var(--c)}
.bar rect.state-no_data{fill:var(--nodata)}
.axis{display:flex;justify-content:space-between;font-size:.75rem;color:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;list-style:none;padding:0;font-size:.85rem}
.swatch{display:inline-block;width:.9rem;height:.9rem;border-radius:.2rem;margin-right:.35rem;
 vertical-align:-.1rem;background:var(--c)}
.swatch.state-no_data{background:var(--nodata);box-shadow:inset 0 0 0 1px var(--line)}
.findings{padding-left:1.2rem}
.findings li{margin:.3rem 0}
.sev{display:inline-block;min-width:4.5rem;font-size:.78rem;font-weight:700;text-transform:uppercase;
 color:var(--s)}
footer{margin:2.5rem auto 1.5rem;font-size:.85rem;color:var(--muted)}
a{color:inherit}
"""

CSS = (
    _BASE
    + "".join(f".state-{s}{{--c:{c}}}\n" for s, c in STATE_COLORS.items())
    + "".join(f".severity-{s}{{--s:{c}}}\n" for s, c in _SEVERITY_COLORS.items())
)
