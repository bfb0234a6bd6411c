"""`picogrid simulate`: run a scenario's market alone, offline, for quick scenario design.

Without --json: a readable table per interval and a summary. With --json: one JSON object with
sorted keys and no spaces, the same bytes for the same input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ledger.charter import MECHANISMS
from market.scenario import ScenarioError, default_scenario, load_scenario
from market.simulate import format_report, simulate
from market.strategies import StrategyError
from node.errors import UserError


def register(subparsers: Any) -> None:
    """Add `picogrid simulate` to the command line."""
    p = subparsers.add_parser(
        "simulate",
        help="run a scenario's market offline and print what every agent did",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenario", metavar="FILE", help="scenario TOML file (default: the built-in PicoGrid kit)"
    )
    p.add_argument(
        "--intervals", metavar="N", type=int, help="intervals to run (default: the scenario's)"
    )
    p.add_argument(
        "--mechanism", metavar="M", help=f"override the scenario's: {', '.join(MECHANISMS)}"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run a scenario's market offline and print what every agent did."""
    if args.mechanism is not None and args.mechanism not in MECHANISMS:
        raise UserError(
            f"unknown mechanism {args.mechanism!r}: choose one of {', '.join(MECHANISMS)}"
        )
    if args.intervals is not None and args.intervals < 0:
        raise UserError("--intervals must be 0 or more")
    try:
        scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    except OSError as exc:
        raise UserError(f"cannot read scenario {args.scenario}: {exc.strerror or exc}") from None
    except ScenarioError as exc:
        raise UserError(f"scenario {args.scenario}: {exc}") from None
    try:
        result = simulate(scenario, args.intervals, args.mechanism)
    except StrategyError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(result, sort_keys=True, separators=(",", ":")))
    else:
        print(format_report(result), end="")
    return 0
