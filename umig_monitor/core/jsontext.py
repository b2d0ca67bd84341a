"""JSON from outside (a target's answer, an API body, a file): parsed with nesting bounded, so a
few KB of brackets is a clear ValueError, not a RecursionError or a document nothing can walk."""

from __future__ import annotations

import json
from typing import Any

# UMIG's documents are three levels deep, API bodies two; nothing we read is below this.
MAX_DEPTH = 32


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ValueError (with a reason) for malformed or too-deep input."""
    try:
        document = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ValueError(f"malformed JSON: {str(exc)[:200]}") from None
    except RecursionError:  # a few KB of brackets: hostile or broken, either way not a document
        raise ValueError("malformed JSON: nested too deep") from None
    except ValueError as exc:
        raise ValueError(f"malformed JSON: {str(exc)[:200]}") from None
    if deeper_than(document, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return document


def deeper_than(document: Any, limit: int) -> bool:
    """Whether ``document`` nests containers more than ``limit`` levels (iterative: no recursion)."""
    level: list[Any] = [document]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return False
