"""The log differential: each conformance scenario on the real uWSGI and in the
simulator, logs compared line by line after masking pids, dates, addresses, ports and
times (``simuwsgi.conform.compare_logs``). Prints the masked-equal fraction per scenario:
lines equal in order within each writer (request lines, spooler lines, the rest: their
interleaving is the OS scheduler's chance on the real server), and in one sequence.

    python benchmarks/log_diff.py [SCENARIO ...] [--diff]

Real runs take real seconds (each scenario runs on the real server first).
"""

from __future__ import annotations

import sys
from pathlib import Path

from simuwsgi.conform import compare_logs, conform

HERE = Path(__file__).resolve().parent.parent / "scenarios" / "conformance"


def main(argv: list[str]) -> int:
    show_diff = "--diff" in argv
    names = [a for a in argv if not a.startswith("--")]
    paths = [Path(n) for n in names] or sorted(HERE.glob("c*.py"))
    total_equal = total_strict = total_lines = 0
    for path in paths:
        result = conform(path)
        diff = compare_logs(result.runs["sim"].log, result.runs["real"].log,
                            result.settings["identity"])
        total_equal += diff.equal
        total_strict += diff.strict
        total_lines += diff.lines
        print(f"{path.stem:<32} {diff.equal:>4}/{diff.lines:<4} {100 * diff.fraction:6.1f}% "
              f"masked-equal lines (one sequence: {diff.strict})", flush=True)
        if show_diff:
            print(diff.format())
    if total_lines:
        print(f"{'all':<32} {total_equal:>4}/{total_lines:<4} "
              f"{100 * total_equal / total_lines:6.1f}% "
              f"(one sequence: {100 * total_strict / total_lines:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
