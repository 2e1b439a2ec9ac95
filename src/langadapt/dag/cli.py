"""The ``langadapt`` command: ``langadapt preflight`` checks a configuration's remote and local inputs on the
submit host (the hub, or recorded listings with ``--listings``), prints the coverage table and writes the lock
file the download jobs read. ``--update`` re-resolves every revision (the lock's diff is logged, and the
downloads whose commit changed are redone by the next ``snakemake`` run). ``langadapt unlock-stale`` removes
the locks of a killed run when no Snakemake process works in the directory (``make run`` does it first)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from langadapt.core.errors import LangadaptError


def _config(path: str | None) -> dict:
    from langadapt import config as lc

    return lc.load_config(path or "config.yaml")


def preflight(args: argparse.Namespace) -> int:
    from langadapt.dag.preflight import run_preflight
    from langadapt.data.remote import HubListing, RecordedListing

    config = _config(args.configfile)
    lock = args.lock or config["remote"]["lock"]
    listing = RecordedListing(args.listings) if args.listings else HubListing()
    try:
        report = run_preflight(config, listing, lock, out_dir=args.out, update=args.update,
                               check_local=not args.no_local_check)  # fmt: skip
    except LangadaptError as e:
        print(f"{args.out}/coverage.md:\n{Path(args.out, 'coverage.md').read_text()}" if Path(args.out, "coverage.md")
              .is_file() else "", file=sys.stderr)  # fmt: skip
        print(e, file=sys.stderr)
        return 1
    print(report.markdown(list(config["languages"])), end="")
    print(f"lock: {lock} ({len(report.lock.remotes)} remote(s)); coverage: {args.out}/coverage.csv")
    return 0


def unlock(args: argparse.Namespace) -> int:
    from langadapt.dag.locks import unlock_stale

    unlock_stale(args.directory)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="langadapt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preflight", help="resolve, check and lock every remote input of a config")
    p.add_argument("--configfile", help="the config (default: config.yaml)")
    p.add_argument("--lock", help="the lock file (default: the config's remote.lock)")
    p.add_argument("--out", default="results/remote", help="folder of coverage.csv/.md and the download markers")
    p.add_argument("--listings", help="recorded listings folder instead of the hub (offline)")
    p.add_argument("--update", action="store_true", help="re-resolve every revision, not only new ones")
    p.add_argument("--no-local-check", action="store_true", help="name local files without looking for them")
    p.set_defaults(func=preflight)
    u = sub.add_parser("unlock-stale", help="remove the Snakemake locks an interrupted run left (none if one runs)")
    u.add_argument("directory", nargs="?", default=".", help="the workflow's working directory (default: .)")
    u.set_defaults(func=unlock)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
