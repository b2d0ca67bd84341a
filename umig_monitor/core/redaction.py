"""Redacting values that may carry credentials before they are shown or logged."""

from __future__ import annotations

import re
from typing import Any, Final

MASK: Final = "<secret>"

_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?:(?P<userinfo>[^@/?#]*)@)?(?P<rest>[^?#]*)(?P<tail>.*)$"
)


def redact_any_url(url: Any) -> str:
    """The URL without credentials, query or fragment: ``postgresql://u:pw@db/x?sslpassword=..``
    becomes ``postgresql://***@db/x?***``. Text that is not a URL is masked whole."""
    text = str(url)
    match = _URL.match(text)
    if match is None:
        return MASK
    userinfo = "***@" if match.group("userinfo") is not None else ""
    tail = "?***" if match.group("tail") else ""
    return f"{match.group('scheme')}{userinfo}{match.group('rest')}{tail}"
