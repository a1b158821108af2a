"""``python -m online_inference.export.time_export [--rows N]`` (``make export-time``): how long
``make model`` takes on a large table. It writes ``N`` generated rows (100,000 by default) of the
heart spec's shape (:func:`data.generated_rows`: its 13 features, codes and bounds, a learnable
target) to a temporary CSV, runs ``make model`` on it as a user would, passes its output through,
and records the measured time and the export's own lines in ``docs/EXPORT.md`` (between
``<!-- BEGIN measured:export-time -->`` and its END), so no figure there is typed by hand."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from online_inference.export.data import generated_rows, table_text
from online_inference.export.spec import HEART_SPEC, load_spec

ROOT = Path(__file__).resolve().parents[2]
EXPORT_DOC = ROOT / "docs" / "EXPORT.md"
SECTION = re.compile(r"(<!-- BEGIN measured:export-time -->\n).*?(<!-- END measured:export-time -->)", re.S)


def run_make_model(table: Path, output: Path) -> tuple[float, list[str]]:
    """``make model`` on the table: its wall time and its lines (stdout and stderr, as they came)."""
    command = ["make", "--no-print-directory", "model", f"SPEC={HEART_SPEC.relative_to(ROOT)}", f"DATA={table}", f"OUTPUT={output}"]
    print("$", " ".join(command), file=sys.stderr)
    started = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its stdout and stderr interleaved as they were written
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout or ():
        sys.stderr.write(line)
        lines.append(line.rstrip("\n"))
    if process.wait():
        raise SystemExit(f"make model failed (exit {process.returncode})")
    return time.monotonic() - started, lines


def report(rows: int, table_bytes: int, seconds: float, lines: list[str]) -> str:
    load = os.getloadavg()[0]
    return "\n".join([
        f"`make export-time ROWS={rows}`: {rows:,} generated rows of the heart spec's shape ({table_bytes / 1e6:.1f} MB of CSV), "
        f"`make model` took **{seconds:.0f} s** ({seconds / 60:.1f} min) on {os.cpu_count()} cores "
        f"(load average {load:.2f} at the end). Its output (progress on stderr, summary on stdout):",
        "",
        "```text",
        *(line for line in lines if not line.startswith("make") and "warning" not in line.lower()),
        "```",
        "",
    ])


def record(text: str) -> None:
    document = EXPORT_DOC.read_text()
    if not SECTION.search(document):
        raise SystemExit(f"{EXPORT_DOC} has no measured:export-time section")
    EXPORT_DOC.write_text(SECTION.sub(lambda m: m[1] + text + m[2], document))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m online_inference.export.time_export", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the generated table (default %(default)s)")
    parser.add_argument("--no-record", action="store_true", help=f"print the report, leave {EXPORT_DOC.name} as it is")
    args = parser.parse_args(argv)
    spec = load_spec(HEART_SPEC)
    with tempfile.TemporaryDirectory() as folder:
        table, output = Path(folder) / "generated.csv", Path(folder) / "generated.onnx"
        table.write_text(table_text(spec, generated_rows(spec, args.rows)))
        seconds, lines = run_make_model(table, output)
        text = report(args.rows, table.stat().st_size, seconds, lines)
    print(text)
    if not args.no_record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
