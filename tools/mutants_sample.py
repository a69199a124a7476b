"""A seeded sample of the mutants `make mutants` runs: every mutant of a small module, `per_module` of a large one.

    python -m tools.mutants_sample --per-module 30 --targets 'siamese_xai.runs.x_run_id*' ...

prints the sampled mutants' names, one per line, for `mutmut run NAME ...`.

Running every mutant of the method's core takes hours on a 2-core machine; a
simple random sample of each module's mutants estimates the module's killed
fraction (with a Wilson interval, `tools.mutants_summary`) in a fixed time.
The names come from mutmut's own generator (`mutate_file_contents`, the code
`mutmut run` writes its mutants with), in memory: nothing is written and no test
runs. Each module's sample depends on the seed, the module's name and its
mutants only, so adding a module or a function elsewhere leaves the other
samples as they were; a module's sample changes when its source does.
"""

from __future__ import annotations

import argparse
import collections
import configparser
import fnmatch
import random
from pathlib import Path

from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.utils.format_utils import get_mutant_name

# The Makefile's default: 30 per module keeps `make mutants` near 30 minutes on a 2-core machine
# (docs/mutation.md gives the measured time).
PER_MODULE = 30
# A sample whose survivors have had tests written against them estimates the kill rate too high: after
# such tests, the committed summary comes from a sample with a new seed (docs/mutation.md).
SEED = 1


def mutant_names(paths) -> list[str]:
    """Every mutant mutmut makes of the Python files `paths` (relative to the project root), by mutmut's names."""
    names = []
    for path in map(Path, paths):
        mutated = mutate_file_contents(str(path), path.read_text(), None, None)
        names += [get_mutant_name(path, name) for name in mutated.mutant_names]
    return names


def targeted(names, targets) -> list[str]:
    """The names matched by any of `targets` (mutmut's names, globs allowed), in their order."""
    return [n for n in names if any(fnmatch.fnmatch(n, t) for t in targets)]


def draw(names, per_module: int, seed: int = SEED) -> dict[str, list[str]]:
    """{module: its sampled mutants, sorted}: all of a module with at most `per_module`, else a simple random
    sample of `per_module` drawn by `random.Random(f"{seed}:{module}")` from the module's sorted names.

    `per_module` 0 takes every mutant (the full run).
    """
    if per_module < 0:
        raise ValueError(f"`per_module` must be 0 (every mutant) or a positive count, got {per_module}")
    by_module = collections.defaultdict(list)
    for name in names:
        by_module[name.rpartition(".")[0]].append(name)
    out = {}
    for module, members in sorted(by_module.items()):
        members = sorted(set(members))
        if per_module and len(members) > per_module:
            members = sorted(random.Random(f"{seed}:{module}").sample(members, per_module))
        out[module] = members
    return out


def sample(targets, per_module: int, seed: int = SEED) -> dict[str, list[str]]:
    """`draw` over the targeted mutants of the files mutmut mutates (`mutated_files`); run from the project root."""
    return draw(targeted(mutant_names(mutated_files()), targets), per_module, seed)


def mutated_files(setup_cfg="setup.cfg") -> list[Path]:
    """The files of `[mutmut] only_mutate` in `setup_cfg`, as written there (relative to the project root)."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    files = [Path(line.strip()) for line in parser["mutmut"]["only_mutate"].splitlines() if line.strip()]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{setup_cfg} [mutmut] only_mutate names files that do not exist: {missing}")
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", required=True,
                        help="the functions to mutate (mutmut's names, globs allowed): the Makefile's MUTANTS")
    parser.add_argument("--per-module", type=int, default=PER_MODULE, help="mutants per module; 0: every one")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for members in sample(args.targets, args.per_module, args.seed).values():
        print("\n".join(members))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
