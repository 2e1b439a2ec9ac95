"""The kinds of external word vectors (registry `langadapt.vectors.base.WORD_VECTOR_KINDS`).

``colexnet``: ColexNet+ (Liu et al. 2023, "Crosslingual transfer learning for low-resource languages based
on multilingual colexification graphs"), the multilingual vectors OFA and HyperOFA use (HyperOFA §3.3,
footnote 4: "over 4M words spanning more than 1K languages"). Read from a word2vec file: text (``n d``
header, then ``token v1 ... vd`` per line) or binary (gensim ``save_word2vec_format(binary=True)``),
plain or gzipped. Tokens are ``iso:ngram`` (ISO 639-3 prefix, e.g. ``deu:$haus$``) except the English
concept nodes, which carry no prefix (the convention of OFA's ``get_subword_embeddings_in_word_embedding
_space``); ``$`` marks a word boundary in the lower-cased n-grams (ColexNet ``processing_ngrams.py``) and
is kept in ``words.tsv`` (``meta.json``: ``boundary_marker``). The published files are gensim
``KeyedVectors`` pickles (``*.wv``); convert once with gensim: ``KeyedVectors.load(p).save_word2vec_format(
out, binary=True)`` (pickles are never unpickled here). The ``lang`` column is ``iso_Script``: the script
is the word's dominant Unicode script (`langadapt.core.languages.text_script`; kana -> Jpan, Korean Han ->
Hang), or for words of neutral characters only the most common script of the language (else ``Zyyy``).

``bible_aligned``: an offline builder of aligned multilingual vectors from the verse-aligned corpora.
Words x verses incidence (train split; a word's "contexts" are the verse ids it occurs in, as in the
sentence-ID baseline of Levy, Søgaard & Goldberg 2017, "A strong baseline for learning cross-lingual word
embeddings from sentence alignments"), PPMI with context-distribution smoothing 0.75 and truncated SVD
with eigenvalue weighting 0.5 (Levy, Goldberg & Dagan 2015, "Improving distributional similarity with
lessons learned from word embeddings"), rows L2-normalized. Translations share verses, so they get similar
vectors in one space for all languages (ColexNet+ is built from Bible verses too). Words: lower-cased
runs of letters, marks and digits; in scripts written without spaces (`langadapt.data.filters.
NO_SPACE_SCRIPTS`: Japanese, Chinese, Thai, ...) each run yields its character bigrams (a one-character
run itself), since there are no word boundaries to split on.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.checks import check_number
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.progress import Every, clock, log_items
from langadapt.data.remote import Need, Remote
from langadapt.vectors.base import WORD_VECTOR_KINDS, WordVectorKind, iso_filter, lang_iso, surface_form

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"([a-z]{3}):(.+)", re.S)
_CHUNK = 20_000


# ------------------------------------------------------------------------------------------- word2vec
def _open(path: Path):
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _header(line: bytes, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) < 1:
        raise DataError(f"{path}: line 1: expected a word2vec header '<count> <dim>', got {line[:80]!r}")
    return int(parts[0]), int(parts[1])


def _text_chunks(f, path: Path, n: int, d: int, limit: int) -> Iterator[tuple[list[str], np.ndarray]]:
    tokens: list[str] = []
    values: list[list[str]] = []
    first = 2
    for lineno, raw in enumerate(f, start=2):
        if lineno - 1 > limit:
            break
        try:
            line = raw.decode("utf-8").rstrip("\r\n").rstrip(" ")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: line {lineno}: invalid UTF-8 ({e.reason})") from None
        parts = line.split(" ")
        if len(parts) != d + 1 or not parts[0]:
            raise DataError(f"{path}: line {lineno}: expected a token and {d} values, got {len(parts) - 1} "
                            f"value(s): {line[:60]!r}")
        tokens.append(parts[0])
        values.append(parts[1:])
        if len(tokens) == _CHUNK:
            yield tokens, _floats(values, path, first)
            tokens, values, first = [], [], lineno + 1
    if tokens:
        yield tokens, _floats(values, path, first)


def _floats(values: list[list[str]], path: Path, first_line: int) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float32)
    except ValueError:
        for i, row in enumerate(values):
            try:
                np.array(row, dtype=np.float32)
            except ValueError:
                raise DataError(f"{path}: line {first_line + i}: a value is not a number: {row[:5]}") from None
        raise


def _binary_chunks(f, path: Path, n: int, d: int, limit: int) -> Iterator[tuple[list[str], np.ndarray]]:
    width, buf, pos = 4 * d, b"", 0
    tokens: list[str] = []
    rows: list[np.ndarray] = []
    for i in range(min(n, limit)):
        while True:
            sp = buf.find(b" ", pos)
            if sp >= 0 and len(buf) >= sp + 1 + width:
                break
            more = f.read(1 << 22)
            if not more:
                raise DataError(f"{path}: vector {i + 1} of {n}: file ends early (truncated binary word2vec)")
            buf, pos = buf[pos:] + more, 0
        try:
            tokens.append(buf[pos:sp].lstrip(b"\n").decode("utf-8"))
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: vector {i + 1}: token is not UTF-8 ({e.reason})") from None
        rows.append(np.frombuffer(buf, dtype="<f4", count=d, offset=sp + 1))
        pos = sp + 1 + width
        if len(tokens) == _CHUNK:
            yield tokens, np.stack(rows).astype(np.float32)
            tokens, rows = [], []
    if tokens:
        yield tokens, np.stack(rows).astype(np.float32)


def read_word2vec(path: Path, fmt: str = "auto", limit: int | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """Chunks ``(tokens, vectors [m, d])`` of a word2vec file (text or binary, optionally gzipped).

    ``fmt="auto"``: binary for a ``.bin`` / ``.bin.gz`` name, text otherwise. Malformed input raises a
    DataError naming the file and line (text) or vector number (binary); so does a count below the header's.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"word-vector file not found: {path}")
    if fmt == "auto":
        fmt = "binary" if ".bin" in [s.lower() for s in path.suffixes] else "text"
    limit = limit if limit is not None else 1 << 62
    with _open(path) as f:
        n, d = _header(f.readline(), path)
        seen = 0
        chunks = _binary_chunks(f, path, n, d, limit) if fmt == "binary" else _text_chunks(f, path, n, d, limit)
        for tokens, vectors in chunks:
            seen += len(tokens)
            if seen > n:
                raise DataError(f"{path}: line {n + 2}: more vectors than the header's count {n}")
            yield tokens, vectors
    if seen < min(n, limit):
        raise DataError(f"{path}: the header says {n} vectors but the file has {seen}")


_SCRIPT_FIX = {("jpn", "Hani"): "Jpan", ("kor", "Hani"): "Hang"}


def _word_script(form: str, iso: str) -> str | None:
    from langadapt.core.languages import text_script

    s = "Latn" if form.isascii() and any(c.isalpha() for c in form) else text_script(form)
    if s == "Zyyy":
        return None
    if s in ("Hira", "Kana"):
        return "Jpan"
    return _SCRIPT_FIX.get((iso, s), s)


@WORD_VECTOR_KINDS.register("colexnet")
class ColexNet(WordVectorKind):
    """ColexNet+ vectors from a local word2vec file (``path``) or a file of a Hugging Face hub repo
    (``repo_id`` + ``filename``, ``revision``, ``repo_type``, ``cache_dir``); ``sha256`` checked before
    reading; ``languages`` keeps only those ISO codes (``iso`` or ``iso_Script``); ``max_words`` reads only
    the first n vectors (OFA's ``max_n_word_vectors``); ``unprefixed_lang`` is the language of tokens
    without ``iso:`` prefix (ColexNet+: English)."""

    name = "colexnet"
    KEYS = {"path": None, "repo_id": None, "filename": None, "revision": "main", "repo_type": "model",
            "cache_dir": None, "sha256": None, "format": "auto", "unprefixed_lang": "eng",
            "boundary_marker": "$", "languages": None, "max_words": None}  # fmt: skip

    def check(self) -> None:
        hub = self.cfg["repo_id"] is not None or self.cfg["filename"] is not None
        if (self.cfg["path"] is not None) == hub:
            raise ConfigError(f"{self.where}: give either 'path' (a local file) or 'repo_id' + 'filename'")
        if hub and not (self.cfg["repo_id"] and self.cfg["filename"]):
            raise ConfigError(f"{self.where}: a hub file needs both 'repo_id' and 'filename'")
        if self.cfg["format"] not in ("auto", "text", "binary"):
            raise ConfigError(f"{self.where}.format: expected auto, text or binary, got {self.cfg['format']!r}")
        self._int("max_words", optional=True)
        iso_filter(self.cfg["languages"])

    def input_files(self) -> list[str]:
        """The local file when it exists (an absent one is reported by the preflight, not the DAG)."""
        path = self.cfg["path"]
        return [str(path)] if path is not None and Path(path).is_file() else []

    def local_files(self) -> list[str]:
        return [str(self.cfg["path"])] if self.cfg["path"] is not None else []

    def needs(self) -> list[Need]:
        if self.cfg["repo_id"] is None:
            return []
        remote = Remote(str(self.cfg["repo_type"]), str(self.cfg["repo_id"]), str(self.cfg["revision"]))
        return [Need(remote, (str(self.cfg["filename"]),))]

    def fetch(self) -> Path:
        from langadapt.data.sources import check_sha256

        if self.cfg["path"] is not None:
            path = Path(self.cfg["path"])
        else:
            from langadapt.data.hub import hub_file

            path = hub_file(self.cfg["repo_id"], self.cfg["filename"], str(self.cfg["revision"]), self.cfg["cache_dir"],
                            f"{self.where}: {self.cfg['repo_id']}/{self.cfg['filename']}", self.cfg["repo_type"])
        if not path.is_file():
            raise DataError(f"{self.where}: word-vector file not found: {path}")
        if self.cfg["sha256"]:
            check_sha256(path, str(self.cfg["sha256"]))
        return path

    def build(self, corpora: Mapping[str, Path], threads: int = 1):
        path, keep = self.fetch(), iso_filter(self.cfg["languages"])
        marker, default = self.cfg["boundary_marker"], str(self.cfg["unprefixed_lang"])
        words, isos, kept = [], [], []
        every = Every(30.0)
        for tokens, vectors in read_word2vec(path, self.cfg["format"], self.cfg["max_words"]):
            if every.due():
                log.info("%s: %s vectors read, %s kept, elapsed %s", self.where, f"{sum(map(len, kept)):,}",
                         f"{len(words):,}", clock(every.elapsed))
            mask = np.zeros(len(tokens), dtype=bool)
            for i, tok in enumerate(tokens):
                m = _PREFIX.fullmatch(tok)
                iso, word = (m.group(1), m.group(2)) if m else (default, tok)
                if keep is None or lang_iso(iso) in keep:
                    mask[i] = True
                    words.append(word)
                    isos.append(iso)
            kept.append(vectors[mask])
        if not words:
            raise DataError(f"{self.where}: {path} has no vector of the languages {self.cfg['languages']}")
        scripts = [None if "_" in iso else _word_script(surface_form(w, marker).strip(), iso)
                   for w, iso in zip(words, isos, strict=True)]
        majority: dict[str, Counter[str]] = {}
        for iso, s in zip(isos, scripts, strict=True):
            if s is not None:
                majority.setdefault(iso, Counter())[s] += 1
        langs = [iso if "_" in iso else f"{iso}_{s or (majority[iso].most_common(1)[0][0] if iso in majority else 'Zyyy')}"
                 for iso, s in zip(isos, scripts, strict=True)]
        n_langs = len(set(isos))
        log.info("%s: %d vectors of %d languages from %s", self.where, len(words), n_langs, path)
        return words, langs, np.concatenate(kept), {"source": str(path), "languages": n_langs,
                                                    "boundary_marker": marker}


# -------------------------------------------------------------------------------------- bible_aligned
def verse_words(text: str, no_space: bool) -> set[str]:
    """The word types of one verse: lower-cased runs of letters/marks/digits; character bigrams of each
    run when the script is written without spaces (a one-character run stays itself)."""
    import regex

    out: set[str] = set()
    for run in regex.findall(r"[\p{L}\p{M}\p{N}]+", text.lower()):
        if no_space and len(run) > 1:
            out.update(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.add(run)
    return out


def verse_incidence(texts: Mapping[str, tuple[Sequence[int], Sequence[str]]], min_count: int,
                    max_words: int | None) -> tuple[list[str], list[str], np.ndarray, np.ndarray, int]:
    """(words, langs, rows, cols, n_verses): the binary words x verses incidence of every language; a word is
    kept when it occurs in >= `min_count` verses, the `max_words` most frequent per language."""
    from langadapt.core.languages import parse_lang
    from langadapt.data.filters import NO_SPACE_SCRIPTS

    col_of: dict[int, int] = {}
    words: list[str] = []
    langs: list[str] = []
    rows: list[int] = []
    cols: list[int] = []
    t0 = time.monotonic()
    for i, (lang, (verse_ids, lines)) in enumerate(texts.items(), 1):
        log_items("word types counted", i, len(texts), t0, log, lang)
        no_space = parse_lang(lang).script in NO_SPACE_SCRIPTS
        docs = [(col_of.setdefault(int(v), len(col_of)), verse_words(t, no_space))
                for v, t in zip(verse_ids, lines, strict=True)]
        df = Counter(w for _, ws in docs for w in ws)
        vocab = sorted((w for w, c in df.items() if c >= min_count), key=lambda w: (-df[w], w))[:max_words]
        index = {w: len(words) + i for i, w in enumerate(vocab)}
        words.extend(vocab)
        langs.extend([lang] * len(vocab))
        for col, ws in docs:
            for w in ws:
                if (r := index.get(w)) is not None:
                    rows.append(r)
                    cols.append(col)
        log.info("%s: %d verses, %d word types, %d kept (min_count %d)", lang, len(docs), len(df), len(vocab),
                 min_count)
    key = np.unique(np.asarray(rows, dtype=np.int64) * max(len(col_of), 1) + np.asarray(cols, dtype=np.int64))
    return words, langs, key // max(len(col_of), 1), key % max(len(col_of), 1), len(col_of)


def ppmi_svd(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], dim: int, smoothing: float = 0.75,
             eigenvalue_weight: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Rows ``U_k S_k^p`` (L2-normalized) of the truncated SVD of the PPMI matrix of a binary incidence.

    Returns (vectors [n_kept, k], indices of the kept rows: those with a positive PPMI entry, info).
    Exact SVD for small matrices, randomized (`torch.svd_lowrank`, seeded) otherwise.
    """
    import torch

    n_rows, n_cols = shape
    r = np.bincount(rows, minlength=n_rows).astype(np.float64)
    c = np.bincount(cols, minlength=n_cols).astype(np.float64) ** smoothing
    pmi = -np.log(r[rows]) - np.log(c[cols] / c.sum())  # log p(w,v) / (p(w) p_a(v)), p(w,v) = 1/nnz
    pos = pmi > 0
    keep_rows = np.unique(rows[pos])
    remap = np.full(n_rows, -1, dtype=np.int64)
    remap[keep_rows] = np.arange(len(keep_rows))
    m, k = len(keep_rows), min(dim, len(keep_rows), n_cols)
    if k < 1:
        raise DataError(f"word vectors: no word has a positive PPMI with any verse ({n_rows} words)")
    idx = torch.from_numpy(np.stack([remap[rows[pos]], cols[pos]]))
    a = torch.sparse_coo_tensor(idx, torch.from_numpy(pmi[pos].astype(np.float32)), (m, n_cols),
                                check_invariants=True).coalesce()
    if m * n_cols <= 25_000_000:
        u, s, _ = torch.linalg.svd(a.to_dense(), full_matrices=False)
        method = "exact"
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            u, s, _ = torch.svd_lowrank(a, q=min(k + 20, m, n_cols), niter=6)
        method = "randomized"
    u, s = u[:, :k], s[:k]
    sign = torch.sign(u.gather(0, u.abs().argmax(0, keepdim=True)))  # deterministic signs
    vec = u * sign * s.clamp_min(0) ** eigenvalue_weight
    vec = vec / vec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    info = {"svd": method, "requested_dim": dim, "nonzeros": int(pos.sum()), "dropped_words": n_rows - m}
    return vec.numpy().astype(np.float32), keep_rows, info


@WORD_VECTOR_KINDS.register("bible_aligned")
class BibleAligned(WordVectorKind):
    """Aligned vectors from the verse-aligned corpora (``languages``: default all of the config's)."""

    name = "bible_aligned"
    KEYS = {
        "languages": None,
        "dim": 200,  # the dimension of the ColexNet+ vectors OFA uses (ColexNet train script: emb_dim = 200)
        "min_count": 2,  # verses a word must occur in (ColexNet processing_ngrams.py: min_threshold = 2)
        "max_words": 50_000,  # most frequent words kept per language
        "split": "train",  # never dev/test verses (no leakage into evaluation)
        "context_smoothing": 0.75,  # Levy, Goldberg & Dagan 2015 (cds)
        "eigenvalue_weight": 0.5,  # Levy, Goldberg & Dagan 2015 (eig = 0.5)
        "seed": 0,
    }

    def check(self) -> None:
        from langadapt.core.languages import parse_lang

        self._int("dim")
        self._int("min_count")
        self._int("max_words", optional=True)
        self._int("seed", lo=0)
        if self.cfg["split"] not in ("train", "dev", "test"):
            raise ConfigError(f"{self.where}.split: expected train, dev or test, got {self.cfg['split']!r}")
        for key in ("context_smoothing", "eigenvalue_weight"):
            check_number(self.cfg[key], f"{self.where}.{key}", 0, 1)
        langs = self.cfg["languages"]
        if langs is not None:
            if isinstance(langs, str) or not langs:
                raise ConfigError(f"{self.where}.languages: expected a non-empty list, got {langs!r}")
            for i, code in enumerate(langs):
                parse_lang(code, where=f"{self.where}.languages[{i}]")

    def corpus_languages(self, languages: Sequence[str]) -> list[str]:
        langs = list(self.cfg["languages"] or languages)
        if missing := [x for x in langs if x not in languages]:
            raise ConfigError(f"{self.where}.languages: {missing} not in the config's languages")
        return langs

    def build(self, corpora: Mapping[str, Path], threads: int = 1):
        from langadapt.data.corpus import load_corpus

        if not corpora:
            raise DataError(f"{self.where}: bible_aligned needs the corpora of its languages")
        texts = {}
        for lang, path in corpora.items():
            table = load_corpus(path, split=self.cfg["split"])
            if table.num_rows == 0:
                raise DataError(f"{path}: no {self.cfg['split']} verses for {self.where}")
            texts[lang] = (table.column("verse_id").to_pylist(), table.column("text").to_pylist())
        words, langs, rows, cols, n_cols = verse_incidence(texts, self.cfg["min_count"], self.cfg["max_words"])
        if not words:
            raise DataError(f"{self.where}: no word occurs in {self.cfg['min_count']} verses")
        vectors, kept, info = ppmi_svd(rows, cols, (len(words), n_cols), self.cfg["dim"],
                                       self.cfg["context_smoothing"], self.cfg["eigenvalue_weight"], self.cfg["seed"])
        if vectors.shape[1] < self.cfg["dim"]:
            log.warning("%s: dimension %d instead of %d (%d words, %d verses)", self.where, vectors.shape[1],
                        self.cfg["dim"], len(kept), n_cols)
        return ([words[i] for i in kept], [langs[i] for i in kept], vectors,
                {"languages": list(corpora), "verses": n_cols, **info})
