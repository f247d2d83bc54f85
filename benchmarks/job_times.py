"""Per-rule job times of one Snakemake run, from its log (.snakemake/log/<time>.snakemake.log).

Each job's time runs from the timestamp before its ``rule <name>:`` block to the timestamp
before its ``Finished jobid: <id>`` line (Snakemake's own log format). Prints, per rule, the
number of jobs and their summed and longest time, the total job time and the run's wall time
(first to last timestamp).

Usage: python benchmarks/job_times.py .snakemake/log/2026-11-29T043000.123456.snakemake.log
"""

import re
import sys
from collections import defaultdict
from datetime import datetime

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def job_times(lines: list[str]) -> tuple[dict[str, list[float]], float]:
    stamp, rule, per_rule, stamps = None, None, defaultdict(list), []
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
                per_rule[name].append((stamp - start).total_seconds())
    wall = (stamps[-1] - stamps[0]).total_seconds() if stamps else 0.0
    return per_rule, wall


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as handle:
        per_rule, wall = job_times(handle.readlines())
    total = 0.0
    print(f"{'rule':<22}{'jobs':>6}{'job time (s)':>14}{'longest (s)':>13}")
    for name, seconds in sorted(per_rule.items(), key=lambda item: -sum(item[1])):
        total += sum(seconds)
        print(f"{name:<22}{len(seconds):>6}{sum(seconds):>14.0f}{max(seconds):>13.0f}")
    print(f"{'all jobs':<22}{sum(map(len, per_rule.values())):>6}{total:>14.0f}")
    print(f"wall time {wall:.0f} s ({wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
