"""`retrograd course [--quick] [--only ID,...] [--out DIR] [--no-progress]`.

Exit status: 0 when every selected claim holds, 1 when at least one does not (or crashed), so a
CI step fails on a broken claim; 2 for bad input (cli.main turns the ValueError into one line).
"""

from __future__ import annotations

import os
import sys

EXIT_ALL_HOLD = 0
EXIT_SOME_FAIL = 1


def register(subparsers) -> None:
    """Add the `course` subcommand to the retrograd command line."""
    p = subparsers.add_parser(
        "course", help="run the course's claims as experiments and write a report",
        description="Run one experiment per claim of the course and write claims.json, one PNG "
                    "per experiment and a self-contained report.html. Exit 0 if every claim "
                    "holds, 1 if some do not, 2 on bad input.")
    p.add_argument("--quick", action="store_true",
                   help="small sizes (the whole course in well under 3 minutes)")
    p.add_argument("--only", default=None, metavar="ID,...",
                   help="comma-separated claim ids or numbers (default: all)")
    p.add_argument("--out", default="course-report", metavar="DIR",
                   help="output folder (default: course-report)")
    p.add_argument("--no-progress", action="store_true", help="no per-claim progress lines")
    p.set_defaults(handler=cmd_course)


def cmd_course(args) -> int:
    from .runner import run_course

    only = None if args.only is None else args.only.split(",")
    log = None if args.no_progress else (lambda message: print(message, file=sys.stderr))
    entries = run_course(args.out, quick=args.quick, only=only, log=log)
    n_hold = sum(1 for e in entries if e["holds"])
    for e in entries:
        if not e["holds"]:
            # the summary's $...$ marks inline math for the report; a terminal shows it as is
            summary = e["summary"].replace("$", "")
            print(f"claim {e['number']} ({e['id']}) does not hold: {summary}")
    print(f"{n_hold}/{len(entries)} claims hold; report: "
          f"{os.path.join(args.out, 'report.html')}")
    return EXIT_ALL_HOLD if n_hold == len(entries) else EXIT_SOME_FAIL
