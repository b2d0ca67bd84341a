"""Secret-bearing config values as types. Each serializes redacted, so ``model_dump`` (what the API
shows and what could reach a log) cannot print it, and ``repr`` leaves it out; code that needs the
real value reads the attribute (or ``get_secret_value()`` for ``SecretStr``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Final, get_args, get_origin

from pydantic import AnyHttpUrl, BaseModel, PlainSerializer, SecretStr
from pydantic.fields import FieldInfo

from umig_monitor.core.redaction import MASK, redact_any_url


class _Secret:
    """Marker in a type's metadata: the value is a secret (shown as MASK)."""

    def __repr__(self) -> str:
        return "SECRET"


class _CredentialUrl:
    """Marker in a type's metadata: a URL that may carry userinfo or a secret query."""

    def __repr__(self) -> str:
        return "CREDENTIAL_URL"


SECRET: Final = _Secret()
CREDENTIAL_URL: Final = _CredentialUrl()


def _mask(_: Any) -> str:
    return MASK


# A secret string kept as ``str`` (e.g. an HTTP header value such as ``Authorization: Bearer …``).
SecretText = Annotated[str, SECRET, PlainSerializer(_mask, return_type=str)]
# A URL whose userinfo and query are secrets: a database URL, a Pushgateway or environment URL.
CredentialUrl = Annotated[str, CREDENTIAL_URL, PlainSerializer(redact_any_url, return_type=str)]
CredentialHttpUrl = Annotated[AnyHttpUrl, CREDENTIAL_URL, PlainSerializer(redact_any_url, return_type=str)]


def secret_markers(annotation: Any) -> set[object]:
    """The secret markers anywhere in a field's type (``SecretStr`` counts as SECRET), so the
    model can be walked for secret-bearing fields: by ``repr`` here, and by the redaction test."""
    found: set[object] = set()
    if annotation is SecretStr:
        found.add(SECRET)
    if get_origin(annotation) is Annotated:
        found.update(m for m in annotation.__metadata__ if m is SECRET or m is CREDENTIAL_URL)
    for arg in get_args(annotation):
        found |= secret_markers(arg)
    return found


def field_secret_markers(info: FieldInfo) -> set[object]:
    """secret_markers of a model field (pydantic keeps a field's own Annotated metadata apart)."""
    found = secret_markers(info.annotation)
    found.update(m for m in info.metadata if m is SECRET or m is CREDENTIAL_URL)
    return found


def redacted_repr_args(
    model: BaseModel, args: Iterable[tuple[str | None, Any]]
) -> Iterator[tuple[str | None, Any]]:
    """``repr`` arguments with secret-bearing fields masked."""
    fields = type(model).model_fields
    for name, value in args:
        info = fields.get(name) if name else None
        if info is not None and value is not None and field_secret_markers(info):
            yield name, MASK
        else:
            yield name, value
