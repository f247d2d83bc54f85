"""Per-rule job times of one Snakemake run, from its log (.snakemake/log/<time>.snakemake.log).

Each job's time runs from the timestamp before its ``rule <name>:`` block to the timestamp
before its ``Finished jobid: <id>`` line (Snakemake's own log format). Prints, per rule, the
number of jobs, their summed and longest time, and their share of the wall time: each second
of the run is split equally among the jobs running in it, so two one-thread jobs side by side
get half a second each and the shares add up to the time any job ran (job times double-count
such jobs). Then the totals and the run's wall time (first to last timestamp).

Usage: python benchmarks/job_times.py .snakemake/log/2026-11-29T043000.123456.snakemake.log
"""

import re
import sys
from collections import defaultdict
from datetime import datetime
from itertools import pairwise

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def wall_shares(intervals: list[tuple[str, float, float]]) -> dict[str, float]:
    """Per rule, its share of the wall time: each instant split equally among running jobs."""
    events = sorted({t for _, start, end in intervals for t in (start, end)})
    shares: dict[str, float] = defaultdict(float)
    for left, right in pairwise(events):
        running = [name for name, start, end in intervals if start <= left and end >= right]
        for name in running:
            shares[name] += (right - left) / len(running)
    return shares


def job_intervals(lines: list[str]) -> tuple[list[tuple[str, float, float]], float]:
    """Each finished job as ``(rule, start, end)`` in seconds from the first timestamp."""
    stamp, rule, intervals, stamps = None, None, [], []
    rules = {}
    for line in lines:
        line = line.rstrip("\n")
        if match := STAMP.match(line):
            stamp = datetime.strptime(" ".join(match.group(1).split()), "%a %b %d %H:%M:%S %Y")
            stamps.append(stamp)
        elif (match := re.match(r"^(?:local)?rule (\w+):$", line)) and stamp is not None:
            rule = (match.group(1), stamp)
        elif (match := re.match(r"^\s+jobid: (\d+)$", line)) and rule is not None:
            rules[match.group(1)], rule = rule, None
        elif match := re.match(r"^Finished jobid: (\d+)", line):
            if match.group(1) in rules and stamp is not None:
                name, start = rules.pop(match.group(1))
                origin = stamps[0]
                times = ((start - origin).total_seconds(), (stamp - origin).total_seconds())
                intervals.append((name, *times))
    wall = (stamps[-1] - stamps[0]).total_seconds() if stamps else 0.0
    return intervals, wall


def job_times(lines: list[str]) -> tuple[dict[str, list[float]], float]:
    """Per rule, the times of its jobs; and the run's wall time."""
    intervals, wall = job_intervals(lines)
    per_rule = defaultdict(list)
    for name, start, end in intervals:
        per_rule[name].append(end - start)
    return per_rule, wall


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as handle:
        lines = handle.readlines()
    per_rule, wall = job_times(lines)
    shares = wall_shares(job_intervals(lines)[0])
    total = 0.0
    print(f"{'rule':<22}{'jobs':>6}{'job time (s)':>14}{'longest (s)':>13}{'wall share (s)':>16}")
    for name, seconds in sorted(per_rule.items(), key=lambda item: -shares[item[0]]):
        total += sum(seconds)
        print(f"{name:<22}{len(seconds):>6}{sum(seconds):>14.0f}{max(seconds):>13.0f}"
              f"{shares[name]:>16.0f}")  # fmt: skip
    print(f"{'all jobs':<22}{sum(map(len, per_rule.values())):>6}{total:>14.0f}{'':>13}"
          f"{sum(shares.values()):>16.0f}")  # fmt: skip
    print(f"wall time {wall:.0f} s ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
