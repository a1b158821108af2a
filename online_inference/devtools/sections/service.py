"""The sections drawn from the service's own code: the settings table and the layout of its modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from online_inference.app.settings import Settings
from online_inference.devtools.paths import PACKAGE


def render_config() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, (_, field) in Settings.fields().items():
        default = field.default
        shown = "the bundled model" if name == "MODEL_URI" else ("unset" if default is None else f"`{default}`")
        rows.append(f"| `{name}` | {shown} | {field.description} |")
    return "\n".join(rows)


def first_sentence(path: Path) -> str:
    """The first sentence of a module's docstring, as Markdown."""
    text = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
    text = re.sub(r":(?:mod|class|func|meth|data):`~?\.*([^`]+)`", r"`\1`", text).replace("``", "`")
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return (match.group(1) if match else text).replace("|", "\\|")


def render_layout() -> str:
    """Each folder of the service (its layer) and each module, with what its docstring says it owns."""
    app = PACKAGE / "app"
    rows = ["| Module | What it owns |", "|---|---|"]
    folders = sorted({p.parent for p in app.rglob("*.py")}, key=lambda d: (d != app, d.relative_to(app).parts))
    for folder in folders:
        name = folder.relative_to(PACKAGE).as_posix()
        rows.append(f"| **`{name}/`** | **{first_sentence(folder / '__init__.py')}** |")
        rows += [f"| `{module.name}` | {first_sentence(module)} |" for module in sorted(folder.glob("*.py")) if module.name != "__init__.py"]
    return "\n".join(rows)
