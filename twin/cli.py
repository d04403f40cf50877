"""The `run-scenario` command: the simulator's options plus real mode and calibration.

Simulator-only runs (`--mode sim`, the default, `--sweep`, `--schema`) are `sim.cli`'s;
this module adds `--mode real|both|ray`, `--compare`, `--address`, `--scale-down`, `--nodes`,
`--calibrate [--engine twinray|ray]` and `--calibrate-rl`,
which start real worker processes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sim import cli as sim_cli
from sim.profile import DEFAULT_PROFILE
from twin.calibrate import ENGINES as CALIBRATION_ENGINES
from twin.calibrate import RAY_PROFILE
from twin.calibrate_rl import DEFAULT_RL_PROFILE


def build_parser() -> argparse.ArgumentParser:
    """The simulator's parser with the options that run real workers added."""
    parser = sim_cli.build_parser("run-scenario", "Run a scenario in the simulated cluster.")
    parser.add_argument(
        "--mode",
        choices=("sim", "real", "both", "ray"),
        default="sim",
        help="simulate (default), run on real worker processes, both side by side, or run "
        "on real Ray (needs the peers extra)",
    )
    parser.add_argument(
        "--compare",
        metavar="ENGINES",
        help="run on two or three engines side by side, e.g. sim,real,ray (one table and one "
        "set of plots; differences are to the last engine named)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="--mode ray: the running Ray cluster to use (default: start a local Ray)",
    )
    parser.add_argument(
        "--scale-down",
        action="store_true",
        help="real mode: map a cluster larger than this machine onto 1 node x its CPUs",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help="real mode: run on a real cluster of N node processes on this machine (a head "
        "and N-1 worker nodes), with the scenario's node faults",
    )
    parser.add_argument(
        "--netns",
        action="store_true",
        help="with --nodes: run worker nodes in Linux network namespaces with the scenario's "
        "link bandwidth (tbf) and latency (netem, where the kernel has it); falls back to "
        "loopback, saying why, where namespaces cannot be made",
    )
    parser.add_argument(
        "--calibrate",
        nargs="?",
        const="",
        metavar="PROFILE",
        help="measure this machine's real-mode overheads and write a calibration profile "
        f"(default {DEFAULT_PROFILE}; with --engine ray {RAY_PROFILE}); no scenario file "
        "needed",
    )
    parser.add_argument(
        "--engine",
        choices=CALIBRATION_ENGINES,
        help="--calibrate: the engine to fit the simulator to: twinray's real mode "
        "(twinray, the default) or real Ray on this machine (ray, needs the peers extra; "
        "also reports how well the fitted simulator predicts Ray runs)",
    )
    parser.add_argument(
        "--calibrate-rl",
        nargs="?",
        const=str(DEFAULT_RL_PROFILE),
        metavar="PROFILE",
        help="time real PPO iterations (runtime.rllib) and write an RL timing profile for rl "
        f"workloads' timing_profile (default {DEFAULT_RL_PROFILE})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `run-scenario`; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.engine is not None and args.calibrate is None:
        parser.error("--engine applies to --calibrate only")
    if args.calibrate is not None:
        from twin.calibrate import main as calibrate

        return calibrate(args.calibrate or None, args.engine or "twinray")
    if args.calibrate_rl:
        from twin.calibrate_rl import main as calibrate_rl

        return calibrate_rl(["--out", args.calibrate_rl])
    engines = None
    if args.compare is not None:
        from twin.compare import CompareError, parse_engines

        try:
            engines = parse_engines(args.compare)
        except CompareError as exc:
            parser.error(str(exc))
        if args.mode != "sim":
            parser.error("--compare replaces --mode: give one of them")
    uses_ray = args.mode == "ray" or (engines is not None and "ray" in engines)
    if args.address is not None and not uses_ray:
        parser.error("--address applies to --mode ray (or --compare with ray) only")
    if (args.nodes is not None or args.netns) and args.mode in ("sim", "ray"):
        parser.error("--nodes and --netns run real node processes: add --mode real or both")
    if engines is None and (args.mode == "sim" or args.schema or args.sweep):
        return sim_cli.run_args(parser, args)
    if args.file is None:
        parser.error("the following arguments are required: file")
    scenario = sim_cli.load(args)
    if scenario is None:
        return sim_cli.EXIT_BAD_SCENARIO
    if engines is not None and scenario.workload.kind != "serving":
        from twin.compare import run_compare

        return run_compare(scenario, engines, args.scale_down, address=args.address)
    if scenario.workload.kind == "serving":
        from twin.real_serving import run_serving_compare, run_serving_mode

        if args.address is not None:
            parser.error(
                "--address does not apply to serving scenarios: --mode ray serves them on a "
                "local Ray started for the run"
            )
        if args.scale_down:
            parser.error("--scale-down does not apply to serving scenarios: they run as given")
        if args.nodes is not None:
            parser.error("--nodes does not apply to serving scenarios: they run on one node")
        if engines is not None:
            return run_serving_compare(scenario, engines)
        return run_serving_mode(scenario, args.mode)
    if args.netns and args.nodes is None:
        parser.error("--netns needs --nodes N (it places worker nodes in namespaces)")
    if args.nodes is not None:
        if args.scale_down:
            parser.error("--scale-down and --nodes are exclusive: --nodes fits the cluster itself")
        from twin.real_cluster import run_cluster_mode

        return run_cluster_mode(scenario, args.mode, args.nodes, args.netns)
    from twin.real_mode import run_mode

    return run_mode(scenario, args.mode, args.scale_down, address=args.address)


if __name__ == "__main__":
    sys.exit(main())
