"""Word alignments of translation pairs, for word-level realignment.

The realignment paper compares its sentence-average loss with word-level realignment on FastAlign word
pairs (App. A.2, Table 2; the method of Wu and Dredze, 2020). Here word pairs come from a registered
aligner (``ALIGNERS``):

* ``eflomal`` (PyPI ``eflomal``): the Bayesian IBM-model aligner, run per language on that language's
  train pairs in both directions, then symmetrized (``grow-diag-final-and`` by default, Koehn et al. 2003);
* ``pharaoh``: alignments computed elsewhere, read from files: per language a whitespace-tokenized
  ``src ||| tgt`` text file (fast_align's input format) and a Pharaoh file (``0-0 1-2 ...``, one line per
  pair, ``src-tgt`` word indices).

Output (``results/alignments/{data}/{aligner}.parquet``, :data:`ALIGNED_SCHEMA`): one row per train pair
with its words on both sides and the links as two parallel index lists. The file is self-contained:
word-level realignment tokenizes these words (``is_split_into_words``), so the word segmentation the
aligner saw is exactly the one the loss uses.
"""

from __future__ import annotations

import logging
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.atomic import atomic_files
from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.core.progress import log_items
from langadapt.core.registry import Registry
from langadapt.data.parallel import load_parallel

log = logging.getLogger(__name__)

ALIGNED_SCHEMA = pa.schema([
    ("lang", pa.string()), ("pair_id", pa.int64()),
    ("src_words", pa.list_(pa.string())), ("tgt_words", pa.list_(pa.string())),
    ("src_index", pa.list_(pa.int32())), ("tgt_index", pa.list_(pa.int32())),
])  # fmt: skip

Links = list[tuple[int, int]]
ALIGNERS: Registry[Callable[..., list[Links]]] = Registry("word aligner")
SYMMETRIZATIONS = ("grow-diag-final-and", "intersection", "union", "forward", "reverse")


# ------------------------------------------------------------------------------------------ words
def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def split_words(text: str) -> list[str]:
    """Whitespace tokens with leading and trailing punctuation split off as tokens of their own.

    ``"Jesus wept."`` -> ``["Jesus", "wept", "."]``. Combining marks stay inside their word (unlike a
    ``\\w+`` regex, which cuts Devanagari words at every vowel sign). Scripts written without spaces
    (Chinese, Japanese, Thai) come out as long "words"; use a pre-tokenized ``pharaoh`` input for them.
    """
    out: list[str] = []
    for token in text.split():
        i, j = 0, len(token)
        while i < j and _is_punct(token[i]):
            i += 1
        while j > i and _is_punct(token[j - 1]):
            j -= 1
        out.extend(token[:i])
        if i < j:
            out.append(token[i:j])
        out.extend(token[j:])
    return out


def parse_pharaoh(line: str, n_src: int, n_tgt: int, where: str) -> Links:
    """``"0-0 1-2"`` -> ``[(0, 0), (1, 2)]``; DataError naming `where` on a bad or out-of-range link."""
    links = []
    for item in line.split():
        a, sep, b = item.partition("-")
        if not sep or not a.isdigit() or not b.isdigit():
            raise DataError(f"{where}: malformed Pharaoh link {item!r} (expected i-j)")
        i, j = int(a), int(b)
        if i >= n_src or j >= n_tgt:
            raise DataError(f"{where}: link {item!r} is outside the sentence ({n_src} source, {n_tgt} target words)")
        links.append((i, j))
    return links


# ----------------------------------------------------------------------------------- symmetrization
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def symmetrize(forward: Iterable[tuple[int, int]], reverse: Iterable[tuple[int, int]],
               method: str = "grow-diag-final-and") -> Links:
    """Combine source->target and target->source links (both as (src, tgt) pairs).

    ``grow-diag-final-and`` (Koehn et al., 2003; Moses/fast_align ``atools``): start from the
    intersection, repeatedly add union links that neighbour an existing link (8-neighbourhood) and
    whose source or target word is still unaligned; then add union links whose source *and* target
    words are both unaligned (forward links first, then reverse).
    """
    fwd, rev = set(forward), set(reverse)
    if method == "forward":
        return sorted(fwd)
    if method == "reverse":
        return sorted(rev)
    if method == "intersection":
        return sorted(fwd & rev)
    if method == "union":
        return sorted(fwd | rev)
    if method != "grow-diag-final-and":
        raise ConfigError(f"unknown symmetrization {method!r}; known: {', '.join(SYMMETRIZATIONS)}")
    union = fwd | rev
    links = fwd & rev
    src_aligned = {i for i, _ in links}
    tgt_aligned = {j for _, j in links}
    added = True
    while added:
        added = False
        for i, j in sorted(links):
            for di, dj in _NEIGHBOURS:
                cand = (i + di, j + dj)
                if cand in union and cand not in links and (cand[0] not in src_aligned or cand[1] not in tgt_aligned):
                    links.add(cand)
                    src_aligned.add(cand[0])
                    tgt_aligned.add(cand[1])
                    added = True
    for direction in (fwd, rev):  # final-and
        for i, j in sorted(direction):
            if (i, j) not in links and i not in src_aligned and j not in tgt_aligned:
                links.add((i, j))
                src_aligned.add(i)
                tgt_aligned.add(j)
    return sorted(links)


# ----------------------------------------------------------------------------------------- aligners
EFLOMAL_DEFAULTS: dict[str, Any] = {
    "model": 3,  # eflomal: IBM1 + HMM + fertility (its default and best model)
    "n_iterations": None,  # eflomal: [IBM1, HMM, fertility] iterations; null = chosen from the corpus size
    "n_samplers": 3,  # eflomal default
    "null_prior": 0.2,  # eflomal default
    "symmetrize": "grow-diag-final-and",  # the usual choice for fast_align/eflomal output
    "seed": None,  # unused by eflomal itself (its sampler seeds from the clock); recorded for provenance
    "max_pairs": None,  # align only the first N train pairs of each language (null = all)
}


def _read_links(path: Path, n: int) -> list[Links]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) != n:
        raise DataError(f"aligner output {path} has {len(lines)} lines for {n} sentence pairs")
    return [[tuple(map(int, item.split("-"))) for item in line.split()] for line in lines]  # type: ignore[misc]


@ALIGNERS.register("eflomal")
def eflomal_align(src: Sequence[Sequence[str]], tgt: Sequence[Sequence[str]], **params: Any) -> list[Links]:
    """Align word lists with eflomal (both directions) and symmetrize; one link list per pair."""
    import eflomal

    cfg = {**EFLOMAL_DEFAULTS, **params}
    cfg.pop("max_pairs")
    iterations = None if cfg["n_iterations"] is None else tuple(cfg["n_iterations"])
    aligner = eflomal.Aligner(model=cfg["model"], n_iterations=iterations, n_samplers=cfg["n_samplers"],
                              null_prior=cfg["null_prior"])
    # eflomal reads whitespace-tokenized lines; a sentence without words becomes one placeholder token
    src_lines = [" ".join(w) if w else "∅" for w in src]
    tgt_lines = [" ".join(w) if w else "∅" for w in tgt]
    with tempfile.TemporaryDirectory(prefix="eflomal-") as tmp:
        fwd_path, rev_path = Path(tmp) / "fwd", Path(tmp) / "rev"
        aligner.align(src_lines, tgt_lines, links_filename_fwd=str(fwd_path), links_filename_rev=str(rev_path),
                      quiet=True)
        fwd, rev = _read_links(fwd_path, len(src)), _read_links(rev_path, len(src))
    out = []
    for s, t, f, r in zip(src, tgt, fwd, rev, strict=True):
        links = symmetrize(f, r, cfg["symmetrize"])
        out.append([(i, j) for i, j in links if i < len(s) and j < len(t)])
    return out


def _check_eflomal(params: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(params) - set(EFLOMAL_DEFAULTS))
    if unknown:
        raise ConfigError(f"{where}: unknown eflomal key(s) {unknown}; known: {sorted(EFLOMAL_DEFAULTS)}")
    if params.get("symmetrize", "grow-diag-final-and") not in SYMMETRIZATIONS:
        raise ConfigError(f"{where}: symmetrize must be one of {SYMMETRIZATIONS}, got {params['symmetrize']!r}")
    it = params.get("n_iterations")
    if it is not None and not (isinstance(it, list) and len(it) == 3
                               and all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in it)):
        raise ConfigError(f"{where}: n_iterations must be null or [IBM1, HMM, fertility] iteration counts, got {it!r}")
    check_int(params.get("max_pairs"), f"{where}: max_pairs", optional=True)
    if params.get("model", 3) not in (1, 2, 3):
        raise ConfigError(f"{where}: eflomal model must be 1, 2 or 3, got {params['model']!r}")


def _placeholders(pattern: str, lang: str) -> str:
    parsed = parse_lang(lang, where="pharaoh aligner")
    return pattern.format(lang=lang, iso=parsed.iso, script=parsed.script)


def read_pharaoh(text_path: Path, align_path: Path) -> tuple[list[list[str]], list[list[str]], list[Links]]:
    """Read a fast_align-format text file (``src ||| tgt``) and its Pharaoh alignment file."""
    for p in (text_path, align_path):
        if not p.is_file():
            raise DataError(f"pharaoh aligner: file {p} does not exist")
    texts = text_path.read_text(encoding="utf-8").splitlines()
    aligns = align_path.read_text(encoding="utf-8").splitlines()
    if len(texts) != len(aligns):
        raise DataError(f"{align_path} has {len(aligns)} lines but {text_path} has {len(texts)}")
    src, tgt, links = [], [], []
    for k, (line, align) in enumerate(zip(texts, aligns, strict=True), start=1):
        s, sep, t = line.partition(" ||| ")
        if not sep:
            raise DataError(f"{text_path}:{k}: expected 'source ||| target', got {line[:60]!r}")
        src.append(s.split())
        tgt.append(t.split())
        links.append(parse_pharaoh(align, len(src[-1]), len(tgt[-1]), f"{align_path}:{k}"))
    return src, tgt, links


# --------------------------------------------------------------------------------------------- job
def check_aligner(spec: Mapping[str, Any], where: str) -> None:
    """Config-time check of an `aligners` entry (torch-free, before any job)."""
    kind = spec.get("kind")
    params = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "eflomal":
        _check_eflomal(params, where)
    elif kind == "pharaoh":
        missing = [k for k in ("text", "alignment") if not isinstance(params.get(k), str)]
        unknown = sorted(set(params) - {"text", "alignment"})
        if missing or unknown:
            raise ConfigError(f"{where}: the pharaoh aligner needs 'text' and 'alignment' path patterns "
                              f"(placeholders {{lang}}, {{iso}}, {{script}}); missing {missing}, unknown {unknown}")
    else:
        raise ConfigError(f"{where}: unknown aligner kind {kind!r}; known: eflomal, pharaoh")


def pharaoh_inputs(spec: Mapping[str, Any], langs: Sequence[str]) -> list[str]:
    """The files a pharaoh aligner reads for `langs` (rule inputs); none for eflomal."""
    if spec.get("kind") != "pharaoh":
        return []
    return [_placeholders(spec[k], lang) for lang in langs for k in ("text", "alignment")]


def _rows(lang: str, src: list[list[str]], tgt: list[list[str]], links: list[Links],
          ids: Sequence[int]) -> dict[str, list]:
    return {"lang": [lang] * len(src), "pair_id": list(ids), "src_words": src, "tgt_words": tgt,
            "src_index": [[i for i, _ in ln] for ln in links], "tgt_index": [[j for _, j in ln] for ln in links]}


def align_job(spec: Mapping[str, Any], parallel_path: Path | None, langs: Sequence[str] | None, out: Path) -> dict:
    """Word-align the train pairs of `langs` (None = every language of the parallel file) into `out`.

    Returns per-language counts (pairs, links per pair). No partial output on any error.
    """
    where = f"aligner {spec.get('kind')!r}"
    check_aligner(spec, where)
    params = {k: v for k, v in spec.items() if k != "kind"}
    parts: list[pa.Table] = []
    stats: dict[str, dict[str, float]] = {}
    with atomic_files(Path(out), clear_on_error=True) as (tmp,):
        if spec["kind"] == "pharaoh":
            if not langs:
                raise ConfigError(f"{where}: give the languages whose Pharaoh files to read")
            for lang in sorted(langs):
                src, tgt, links = read_pharaoh(Path(_placeholders(params["text"], lang)),
                                               Path(_placeholders(params["alignment"], lang)))
                parts.append(pa.table(_rows(lang, src, tgt, links, range(len(src))), schema=ALIGNED_SCHEMA))
        else:
            table = load_parallel(parallel_path, list(langs) if langs else None, split="train")
            if table.num_rows == 0:
                raise DataError(f"parallel file {parallel_path} has no train pairs for {list(langs or []) or 'any language'}")
            present = sorted(set(table.column("lang").to_pylist()))
            t0 = time.monotonic()
            for i, lang in enumerate(present, 1):
                sub = table.filter(pc.equal(table.column("lang"), lang))
                if params.get("max_pairs"):
                    sub = sub.slice(0, int(params["max_pairs"]))
                src = [split_words(t) for t in sub.column("src_text").to_pylist()]
                tgt = [split_words(t) for t in sub.column("tgt_text").to_pylist()]
                log.info("aligning %d %s pairs with %s", len(src), lang, spec["kind"])
                links = ALIGNERS.get(spec["kind"])(src, tgt, **params)
                parts.append(pa.table(_rows(lang, src, tgt, links, sub.column("verse_id").to_pylist()),
                                      schema=ALIGNED_SCHEMA))
                log_items("aligned languages", i, len(present), t0, log, {"last": lang, "pairs": len(src)})
        for part in parts:
            lang = part.column("lang")[0].as_py() if part.num_rows else "?"
            n_links = sum(len(x) for x in part.column("src_index").to_pylist())
            stats[lang] = {"pairs": part.num_rows, "links_per_pair": round(n_links / max(part.num_rows, 1), 3)}
            if n_links == 0:
                raise DataError(f"{where}: no word links at all for {lang}")
        pq.write_table(pa.concat_tables(parts) if parts else ALIGNED_SCHEMA.empty_table(), tmp)
    log.info("wrote word alignments of %d languages to %s: %s", len(stats), out, stats)
    return stats


def read_aligned(path: Path, languages: Sequence[str] | None) -> pa.Table:
    """The aligned pairs of `languages` (None = all); DataError naming the file on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"word alignment file {path} does not exist")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"cannot read word alignment file {path}: {e}") from None
    if not table.schema.equals(ALIGNED_SCHEMA):
        raise DataError(f"word alignment file {path} has schema {table.schema}, expected {ALIGNED_SCHEMA}")
    if languages is not None:
        table = table.filter(pc.is_in(table.column("lang"), value_set=pa.array(list(languages))))
    return table
