"""Mutation score of the core modules, per module, from mutmut's results.

mutmut (``pip install mutmut``) changes one small thing at a time in the modules listed
under ``[tool.mutmut]`` in pyproject.toml (a ``<`` for a ``<=``, a constant, a dropped
call) and runs the fast tests against each change. A mutant is *killed* when some test
fails; a surviving mutant is a change no test notices. The score of a module is the share
of its mutants killed, counting timeouts as killed (the change made a test hang) and
leaving out mutants that were not run. The timeouts are also shown on their own: a hang in
a forked test process that has nothing to do with the mutant (as torch's thread pool once
caused) would count as a kill, so a module with many deserves a look.

Usage::

    .venv/bin/python scripts/mutation_score.py          # run mutmut, then print the table
    .venv/bin/python scripts/mutation_score.py --report # only print the table of the last run
    .venv/bin/python scripts/mutation_score.py --survivors convviz.gradients
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.90
_LINE = re.compile(r"^\s*(?P<name>[\w.ǁ]+?)__mutmut_\d+: (?P<status>.+?)\s*$")
_KILLED = {"killed", "timeout"}
_NOT_RUN = {"not checked", "skipped"}


def _mutmut() -> Path:
    return Path(sys.executable).with_name("mutmut")


def results() -> dict[str, Counter[str]]:
    """Status counts per module, from ``mutmut results --all true``."""
    done = subprocess.run(
        [str(_mutmut()), "results", "--all", "true"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    per_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        module = match["name"].split(".x")[0]
        per_module[module][match["status"]] += 1
    return per_module


def survivors(module: str) -> list[str]:
    """Names of the surviving mutants of one module (``mutmut show NAME`` shows the diff)."""
    done = subprocess.run([str(_mutmut()), "results"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    return [
        line.split(":")[0].strip()
        for line in done.stdout.splitlines()
        if line.strip().startswith(module + ".") and line.rstrip().endswith("survived")
    ]


def main() -> int:
    """Run mutmut (unless ``--report``) and print the score table; exit 0 if all pass."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="do not run mutmut first")
    parser.add_argument("--survivors", metavar="MODULE", help="list a module's survivors")
    args = parser.parse_args()
    if args.survivors:
        print("\n".join(survivors(args.survivors)))
        return 0
    if not args.report:
        subprocess.run([str(_mutmut()), "run", "--max-children", "2"], cwd=ROOT, check=False)
    table = results()
    if not table:
        print("no mutmut results: run without --report first", file=sys.stderr)
        return 1
    print(f"{'module':<32} {'mutants':>7} {'run':>5} {'killed':>6} {'timeout':>7} "
          f"{'survived':>8} {'no tests':>8} {'score':>6}  target {TARGET:.0%}")
    ok = True
    for module in sorted(table):
        counts = table[module]
        total = sum(counts.values())
        run = total - sum(counts[s] for s in _NOT_RUN)
        killed = sum(counts[s] for s in _KILLED)
        score = killed / run if run else float("nan")
        verdict = "PASS" if run and score >= TARGET else "FAIL"
        ok = ok and verdict == "PASS"
        print(f"{module:<32} {total:>7} {run:>5} {killed:>6} {counts['timeout']:>7} "
              f"{counts['survived']:>8} {counts['no tests']:>8} {score:>6.1%}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
