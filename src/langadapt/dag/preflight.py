"""Preflight: every remote input of a configuration resolved before any compute (issue 16).

The config's *consumers* are the jobs that read something from outside the workflow: ``corpus/{lang}``,
``parallel_data/{name}``, ``task/{task}`` (its evaluation dataset), ``base_model/{base}``,
``tokenizer/{tok}``, ``word_vectors/{name}``. :func:`run_preflight` resolves the revision of every hub repo
they name to a commit and lists its files (:class:`langadapt.data.remote.Listing`: the hub, or recorded
listings offline), then checks, per language, that each consumer's files exist (and that its tabular files
have the expected columns, read from schemas only) and that its local files exist. It writes a coverage table
(language x pretraining corpus / parallel data / each task, naming the source that serves each cell, or
``MISSING: why``) and, when nothing is missing, the lock file the download jobs read; otherwise it raises one
:class:`PreflightError` listing every gap, before any job has run.

A task cell a dataset does not cover is ``-`` (the task evaluates the languages its data cover), not a gap,
except for a language the task names itself (its ``languages`` or zero-shot ``source``) or a task that
covers no language at all.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import DataError, LangadaptError
from langadapt.core.languages import parse_lang
from langadapt.data.hub import LOCK_ENV
from langadapt.data.remote import Listing, Lock, Need, Remote, check_need, model_needs

log = logging.getLogger(__name__)

GLOBAL_ROW = "(all)"
UNRESOLVED = " did not resolve"


class PreflightError(LangadaptError):
    """Some remote or local input of the configuration is missing: the message lists every gap."""


@dataclass
class Cell:
    """One cell of the coverage table: who serves (row, column), or why nobody does."""

    row: str
    column: str
    source: str = ""
    gap: str = ""  # non-empty: MISSING (a gap that stops the run)
    needs: list[Need] = field(default_factory=list)
    local: list[Path] = field(default_factory=list)
    show_local: bool = True  # name the local paths (else the source's description) in the table

    def text(self) -> str:
        """``MISSING: why``, ``-`` (not covered, not needed), or what serves the cell: the hub files
        (``repo: first pattern``) or local paths, else the source's description (packaged data)."""
        if self.gap:
            return f"MISSING: {self.gap}"
        if not self.source:
            return "-"
        if self.needs:
            return "; ".join(f"{n.remote.repo_id}: {n.patterns[0]}{' +' if len(n.patterns) > 1 else ''}"
                             for n in self.needs)  # fmt: skip
        return ("; ".join(map(str, self.local)) if self.show_local else "") or self.source


@dataclass
class Consumer:
    """A job that reads remote or local inputs; `cells()` is evaluated with the lock active."""

    key: str
    remotes: list[Remote]
    cells: Callable[[bool], list[Cell]]  # argument: check local files (else local data is assumed present)


# ------------------------------------------------------------------------------------------------- cells
def _corpus(config: dict, code: str) -> Consumer:
    from langadapt.data.sources import build_source

    source = build_source(config["data"]["sources"][code])

    def cells(check_local: bool = True) -> list[Cell]:
        lang = parse_lang(code)
        return [Cell(code, "corpus", source.describe(), needs=source.needs(lang), local=source.local_files(lang),
                     show_local=False)]  # fmt: skip

    return Consumer(f"corpus/{code}", source.remotes(), cells)


def _parallel(config: dict, name: str) -> Consumer:
    from langadapt.data.parallel_data import check_entry

    sources, langs = check_entry(name, config["parallel_data"][name], config["pivot"], config["languages"])

    def cells(check_local: bool = True) -> list[Cell]:
        out = []
        for lang in langs:
            serving = next((s for s in sources if s.covers([lang]) or (not check_local and not s.remotes())), None)
            if serving is None:
                tried = ", ".join(s.describe() for s in sources)
                hints = "".join(f"; {h}" for s in sources if (h := s.missing_hint(lang)))
                out.append(Cell(lang.code, f"parallel:{name}", gap=f"no source has {lang.code} (tried {tried}{hints})"))
            else:
                out.append(Cell(lang.code, f"parallel:{name}", serving.describe(), needs=serving.needs(lang),
                                local=serving.local_files(lang)))  # fmt: skip
        return out

    remotes = [r for s in sources for r in s.remotes()]
    return Consumer(f"parallel_data/{name}", remotes, cells)


def _task(config: dict, task: str) -> Consumer | None:
    from langadapt.config import task_languages
    from langadapt.evaluation.datasets import build_dataset

    spec = config["evaluation"]["tasks"][task]
    if not spec.get("dataset"):
        return None  # reads the corpora / Bible pairs of the workflow itself
    dataset = build_dataset(spec["dataset"])
    named = set(spec.get("languages") or []) | ({spec["source"]} if spec.get("source") else set())
    column = f"task:{task}"

    def cells(check_local: bool = True) -> list[Cell]:
        out = []
        for code in task_languages(config, task):
            lang = parse_lang(code)
            if dataset.covers([code]) or (not check_local and not dataset.remotes()):
                out.append(Cell(code, column, dataset.describe(), needs=dataset.needs(lang),
                                local=dataset.local_files(lang)))  # fmt: skip
            else:
                why = f"{dataset.describe()} has no data for {code}"
                out.append(Cell(code, column, gap=why if code in named else ""))
        if not any(c.source for c in out):
            out.append(Cell(GLOBAL_ROW, column, gap=f"{dataset.describe()} covers none of the task's languages"))
        return out

    return Consumer(f"task/{task}", dataset.remotes(), cells)


def _model(kind: str, name: str, spec: dict) -> Consumer | None:
    if spec.get("kind") != "hf":
        return None
    needs = model_needs(str(spec["name_or_path"]), spec.get("revision"), weights=kind == "base_model")
    local = [] if needs else [Path(spec["name_or_path"])]
    what = f"{spec['name_or_path']}@{spec.get('revision') or 'main'}"

    def cells(check_local: bool = True) -> list[Cell]:
        return [Cell(GLOBAL_ROW, f"{kind}:{name}", what, needs=needs, local=local)]

    return Consumer(f"{kind}/{name}", [n.remote for n in needs], cells)


def _vectors(config: dict, name: str) -> Consumer | None:
    import langadapt.vectors  # noqa: F401  (registers the kinds)
    from langadapt.vectors.base import word_vector_kind

    kind = word_vector_kind(config["word_vectors"][name], f"word_vectors.{name}")
    needs, files = kind.needs(), [Path(f) for f in kind.local_files()]
    if not needs and not files:
        return None
    what = needs[0].remote.repo_id if needs else str(files[0])

    def cells(check_local: bool = True) -> list[Cell]:
        return [Cell(GLOBAL_ROW, f"word_vectors:{name}", f"{kind.name} {what}", needs=needs, local=files)]

    return Consumer(f"word_vectors/{name}", [n.remote for n in needs], cells)


def consumers(config: dict) -> dict[str, Consumer]:
    """Every consumer of the (prepared) config, by key. Building them makes no request."""
    found: list[Consumer | None] = [_corpus(config, code) for code in config["languages"]]
    found += [_parallel(config, name) for name in config.get("parallel_data") or {}]
    found += [_task(config, task) for task in config["evaluation"]["tasks"]]
    found += [_model("base_model", n, s) for n, s in config["base_models"].items()]
    found += [_model("tokenizer", n, s) for n, s in (config.get("tokenizers") or {}).items()]
    found += [_vectors(config, n) for n in config.get("word_vectors") or {}]
    return {c.key: c for c in found if c is not None}


def remote_spec(config: dict) -> dict[str, Any]:
    """The part of a prepared config the preflight and the downloads read, in the config's own shape (so
    :func:`consumers` takes either): the jobs get it as a param and rerun when it changes."""
    tasks = {name: {k: spec[k] for k in ("dataset", "languages", "source") if spec.get(k)}
             for name, spec in config["evaluation"]["tasks"].items()}  # fmt: skip
    return {"languages": config["languages"], "pivot": config["pivot"], "data": {"sources": config["data"]["sources"]},
            "parallel_data": config.get("parallel_data") or {}, "evaluation": {"tasks": tasks},
            "base_models": config["base_models"], "tokenizers": config.get("tokenizers") or {},
            "word_vectors": config.get("word_vectors") or {}}  # fmt: skip


def remote_consumers(config: dict) -> list[str]:
    """Keys of the consumers that read a hub repo: each gets a download job (no request made)."""
    return [key for key, c in consumers(config).items() if c.remotes]


# -------------------------------------------------------------------------------------------------- lock
@contextlib.contextmanager
def active_lock(lock: Lock) -> Iterator[None]:
    """Make `lock` the one every hub access reads (listings, pinned commits), for the duration."""
    old = os.environ.get(LOCK_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lock.json"
        lock.write(path)
        os.environ[LOCK_ENV] = str(path)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(LOCK_ENV, None)
            else:
                os.environ[LOCK_ENV] = old


def resolve_remotes(remotes: list[Remote], listing: Listing, old: Lock, update: bool) -> tuple[Lock, list[str]]:
    """A lock with every remote: kept from `old` unless `update`, else resolved and listed. (lock, errors)."""
    lock, errors = Lock(), []
    for remote in sorted(set(remotes), key=lambda r: r.key):
        if not update and remote.key in old.remotes:
            lock.remotes[remote.key] = old.remotes[remote.key]
            continue
        try:
            commit = listing.resolve(remote)
            files = listing.files(remote, commit)
            sizes = listing.sizes(remote, commit)
        except DataError as e:
            errors.append(f"{remote.key}: {e}")
            continue
        lock.remotes[remote.key] = {"repo_type": remote.repo_type, "repo_id": remote.repo_id,
                                    "revision": remote.revision, "commit": commit, "files": files,
                                    **({"sizes": sizes} if sizes else {})}  # fmt: skip
    return lock, errors


def check_cell(cell: Cell, lock: Lock, listing: Listing, check_local: bool = True) -> None:
    """Set the cell's gap when a need is unmet or (`check_local`) a local file is absent."""
    for need in cell.needs:
        entry = lock.remotes.get(need.remote.key)
        if entry is None:
            cell.gap = f"{need.remote.key}{UNRESOLVED}"
            return
        if why := check_need(need, entry["files"], listing, entry["commit"]):
            cell.gap = f"{need.remote.repo_id}@{need.remote.revision}: {why}"
            return
    if check_local and (missing := [str(p) for p in cell.local if not p.exists()]):
        cell.gap = f"not found: {', '.join(missing)}"


# -------------------------------------------------------------------------------------------------- run
@dataclass
class Report:
    cells: list[Cell]
    lock: Lock
    errors: list[str]

    def gaps(self) -> list[str]:
        """Every gap, once: a repo that did not resolve is one gap, not one per cell that reads it."""
        cells = [c for c in self.cells if c.gap and not c.gap.endswith(UNRESOLVED)]
        return [*self.errors, *(f"{c.column} {c.row}: {c.gap}" for c in cells)]

    def table(self, config_langs: list[str]) -> tuple[list[str], list[list[str]]]:
        """(header, rows): one row per language (config order, then others), one column per consumer column."""
        columns = list(dict.fromkeys(c.column for c in self.cells))
        rows = list(dict.fromkeys([*config_langs, *(c.row for c in self.cells)]))
        grid = {(c.row, c.column): c.text() for c in self.cells}
        body = [[row, *(grid.get((row, col), "") for col in columns)] for row in rows]
        return ["language", *columns], [r for r in body if any(r[1:])]

    def download_bytes(self) -> tuple[int, int]:
        """(bytes the needs of all cells download, files whose size is unknown): what the cache will hold."""
        from langadapt.data.remote import download_patterns, matches

        wanted: set[tuple[str, str]] = set()
        for cell in self.cells:
            for need in cell.needs:
                entry = self.lock.remotes.get(need.remote.key)
                for pattern in download_patterns(need, entry["files"]) if entry else ():
                    wanted |= {(need.remote.key, f) for f in matches(entry["files"], pattern)}
        sizes = [self.lock.remotes[k].get("sizes", {}).get(f) for k, f in wanted]
        return sum(s for s in sizes if s is not None), sum(s is None for s in sizes)

    def csv(self, config_langs: list[str]) -> str:
        header, rows = self.table(config_langs)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *rows])
        return buf.getvalue()

    def markdown(self, config_langs: list[str]) -> str:
        header, rows = self.table(config_langs)
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        def md(cell: str) -> str:  # file patterns as code (their * are not emphasis)
            cell = cell.replace("|", "/")
            return cell if cell in ("", "-") or cell.startswith("MISSING") else f"`{cell}`"

        lines += ["| " + " | ".join([row[0], *map(md, row[1:])]) + " |" for row in rows]
        size, unknown = self.download_bytes()
        if size or not unknown:
            lines += ["", f"Downloads: {size / 1e9:.2f} GB" + (f" + {unknown} file(s) of unknown size" if unknown else "")]
        else:
            lines += ["", f"Downloads: {unknown} file(s); the listing gives no sizes (the hub's does)"]
        return "\n".join(lines) + "\n"


def check_config(config: dict, listing: Listing, old: Lock | None = None, update: bool = False,
                 check_local: bool = True) -> Report:  # fmt: skip
    """Resolve and check every input of `config` (nothing written). Without `check_local`, local files are
    named but not looked for (the coverage of a config on another machine)."""
    found = consumers(config)
    lock, errors = resolve_remotes([r for c in found.values() for r in c.remotes], listing, old or Lock(), update)
    cells: list[Cell] = []
    with active_lock(lock):
        for consumer in found.values():
            try:
                new = consumer.cells(check_local)
            except LangadaptError as e:  # e.g. a listing the coverage logic could not read
                new = [Cell(GLOBAL_ROW, consumer.key, gap=str(e))]
            for cell in new:
                if not cell.gap and cell.source:
                    check_cell(cell, lock, listing, check_local)
            cells += new
    return Report(cells, lock, errors)


def run_preflight(config: dict, listing: Listing, lock_path: str | Path, out_dir: str | Path | None = None,
                  update: bool = False, check_local: bool = True) -> Report:  # fmt: skip
    """Check `config`, write the coverage table (``coverage.csv`` / ``.md`` in `out_dir`, default beside the
    lock) and, when nothing is missing, the lock; raise PreflightError listing every gap otherwise."""
    lock_path = Path(lock_path)
    out = Path(out_dir) if out_dir is not None else lock_path.parent
    with _locked(lock_path):  # the papers of workflow/reproduce.smk may share one lock file
        old = Lock.read(lock_path)
        report = check_config(config, listing, old, update, check_local)
        langs = list(config["languages"])
        write_text_atomic(report.csv(langs), out / "coverage.csv")
        write_text_atomic(report.markdown(langs), out / "coverage.md")
        if gaps := report.gaps():
            raise PreflightError(f"preflight: {len(gaps)} input(s) missing (coverage table: {out / 'coverage.md'}; "
                                 f"no lock written):\n  " + "\n  ".join(gaps))  # fmt: skip
        merged = Lock({**old.remotes, **report.lock.remotes})  # other configs' pins are kept
        for line in merged.diff(old):
            log.info("lock %s: %s", lock_path, line)
        merged.write(lock_path)
        stale = stale_markers(out / "downloads", merged)
        for marker in stale:  # a changed pin: its download (and what read it) reruns
            marker.unlink()
        if stale:
            log.info("%d download(s) to redo: %s", len(stale), ", ".join(str(m) for m in stale))
    return report


def stale_markers(folder: Path, lock: Lock) -> list[Path]:
    """Download markers under `folder` whose commits differ from `lock`'s."""
    out = []
    for marker in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
        try:
            remotes = json.loads(marker.read_text(encoding="utf-8"))["remotes"]
        except (OSError, ValueError, KeyError):
            out.append(marker)
            continue
        if any(lock.remotes.get(k, {}).get("commit") != v.get("commit") for k, v in remotes.items()):
            out.append(marker)
    return out


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{lock_path}.flock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def download_consumer(config: dict, key: str, lock_path: str | Path, cache: str | Path,
                      marker: str | Path) -> dict[str, Any]:  # fmt: skip
    """The download job of one consumer: fetch its needs at the locked commits into `cache` and write the
    marker its compute job reads: a lock of the consumer's remotes, the cache, and what was fetched."""
    from langadapt.data.remote import download

    lock = Lock.read(lock_path)
    found = consumers(config)
    if key not in found:
        raise DataError(f"no consumer {key!r} in this config (known: {sorted(found)})")
    if missing := [r.key for r in found[key].remotes if r.key not in lock.remotes]:
        raise DataError(f"{lock_path} lacks {missing}: rerun the preflight (`langadapt preflight`)")
    with active_lock(lock):
        needs = [n for cell in found[key].cells(True) for n in cell.needs]
    fetched = download(needs, lock, cache)
    sub = {r.key: lock.remotes[r.key] for r in found[key].remotes}
    data = {"version": 1, "consumer": key, "cache": str(Path(cache).resolve()), "remotes": sub, "fetched": fetched}
    write_text_atomic(json.dumps(data, indent=1) + "\n", marker)
    return data
