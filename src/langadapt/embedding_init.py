"""Embedding initialization for a replaced or extended vocabulary (vocabulary specialization, Glot500,
HyperOFA baselines).

A source MLM keeps its transformer body; its embedding matrix ``[V_src, d]`` is replaced by one for the
target tokenizer ``[V_tgt, d]`` whose rows come from a chain of *init methods* applied in the configured
order. Each method sees only the target ids that are still unassigned, so earlier methods take precedence
(vocabulary paper, Sec. 3.2: "identity takes precedence"); e.g. ``["ident", "random"]``.

With ``vocab="extend"`` (Glot500 / LangSAMP Sec. 4.1) the target tokenizer is the source tokenizer with
the new pieces appended (`langadapt.tokenization.extend_tokenizer`): the source rows are copied first,
bit for bit, and the chain only initializes the appended ids.

A method is a function registered in `INIT_METHODS`::

    @INIT_METHODS.register("name")
    def name(ctx: InitContext, unassigned: set[int], rng: torch.Generator, **params) -> Assignment: ...

It returns, for the target ids it assigns (a subset of `unassigned`), either ``{target_id: row}`` where
``row`` is a ``[d]`` tensor or an ``int`` (= copy that *source* row, also used for the MLM decoder bias), or
a pair ``(ids [n] LongTensor, rows [n, d] Tensor)``. ``params`` are the method's config parameters.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from langadapt.atomic import atomic_dir
from langadapt.errors import ConfigError, DataError
from langadapt.init_methods import MODULES, NEEDS, parse_init
from langadapt.registry import Registry
from langadapt.tokenization import extend_tokenizer

log = logging.getLogger(__name__)

Assignment = Mapping[int, "torch.Tensor | int"] | tuple[torch.Tensor, torch.Tensor]
InitMethod = Callable[..., Assignment]
INIT_METHODS: Registry[InitMethod] = Registry("embedding init method")

#: How a recipe's new tokenizer relates to the source vocabulary (recipe key ``vocab``).
VOCAB_MODES = ("replace", "extend")

#: Special-token roles, in the order in which they claim a target id (``<s>`` is both bos and cls).
ROLES = ("cls", "sep", "pad", "unk", "mask", "bos", "eos")
_ROLE_FALLBACK = {"bos": "cls", "cls": "bos", "eos": "sep", "sep": "eos"}


def special_roles(tokenizer) -> dict[str, int]:
    """``{role: id}`` from a tokenizer's special-token attributes (``bos_token_id``, ...).

    A missing bos/eos falls back to cls/sep and vice versa, so that XLM-R's ``<s>``/``</s>`` and BERT's
    ``[CLS]``/``[SEP]`` correspond.
    """
    ids = {r: getattr(tokenizer, f"{r}_token_id", None) for r in ROLES}
    for role, other in _ROLE_FALLBACK.items():
        if ids[role] is None:
            ids[role] = ids[other]
    return {r: int(i) for r, i in ids.items() if i is not None}


@dataclass
class InitResources:
    """Inputs some methods need (`langadapt.init_methods.NEEDS`), provided by the init rule."""

    texts: Mapping[str, Sequence[str]] | None = None  # lang -> train sentences of the target languages
    word_vectors: Mapping[str, Path] = field(default_factory=dict)  # word_vectors entry name -> directory
    hypernet_dir: Path | None = None  # trained hypernetwork of the base model
    workdir: Path | None = None  # scratch space (removed after the init)
    threads: int = 1


@dataclass
class InitContext:
    """What every init method may read: source embeddings, both vocabularies and special-token roles,
    the tokenizers themselves, the resources of :class:`InitResources`, and a `report` dict in which a
    method may leave diagnostics (``report[method] = {...}``, written to ``init_stats.json``)."""

    source_emb: torch.Tensor  # [V_src, d], float32
    source_vocab: dict[str, int]
    target_vocab: dict[str, int]
    source_specials: dict[str, int] = field(default_factory=dict)  # role -> source id
    target_specials: dict[str, int] = field(default_factory=dict)  # role -> target id
    source_tokenizer: Any = None
    target_tokenizer: Any = None
    resources: InitResources = field(default_factory=InitResources)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.source_emb.shape[1])

    def non_special_source_rows(self) -> torch.Tensor:
        """Source embedding rows without the special tokens (for distribution statistics)."""
        keep = torch.ones(self.source_emb.shape[0], dtype=torch.bool)
        keep[list(set(self.source_specials.values()))] = False
        return self.source_emb[keep] if keep.any() else self.source_emb


def ident_pairs(ctx: InitContext) -> dict[int, int]:
    """``{target id: source id}`` for REINIT-IDENT: special tokens by role, other pieces by identical string.

    Source special tokens are never matched by string (only by role).
    """
    pairs: dict[int, int] = {}
    for role, t_id in ctx.target_specials.items():
        if role in ctx.source_specials and t_id not in pairs:
            pairs[t_id] = ctx.source_specials[role]
    src_special = set(ctx.source_specials.values())
    tgt_special = set(ctx.target_specials.values())
    for piece, t_id in ctx.target_vocab.items():
        s_id = ctx.source_vocab.get(piece)
        if t_id not in tgt_special and s_id is not None and s_id not in src_special:
            pairs[t_id] = s_id
    return pairs


def overlap_fraction(ctx: InitContext) -> float:
    """Share of the target's non-special pieces whose string is a (non-special) source piece."""
    tgt_special = set(ctx.target_specials.values())
    n = sum(1 for i in ctx.target_vocab.values() if i not in tgt_special)
    n_shared = sum(1 for t in ident_pairs(ctx) if t not in tgt_special)
    return n_shared / n if n else 0.0


@INIT_METHODS.register("ident")
def ident(ctx: InitContext, unassigned: set[int], rng: torch.Generator, fuzzy: bool = False) -> dict[int, int]:
    """REINIT-IDENT (vocabulary paper, Sec. 3.2): copy the source row of identical pieces and of the
    special tokens of the same role (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>``).

    ``fuzzy=True`` (an extension, not in the paper): a target piece without an identical source piece copies
    a source piece equal up to case and the leading ``▁`` (`fuzzy_ident_pairs`); exact matches win, and
    ``report["ident"]`` counts ``exact`` and ``fuzzy`` matches."""
    if not isinstance(fuzzy, bool):
        raise ConfigError(f"init method 'ident': fuzzy must be true or false, got {fuzzy!r}")
    pairs = {t: s for t, s in ident_pairs(ctx).items() if t in unassigned}
    if fuzzy:
        extra = {t: s for t, s in fuzzy_ident_pairs(ctx).items() if t in unassigned and t not in pairs}
        ctx.report["ident"] = {"exact": len(pairs), "fuzzy": len(extra)}
        pairs.update(extra)
    return pairs


def fuzzy_ident_pairs(ctx: InitContext) -> dict[int, int]:
    """``{target id: source id}`` for the non-special target pieces *without* an identical source piece whose
    string equals a non-special source piece's up to case and a leading ``▁`` (``▁Haus`` ~ ``haus``). Among
    several candidates the one with the same ``▁`` status, then the same case, then the lowest id wins."""
    def key(p: str) -> str:
        return p.removeprefix("▁").casefold()

    src_special = set(ctx.source_specials.values())
    tgt_special = set(ctx.target_specials.values())
    candidates: dict[str, list[tuple[str, int]]] = {}
    for piece, s_id in ctx.source_vocab.items():
        if s_id not in src_special and key(piece):
            candidates.setdefault(key(piece), []).append((piece, s_id))
    pairs: dict[int, int] = {}
    for piece, t_id in ctx.target_vocab.items():
        if t_id in tgt_special or piece in ctx.source_vocab or key(piece) not in candidates:
            continue
        initial = piece.startswith("▁")
        bare = piece.removeprefix("▁")
        _, s_id = min(
            candidates[key(piece)],
            key=lambda c: (c[0].startswith("▁") != initial, c[0].removeprefix("▁") != bare, c[1]),
        )
        pairs[t_id] = s_id
    return pairs


@INIT_METHODS.register("random")
def random_source_stats(ctx: InitContext, unassigned: set[int], rng: torch.Generator):
    """Per-dimension normal with the mean and standard deviation of the source embeddings (special tokens
    excluded): the random baseline of OFA and HyperOFA (HyperOFA Sec. 3.5 "N(E[F^s], Var[F^s])", Sec. 4.3
    "Gaussian distribution with mean and standard deviations of the source embeddings")."""
    ids = torch.tensor(sorted(unassigned), dtype=torch.long)
    rows = ctx.non_special_source_rows()
    mean, std = rows.mean(0), rows.std(0) if rows.shape[0] > 1 else torch.zeros(ctx.dim)
    noise = torch.randn(len(ids), ctx.dim, generator=rng)
    return ids, mean + std * noise


@INIT_METHODS.register("random_normal")
def random_normal(
    ctx: InitContext, unassigned: set[int], rng: torch.Generator, mean: float = 0.0, std: float = 1.0
):
    """Isotropic normal ``N(mean, std^2)``; the default is the vocabulary paper's REINIT-RANDOM, "a Standard
    Normal Distribution about the origin" (Sec. 3.2, "Random Re-initialization")."""
    if std < 0:
        raise ConfigError(f"random_normal: std must be >= 0, got {std}")
    ids = torch.tensor(sorted(unassigned), dtype=torch.long)
    return ids, mean + std * torch.randn(len(ids), ctx.dim, generator=rng)


def _check_config(methods: list[str], params: Mapping[str, Mapping[str, Any]]) -> None:
    if not methods:
        raise ConfigError("embedding init: the list of methods is empty (e.g. ['ident', 'random'])")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"embedding init: method listed twice in {methods}")
    for name in methods:
        INIT_METHODS.get(name)  # ConfigError listing the known methods
    for name, p in params.items():
        if name not in methods:
            raise ConfigError(f"embedding init: params given for {name!r}, which is not in methods {methods}")
        sig = inspect.signature(INIT_METHODS.get(name))
        accepted = [
            n for n in list(sig.parameters)[3:] if sig.parameters[n].kind is not sig.parameters[n].VAR_KEYWORD
        ]
        takes_any = any(q.kind is q.VAR_KEYWORD for q in sig.parameters.values())
        unknown = sorted(set(p) - set(accepted)) if not takes_any else []
        if unknown:
            raise ConfigError(
                f"embedding init method {name!r}: unknown parameter(s) {unknown}; accepted: {accepted or 'none'}"
            )


def _normalize(
    result: Assignment, name: str, ctx: InitContext, unassigned: set[int]
) -> tuple[list[int], torch.Tensor, list[int]]:
    """(target ids, rows [n, d], source ids or -1) from any of the allowed return forms of a method."""
    d = ctx.dim
    if isinstance(result, tuple):
        ids_t, rows = result
        ids = [int(i) for i in ids_t]
        rows = torch.as_tensor(rows, dtype=torch.float32).reshape(len(ids), d)
        src = [-1] * len(ids)
    else:
        ids = [int(i) for i in result]
        src = [v if isinstance(v, int) else -1 for v in result.values()]
        rows = ctx.source_emb[torch.tensor([max(v, 0) for v in src], dtype=torch.long)].reshape(len(ids), d)
        for k, v in enumerate(result.values()):
            if not isinstance(v, int):
                rows[k] = torch.as_tensor(v, dtype=torch.float32)
    bad = [i for i in ids if i not in unassigned]
    if bad or len(set(ids)) != len(ids):
        raise RuntimeError(
            f"init method {name!r} assigned ids that are not (or no longer) unassigned: {bad[:10]}"
        )
    return ids, rows, src


def assign_embeddings(
    ctx: InitContext,
    methods: list[str],
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    fixed: Mapping[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """Run the method chain; return (target embeddings [V_tgt, d], source id per target id or -1, counts).

    `fixed` (``{target id: source id}``) rows are copied from the source *before* the chain runs and are
    never offered to a method (vocabulary extension keeps every source row this way); `counts` covers the
    chain only. Target ids unassigned at the end keep NaN rows (the caller decides whether that is an error).
    """
    params = dict(params or {})
    _check_config(methods, params)
    n_tgt = max(ctx.target_vocab.values()) + 1
    emb = torch.full((n_tgt, ctx.dim), float("nan"))
    src_of = torch.full((n_tgt,), -1, dtype=torch.long)
    unassigned = set(range(n_tgt))
    if fixed:
        t_ids = torch.tensor(list(fixed), dtype=torch.long)
        s_ids = torch.tensor(list(fixed.values()), dtype=torch.long)
        emb[t_ids] = ctx.source_emb[s_ids]
        src_of[t_ids] = s_ids
        unassigned.difference_update(fixed)
    rng = torch.Generator().manual_seed(seed)
    counts: dict[str, int] = {}
    for name in methods:
        if not unassigned:
            counts[name] = 0
            continue
        result = INIT_METHODS.get(name)(ctx, set(unassigned), rng, **params.get(name, {}))
        ids, rows, src = _normalize(result, name, ctx, unassigned)
        if ids:
            idx = torch.tensor(ids, dtype=torch.long)
            emb[idx] = rows
            src_of[idx] = torch.tensor(src, dtype=torch.long)
        unassigned.difference_update(ids)
        counts[name] = len(ids)
    return emb, src_of, counts


def initialize_embeddings(
    source_model_dir: Path,
    target_tokenizer_dir: Path,
    methods: Sequence[str | Mapping[str, Any]],
    out_dir: Path,
    seed: int = 0,
    params: dict | None = None,
    provenance: dict | None = None,
    vocab: str = "replace",
    resources: InitResources | None = None,
    diagnostics: bool = False,
    factorize: int | None = None,
) -> dict:
    """Replace or extend a source MLM's vocabulary by a target tokenizer and initialize the new embeddings.

    ``vocab="replace"``: the embedding matrix is replaced by ``[V_tgt, d]`` (rows from `methods`, in
    precedence order). ``vocab="extend"``: the target tokenizer's new pieces are appended to the source
    tokenizer (`extend_tokenizer`); the embedding matrix and the MLM output layer grow to the merged size,
    every source row (input, untied output, decoder bias) is kept bit for bit and only the appended ids
    go through `methods`. In both modes the MLM decoder stays tied if it was (an untied decoder gets the
    source output row of copied pieces and the input row otherwise), and the decoder bias is the source
    bias of the copied row for pieces assigned by copy (kept rows, ``ident``) and the mean source bias
    otherwise (so new pieces start with an average prior logit). Saved atomically to `out_dir` as a model
    directory with the *target* (replace) or *merged* (extend) tokenizer, ``langadapt.json`` (provenance)
    and ``init_stats.json``.

    Args:
        methods: names, or ``{name: {parameters}}`` mappings (the recipe's ``init`` list).
        params: more per-method parameters, e.g. ``{"random_normal": {"std": 0.02}}``.
        vocab: ``replace`` or ``extend`` (`VOCAB_MODES`).
        resources: texts / word vectors / hypernetwork for the methods that need them.
        diagnostics: also write ``pca.png`` (`langadapt.init_methods.diagnostics.pca_figure`: source and
            initialized embeddings in one PCA, by script and word position, vocabulary paper Fig. 1-3) and
            record it as ``stats["pca"]``; a plotting failure only logs a warning (``{"error": ...}``).
        factorize: recipe key ``factorize: k`` (OFA §3, HyperOFA §3.2): the initialized matrix is projected
            onto the top-k primitives of the source embeddings (`langadapt.models.factorized.factorize_init`);
            the model's embeddings become ``C @ P`` and ``factorized.safetensors`` / ``factorized.json``
            (``C``, ``P``) are written beside it; ``stats["factorize"]`` has ``dim`` and ``projection_error``.

    Returns:
        ``{method: n_assigned, ..., "total": V_tgt, "overlap": fraction}`` (`overlap_fraction`); with
        ``extend`` also ``vocab, kept`` (source rows), ``added`` (appended ids; the method counts sum to
        it), ``already_present`` and ``skipped_special`` (new pieces not appended), and ``overlap`` is the
        share of the new tokenizer's non-special pieces that were already source pieces.

    Raises:
        ConfigError: unknown method, parameter or `vocab`; with ``extend``, a tokenizer that is not Unigram.
        DataError: the chain leaves target ids unassigned, or ``["ident"]`` alone finds no shared piece.
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    given = dict(params or {})
    parsed = parse_init(list(methods), where="embedding init") if methods else []
    methods = [name for name, _ in parsed]
    params = {name: dict(p) for name, p in parsed if p}
    for name, extra in given.items():
        params[name] = {**params.get(name, {}), **extra}
    _check_config(methods, params)
    resources = resources or InitResources()
    missing_needs = sorted(
        f"{name} needs {need}" for name in methods for need in NEEDS.get(name, ())
        if (need == "texts" and not resources.texts) or (need == "hypernet" and resources.hypernet_dir is None)
        or (need == "word_vectors" and params.get(name, {}).get("word_vectors") not in resources.word_vectors)
    )
    if missing_needs:
        raise ConfigError(f"embedding init: missing inputs: {'; '.join(missing_needs)}")
    if vocab not in VOCAB_MODES:
        raise ConfigError(f"embedding init: unknown vocab mode {vocab!r}; known: {', '.join(VOCAB_MODES)}")
    source_model_dir, target_tokenizer_dir = Path(source_model_dir), Path(target_tokenizer_dir)
    for d in (source_model_dir, target_tokenizer_dir):
        if not d.is_dir():
            raise DataError(f"embedding init: directory {d} does not exist")
    src_tok = AutoTokenizer.from_pretrained(str(source_model_dir))
    tgt_tok = AutoTokenizer.from_pretrained(str(target_tokenizer_dir))
    extension: dict[str, int] | None = None
    if vocab == "extend":
        tgt_tok, extension = extend_tokenizer(src_tok, tgt_tok)  # ConfigError before the model is loaded
    model = AutoModelForMaskedLM.from_pretrained(str(source_model_dir))
    in_emb = model.get_input_embeddings()
    source_emb = in_emb.weight.detach().float().clone()
    out_layer = model.get_output_embeddings()
    src_bias = getattr(out_layer, "bias", None)
    src_bias = src_bias.detach().float().clone() if src_bias is not None else torch.zeros(len(source_emb))
    untied = (
        out_layer is not None
        and out_layer.weight.data_ptr() != in_emb.weight.data_ptr()
        and not getattr(model.config, "tie_word_embeddings", True)
    )
    source_out = out_layer.weight.detach().float().clone() if untied else None

    ctx = InitContext(
        source_emb=source_emb,
        source_vocab=dict(src_tok.get_vocab()),
        target_vocab=dict(tgt_tok.get_vocab()),
        source_specials=special_roles(src_tok),
        target_specials=special_roles(tgt_tok),
        source_tokenizer=src_tok,
        target_tokenizer=tgt_tok,
        resources=resources,
    )
    fixed: dict[int, int] | None = None
    if extension is not None:
        n_kept = extension["source_size"]
        if len(source_emb) < n_kept:
            raise DataError(
                f"embedding init: {source_model_dir} has {len(source_emb)} embedding rows but its tokenizer "
                f"{n_kept} pieces"
            )
        fixed = {i: i for i in range(n_kept)}
        n_new = extension["added"] + extension["already_present"]
        overlap = extension["already_present"] / n_new if n_new else 0.0
    else:
        overlap = overlap_fraction(ctx)
        if methods == ["ident"] and overlap == 0.0:
            raise DataError(
                f"embedding init 'ident': the target tokenizer {target_tokenizer_dir} shares no piece with the "
                f"source tokenizer {source_model_dir}; add a fallback method, e.g. ['ident', 'random']"
            )
    emb, src_of, counts = assign_embeddings(ctx, methods, seed, params, fixed=fixed)
    missing = torch.isnan(emb).any(1).nonzero().flatten().tolist()
    if missing:
        inv = {i: p for p, i in ctx.target_vocab.items()}
        examples = [inv.get(i, f"#{i}") for i in missing[:5]]
        raise DataError(
            f"embedding init methods {methods} leave {len(missing)} of {len(emb)} target ids of "
            f"{target_tokenizer_dir} unassigned (e.g. {examples}); end the list with a method that assigns "
            f"every id, such as 'random'"
        )
    copied = src_of >= 0
    bias = torch.full((len(emb),), float(src_bias.mean()))
    bias[copied] = src_bias[src_of[copied]]
    out_emb = None
    if source_out is not None:
        out_emb = emb.clone()
        out_emb[copied] = source_out[src_of[copied]]
    factorization = None
    if factorize is not None:  # E = C @ P on the source primitives (langadapt.models.factorized)
        from langadapt.models.factorized import factorize_init

        if out_emb is not None:
            raise ConfigError("embedding init: 'factorize' needs a model whose decoder is tied to its embeddings")
        emb, factorization = factorize_init(source_emb, emb, factorize)
    _install(model, emb, bias, tgt_tok, out_emb)

    stats: dict[str, Any] = {**counts, "total": len(emb), "overlap": overlap}
    if factorization is not None:
        stats["factorize"] = {"dim": factorization.dim, "projection_error": factorization.meta["projection_error"]}
    if ctx.report:
        stats["report"] = ctx.report
    if extension is not None:
        stats.update(
            vocab=vocab,
            kept=len(fixed or {}),
            added=len(emb) - len(fixed or {}),
            already_present=extension["already_present"],
            skipped_special=extension["skipped_special"],
        )
    prov = dict(provenance or {})
    prov.setdefault("stage", "init")
    prov["init"] = {
        "methods": methods,
        "params": params,
        "seed": seed,
        "vocab": vocab,
        "source_model": str(source_model_dir),
        "target_tokenizer": str(target_tokenizer_dir),
        "stats": stats,
    }
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(str(tmp))
        tgt_tok.save_pretrained(str(tmp))
        if factorization is not None:
            from langadapt.models.factorized import save_factorization

            save_factorization(tmp, factorization.coordinates, factorization.primitives, factorization.meta)
        if diagnostics:
            stats["pca"] = _pca_diagnostics(ctx, emb, copied, tmp / "pca.png", f"init {methods} ({vocab})", seed)
        (tmp / "langadapt.json").write_text(json.dumps(prov, indent=2, default=str) + "\n")
        (tmp / "init_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log.info("initialized %s: %s", out_dir, stats)
    return stats


def _pca_diagnostics(ctx: InitContext, emb: torch.Tensor, copied: torch.Tensor, path: Path, title: str,
                     seed: int) -> dict[str, Any]:
    """`pca_figure` of the source and the initialized embeddings; a failure is logged, not raised."""
    try:
        from langadapt.init_methods.diagnostics import pca_figure

        return pca_figure(ctx.source_emb, ctx.source_vocab, ctx.source_specials, emb, ctx.target_vocab,
                          ctx.target_specials, path, copied=copied, title=title, seed=seed)
    except Exception as e:  # noqa: BLE001 - diagnostics must never fail the init job
        log.warning("PCA diagnostics failed (the model is saved without pca.png): %s", e)
        path.unlink(missing_ok=True)
        return {"error": f"{type(e).__name__}: {e}"}


def _install(
    model, emb: torch.Tensor, bias: torch.Tensor, tokenizer, out_emb: torch.Tensor | None = None
) -> None:
    """Resize `model` to the target vocabulary and set embeddings, decoder (tied, or `out_emb` if the model
    does not tie them; `emb` if that is None), bias and special ids."""
    dtype = model.get_input_embeddings().weight.dtype
    model.resize_token_embeddings(len(emb), mean_resizing=False)
    in_emb = model.get_input_embeddings()
    out_layer = model.get_output_embeddings()
    with torch.no_grad():
        in_emb.weight.copy_(emb.to(dtype))
        if out_layer is not None:
            if out_layer.weight.data_ptr() != in_emb.weight.data_ptr():
                if getattr(model.config, "tie_word_embeddings", True):
                    model.tie_weights()
                else:
                    log.warning("source model does not tie input/output embeddings; initializing both")
                    out_layer.weight.copy_((emb if out_emb is None else out_emb).to(dtype))
            if getattr(out_layer, "bias", None) is not None:
                out_layer.bias.copy_(bias.to(out_layer.bias.dtype))
            _sync_head_bias(model, out_layer, bias)
    pad = tokenizer.pad_token_id
    cfg = model.config
    if pad is not None and getattr(cfg, "pad_token_id", None) not in (None, pad):
        if cfg.model_type in ("xlm-roberta", "roberta"):
            log.warning(
                "pad id changes %s -> %s: position ids of %s shift", cfg.pad_token_id, pad, cfg.model_type
            )
    for attr in ("pad", "bos", "eos"):
        tid = getattr(tokenizer, f"{attr}_token_id", None)
        if tid is not None:
            setattr(cfg, f"{attr}_token_id", tid)
    if pad is not None:
        in_emb.padding_idx = pad
        emb_module = getattr(model.base_model, "embeddings", None)
        if emb_module is not None and hasattr(emb_module, "padding_idx"):
            emb_module.padding_idx = pad


def _sync_head_bias(model, out_layer, bias: torch.Tensor) -> None:
    """Set the vocabulary-sized ``bias`` beside the decoder (XLM-R's ``lm_head.bias``, BERT's
    ``predictions.bias``) to `bias`. Transformers ties it to the decoder bias only when the embeddings are
    tied; untied, `resize_token_embeddings` leaves it at the old size and the saved model would not reload."""
    for module in model.modules():
        if not any(child is out_layer for child in module.children()):
            continue
        p = module._parameters.get("bias")
        if p is None or p.dim() != 1 or p is getattr(out_layer, "bias", None):
            continue
        if p.shape[0] == len(bias):
            p.copy_(bias.to(p.dtype))
        else:
            new = torch.nn.Parameter(bias.to(p.dtype).clone(), requires_grad=p.requires_grad)
            module._parameters["bias"] = new


def _register_method_modules() -> None:
    """Import the modules of `langadapt.init_methods` that register more methods."""
    import importlib

    for module in MODULES:
        importlib.import_module(f"langadapt.init_methods.{module}")


_register_method_modules()
