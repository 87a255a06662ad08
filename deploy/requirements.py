"""Print the pinned requirements of pyproject.toml, one per line, for the image builds.

    python deploy/requirements.py [EXTRA ...] [--without NAME ...] [--extras-only]

The images install torch first (the CPU or CUDA wheel) and then these, so the dependency layer is
cached while only the source changes and pyproject.toml stays the one list of versions.
`--extras-only` prints just the extras' lines: the CPU image installs them as a layer of its own.
"""
from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str], without: list[str], extras_only: bool = False) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {unknown}; pyproject.toml has {sorted(optional)}")
    if extras_only and not extras:
        raise SystemExit("--extras-only needs at least one extra")
    base = [] if extras_only else list(project["dependencies"])
    reqs = base + [r for e in extras for r in optional[e]]
    skip = {w.lower() for w in without}
    return [r for r in reqs if re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() not in skip]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("extras", nargs="*")
    parser.add_argument("--without", action="append", default=[], metavar="NAME")
    parser.add_argument("--extras-only", action="store_true", help="only the extras' requirements")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    args = parser.parse_args()
    print("\n".join(requirements(args.pyproject, args.extras, args.without, args.extras_only)))


if __name__ == "__main__":
    main()
