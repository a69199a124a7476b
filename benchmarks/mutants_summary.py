"""Summarises a mutmut run (mutants/, after `make mutants`) per module: killed, survived, timeout, not covered.

    python -m benchmarks.mutants_summary --mutants mutants --out benchmarks/mutants.json \
        --equivalent benchmarks/mutants_equivalent.json --seconds 1234

Reads mutmut's own record of each mutant's test exit code (`mutants/**/*.py.meta`)
and names it as mutmut does (`mutmut.stats.status_by_exit_code`): killed (the
tests failed), survived (they passed), timeout, "no tests" (no selected test
calls the mutated function), "not checked" (not run). Survivors listed in the
`--equivalent` file (name -> why the mutant cannot change any result) are
counted as "equivalent", and the score is killed / (killed + survived +
timeout) over the mutants that ran.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from mutmut.stats import status_by_exit_code

from siamese_xai import files


def exit_codes(mutants_dirs) -> dict:
    """{mutant name: exit code} from the `.meta` files under each folder; a later folder's result replaces an
    earlier one for the mutants it ran (a rerun of some mutants after tests were added)."""
    codes = {}
    for folder in mutants_dirs:
        for meta in sorted(Path(folder).rglob("*.py.meta")):
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
                if code is not None or name not in codes:
                    codes[name] = code
    return codes


def summarise(mutants_dirs, equivalent: dict) -> dict:
    """Counts per module (and per function) from the `.meta` files under `mutants_dirs` (see `exit_codes`)."""
    modules = {}
    survivors = {}
    for name, code in sorted(exit_codes(mutants_dirs).items()):
        module, _, mutant = name.rpartition(".")
        function = mutant.rsplit("__mutmut_", 1)[0]
        status = status_by_exit_code[code]
        if status == "survived" and name in equivalent:
            status = "equivalent"
        entry = modules.setdefault(module, {"counts": collections.Counter(), "functions": {}})
        entry["counts"][status] += 1
        entry["functions"].setdefault(function, collections.Counter())[status] += 1
        if status == "survived":
            survivors[name] = module
    out = {}
    for module, entry in modules.items():
        counts = dict(entry["counts"])
        killed = counts.get("killed", 0)
        run = killed + counts.get("survived", 0) + counts.get("timeout", 0)
        out[module] = {
            "counts": counts,
            "killed_fraction_of_non_equivalent": round(killed / run, 4) if run else None,
            "functions": {f: dict(c) for f, c in sorted(entry["functions"].items())},
        }
    return {"modules": out, "survivors": sorted(survivors)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", nargs="+", default=["mutants"],
                        help="mutmut's folder; several: a later one's results replace an earlier one's")
    parser.add_argument("--out", default="benchmarks/mutants.json")
    parser.add_argument("--equivalent", default="benchmarks/mutants_equivalent.json",
                        help="JSON {mutant name: why it is equivalent}; may be absent")
    parser.add_argument("--seconds", type=float, nargs="+", default=None, help="each mutmut run's wall time, recorded")
    args = parser.parse_args(argv)
    path = Path(args.equivalent)
    equivalent = json.loads(path.read_text()) if path.is_file() else {}
    summary = summarise(args.mutants, equivalent)
    summary.update(runs=args.mutants, seconds=args.seconds, equivalent=equivalent, target_killed_fraction=0.9)
    files.write_json(args.out, summary)
    for module, entry in summary["modules"].items():
        print(module, entry["counts"], entry["killed_fraction_of_non_equivalent"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
