"""Summarises a mutmut run (mutants/, after `make mutants`) per module: killed, survived, timeout, not covered.

    python -m tools.mutants_summary --mutants mutants --out tools/mutants.json \
        --equivalent tools/mutants_equivalent.json --seconds 1234 --targets 'siamese_xai.runs.x_run_id*' \
        --per-module 30

Reads mutmut's own record of each mutant's test exit code (`mutants/**/*.py.meta`)
and names it as mutmut does (`mutmut.stats.status_by_exit_code`): killed (the
tests failed), survived (they passed), timeout, "no tests" (no selected test
calls the mutated function), "not checked" (not run). Survivors listed in the
`--equivalent` file (name -> why the mutant cannot change any result) are
counted as "equivalent", and the score is killed / (killed + survived +
timeout) over the mutants that ran.

Each module is judged against the 90% target on every targeted mutant when all
of them ran (the census), otherwise on the seeded sample `make mutants` runs
(`tools.mutants_sample`), with its 95% Wilson interval.
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
from pathlib import Path

from mutmut.stats import status_by_exit_code
from scipy import stats

from tools import mutants_sample
from siamese_xai import files

TARGET_KILLED_FRACTION = 0.9


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


def _status(code, name, equivalent) -> str:
    status = status_by_exit_code[code]
    return "equivalent" if status == "survived" and name in equivalent else status


def judge(codes: dict, equivalent: dict, full: dict, drawn: dict) -> dict:
    """Per module of `full` ({module: every targeted mutant}): the sample's counts and killed fraction with its
    95% Wilson interval (`drawn`: {module: sampled mutants}), and the verdict on the 90% target.

    The verdict reads the census (every targeted mutant) when none of them is left unrun, else the sample; a
    module whose sample is not all run has no verdict (None), though its fraction so far is given.
    """
    out = {}
    for module, members in sorted(full.items()):
        census = collections.Counter(_status(codes.get(n), n, equivalent) for n in members)
        picked = collections.Counter(_status(codes.get(n), n, equivalent) for n in drawn.get(module, []))
        complete = not census.get("not checked")
        counts = census if complete else picked
        killed = counts.get("killed", 0)
        ran = killed + counts.get("survived", 0) + counts.get("timeout", 0)
        entry = {"targeted": len(members), "census": dict(census), "sample": dict(picked), "sample_size": len(drawn.get(module, [])),
                 "basis": "census" if complete else "sample"}
        if ran:
            ci = stats.binomtest(killed, ran).proportion_ci(0.95, method="wilson")
            entry.update(killed_fraction=round(killed / ran, 4), wilson95=[round(ci.low, 4), round(ci.high, 4)],
                         met=None if counts.get("not checked") else killed / ran >= TARGET_KILLED_FRACTION)
        else:
            entry.update(killed_fraction=None, wilson95=None, met=None)
        out[module] = entry
    return out


def seconds_per_mutant(summary: dict, seconds) -> float | None:
    """The runs' wall time (stats collection and clean run included) over the mutants they tested.

    A mutant counts as tested when its tests ran (killed, survived, timeout, equivalent); "not
    checked" and "no tests" mutants took no time. None without `seconds`.
    """
    tested = sum(n for entry in summary["modules"].values() for status, n in entry["counts"].items()
                 if status in ("killed", "survived", "timeout", "equivalent"))
    return round(sum(seconds) / tested, 2) if seconds and tested else None


def table(summary: dict) -> str:
    """The per-function results as the Markdown table docs/mutation.md shows.

    Rows: every function with a tested mutant, and every function that the run's `targets` (mutmut's
    names, globs allowed: the Makefile's MUTANTS) name, tested or not.
    """
    targets = summary.get("targets") or []
    rows = ["| function | killed | survived | timeout | equivalent | not checked | killed of non-equivalent |",
            "|---|---|---|---|---|---|---|"]
    for module, entry in sorted(summary["modules"].items()):
        for function, counts in entry["functions"].items():
            killed, survived, timeout = (counts.get(k, 0) for k in ("killed", "survived", "timeout"))
            ran = killed + survived + timeout
            targeted = any(fnmatch.fnmatch(f"{module}.{function}__mutmut_1", t) for t in targets)
            if not ran and not counts.get("equivalent") and not targeted:
                continue
            name = f"`{module.removeprefix('siamese_xai.')}.{function.removeprefix('x_')}`"
            fraction = f"{killed / ran:.1%}" if ran else "-"
            rows.append(f"| {name} | {killed} | {survived} | {timeout} | {counts.get('equivalent', 0)} | "
                        f"{counts.get('not checked', 0)} | {fraction} |")
    return "\n".join(rows) + "\n"


def verdict_table(summary: dict) -> str:
    """The per-module verdicts (`judge`) as the Markdown table docs/mutation.md shows."""
    rows = ["| module | targeted mutants | judged on | killed | survived | timeout | equivalent | not checked | "
            "killed of non-equivalent (95% Wilson) | >= 90% |", "|---|---|---|---|---|---|---|---|---|---|"]
    for module, v in summary["verdicts"].items():
        if v["basis"] == "census":
            counts, basis = v["census"], "every mutant"
        else:
            counts, basis = v["sample"], f"sample of {v['sample_size']}"
        fraction = "-" if v["killed_fraction"] is None else \
            f"{v['killed_fraction']:.1%} ({v['wilson95'][0]:.1%}-{v['wilson95'][1]:.1%})"
        met = {True: "yes", False: "no", None: "-"}[v["met"]]
        rows.append(f"| `{module.removeprefix('siamese_xai.')}` | {v['targeted']} | {basis} | "
                    + " | ".join(str(counts.get(k, 0)) for k in ("killed", "survived", "timeout", "equivalent",
                                                                 "not checked"))
                    + f" | {fraction} | {met} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", nargs="+", default=["mutants"],
                        help="mutmut's folder; several: a later one's results replace an earlier one's")
    parser.add_argument("--out", default="tools/mutants.json")
    parser.add_argument("--equivalent", default="tools/mutants_equivalent.json",
                        help="JSON {mutant name: why it is equivalent}; may be absent")
    parser.add_argument("--seconds", type=float, nargs="+", default=None, help="each mutmut run's wall time, recorded")
    parser.add_argument("--targets", nargs="+", required=True,
                        help="the functions the runs were asked to mutate (mutmut's names, globs allowed)")
    parser.add_argument("--per-module", type=int, default=mutants_sample.PER_MODULE,
                        help="the sample `make mutants` ran (tools.mutants_sample); 0: every mutant")
    parser.add_argument("--seed", type=int, default=mutants_sample.SEED)
    args = parser.parse_args(argv)
    path = Path(args.equivalent)
    equivalent = json.loads(path.read_text()) if path.is_file() else {}
    summary = summarise(args.mutants, equivalent)
    names = mutants_sample.targeted(mutants_sample.mutant_names(mutants_sample.mutated_files()), args.targets)
    full, drawn = mutants_sample.draw(names, 0), mutants_sample.draw(names, args.per_module, args.seed)
    summary.update(runs=args.mutants, seconds=args.seconds, equivalent=equivalent,
                   target_killed_fraction=TARGET_KILLED_FRACTION, targets=args.targets,
                   sample={"per_module": args.per_module, "seed": args.seed},
                   verdicts=judge(exit_codes(args.mutants), equivalent, full, drawn))
    summary["target_met"] = all(v["met"] for v in summary["verdicts"].values())
    summary["seconds_per_mutant"] = seconds_per_mutant(summary, args.seconds)
    files.write_json(args.out, summary)
    for module, entry in summary["modules"].items():
        print(module, entry["counts"], entry["killed_fraction_of_non_equivalent"])
    print("seconds per mutant:", summary["seconds_per_mutant"])
    print(table(summary))
    print(verdict_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
