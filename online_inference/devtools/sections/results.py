"""The sections rendered from a measuring script's recorded results (JSON), each by the script's
own renderer: the figures come from the measurement, never from an edited summary."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path


def recorded(path: Path, renderer: str, how: str) -> Callable[[], str]:
    """The section of the results in ``path``, rendered by ``renderer`` (``module:function``, imported
    only when rendered: some scripts import what the docs need not), or how to measure them."""
    def rendered() -> str:
        if not path.exists():
            return f"_Not measured yet: run `{how}`._"
        module, function = renderer.split(":")
        return getattr(importlib.import_module(module), function)(json.loads(path.read_text())).strip()  # type: ignore[no-any-return]

    return rendered
