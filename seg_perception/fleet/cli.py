"""``seg-perception fleet``: replay and compare many bags on Ray, one report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

FLEET_HELP = """exit codes (as regress):
  0  every bag replayed and, with --golden, no regression
  1  a regression in some bag (the report names them)
  2  bad input (a pattern matching nothing, not a bag, golden run missing bags, unreachable
     cluster, bad options), or some bag failed (corrupt, truncated, missing topics): the
     report names it; the other bags complete
Outputs: <out>/<bag name> (what `replay` writes), <out>/<bag name>.result.json per finished
bag (a rerun skips those), <out>/fleet_report.json and fleet_report.png.
Cluster: --address HOST:PORT or ray://HOST:PORT, else $RAY_ADDRESS, else a local Ray with
--workers CPUs. Workers need seg_perception and its requirements installed, and the bags,
the golden run and --out on a filesystem they all see at the same paths."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    from seg_perception.bag.cli import add_replay_options, add_tolerance_options

    fleet = commands.add_parser(
        "fleet",
        help="replay (and compare with a golden run) many bags as Ray tasks; one report",
        description="Run `replay` on every bag (and `regress` against --golden) on a local "
        "Ray or a Ray cluster, one engine per worker; report per bag and overall.",
        epilog=FLEET_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fleet.add_argument("bags", nargs="+", help="bag folders / .mcap / .db3 files, or globs")
    fleet.add_argument("--out", required=True, help="folder for the outputs and the report")
    fleet.add_argument("--golden", default="", help="a golden fleet run's --out folder")
    fleet.add_argument("--workers", type=int, default=2, help="Ray workers (default 2)")
    fleet.add_argument(
        "--address", default=os.environ.get("RAY_ADDRESS", ""),
        help="Ray cluster address (default $RAY_ADDRESS; none: a local Ray)",
    )  # fmt: skip
    add_replay_options(fleet)
    add_tolerance_options(fleet)
    fleet.set_defaults(func=_fleet)


def _fleet(args: argparse.Namespace) -> int:
    from seg_perception.bag.cli import (
        engine_config_for,
        replay_config_from_args,
        tolerances_from_args,
    )
    from seg_perception.bag.io import BagError
    from seg_perception.fleet.bags import FleetInputError, check_address, check_golden, find_bags
    from seg_perception.fleet.report import FleetReport
    from seg_perception.fleet.runner import FleetJob, run_fleet
    from seg_perception.lidar.options import segmenter_from_args

    if args.workers < 1:
        raise FleetInputError(f"--workers must be >= 1, got {args.workers}")
    if args.pictures:
        raise FleetInputError("--pictures is for one bag: use `seg-perception replay`")
    bags = find_bags(args.bags)
    if args.golden:
        check_golden(Path(args.golden), bags)
    check_address(args.address)
    config = replay_config_from_args(args)
    try:
        engine, no_engine = engine_config_for(args), ""
    except BagError as error:  # fine while every bag has label images
        engine, no_engine = None, str(error).removeprefix("images must be segmented but ")
    job = FleetJob(
        config=config, engine=engine, no_engine=no_engine,
        segmenter=segmenter_from_args(args) if config.segment_cloud else None,
        tolerances=tolerances_from_args(args), golden=args.golden,
    )  # fmt: skip
    out = Path(args.out)
    results, wall = run_fleet(job, bags, out, args.workers, args.address)
    report = FleetReport(results, wall, args.workers, args.golden)
    paths = report.write(out)
    print(report.format())
    print("report: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return report.exit_code
