"""The init chain: run the configured methods in precedence order over a replaced or extended vocabulary
and save the initialized model (the ``init`` rule). Methods and their interface: `langadapt.vocab.base`."""

from __future__ import annotations

import inspect
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import langadapt.vocab.methods  # noqa: F401  (registers every init method)
from langadapt.core.atomic import atomic_dir
from langadapt.core.errors import ConfigError, DataError
from langadapt.models.card import write_provenance
from langadapt.models.tokenization import extend_tokenizer
from langadapt.vocab.base import (
    INIT_METHODS,
    VOCAB_MODES,
    InitContext,
    InitResources,
    normalize_assignment,
    overlap_fraction,
    special_copies,
    special_roles,
)
from langadapt.vocab.spec import NEEDS, parse_init

log = logging.getLogger(__name__)


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


def assign_embeddings(
    ctx: InitContext,
    methods: list[str],
    seed: int = 0,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    fixed: Mapping[int, int] | None = None,
    assigned_by: dict[str, list[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, int]]:
    """Run the method chain; return (target embeddings [V_tgt, d], source id per target id or -1, counts).

    `fixed` (``{target id: source id}``) rows are copied from the source *before* the chain runs and are
    never offered to a method (vocabulary extension keeps every source row this way); `counts` covers the
    chain only. Target ids unassigned at the end keep NaN rows (the caller decides whether that is an error).
    `assigned_by`, when given, is filled with ``{method: target ids it assigned}``.
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
        ids, rows, src = normalize_assignment(result, name, ctx, unassigned)
        if ids:
            idx = torch.tensor(ids, dtype=torch.long)
            emb[idx] = rows
            src_of[idx] = torch.tensor(src, dtype=torch.long)
        unassigned.difference_update(ids)
        counts[name] = len(ids)
        if assigned_by is not None:
            assigned_by[name] = ids
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
        diagnostics: also write ``pca.png`` (`langadapt.vocab.diagnostics.pca_figure`: source and
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
        share of the new tokenizer's non-special pieces that were already source pieces. A chain without
        ``ident`` copies the special tokens by role first and counts them as ``specials``.

    Raises:
        ConfigError: unknown method, parameter or `vocab`; with ``extend``, a tokenizer that is not Unigram.
        DataError: the chain leaves target ids unassigned, or ``["ident"]`` alone finds no shared piece.
    """
    resources = resources or InitResources()
    methods, params = _resolve_methods(methods, params, resources)
    if vocab not in VOCAB_MODES:
        raise ConfigError(f"embedding init: unknown vocab mode {vocab!r}; known: {', '.join(VOCAB_MODES)}")
    source_model_dir, target_tokenizer_dir = Path(source_model_dir), Path(target_tokenizer_dir)
    src = _load_source(source_model_dir, target_tokenizer_dir, vocab)
    ctx = InitContext(
        source_emb=src.emb,
        source_vocab=dict(src.tokenizer.get_vocab()),
        target_vocab=dict(src.target_tokenizer.get_vocab()),
        source_specials=special_roles(src.tokenizer),
        target_specials=special_roles(src.target_tokenizer),
        source_tokenizer=src.tokenizer,
        target_tokenizer=src.target_tokenizer,
        resources=resources,
    )
    fixed, overlap = _kept_rows(ctx, src, methods, source_model_dir, target_tokenizer_dir)
    specials = special_copies(ctx, methods, fixed)
    by_method: dict[str, list[int]] = {}
    emb, src_of, counts = assign_embeddings(ctx, methods, seed, params, fixed={**(fixed or {}), **specials},
                                            assigned_by=by_method)  # fmt: skip
    _check_complete(emb, ctx, methods, target_tokenizer_dir)
    copied = src_of >= 0
    bias, out_emb = _decoder_rows(emb, src_of, src)
    factorization = None
    if factorize is not None:  # E = C @ P on the source primitives (langadapt.models.factorized)
        from langadapt.models.factorized import factorize_init

        if out_emb is not None:
            raise ConfigError("embedding init: 'factorize' needs a model whose decoder is tied to its embeddings")
        # the random fallback is drawn in the source coordinate space (HyperOFA §3.4), not projected
        emb, factorization = factorize_init(src.emb, emb, factorize, random_ids=by_method.get("random"),
                                            stats_rows=ctx.non_special_source_rows(), seed=seed)  # fmt: skip
    _install(src.model, emb, bias, src.target_tokenizer, out_emb)

    stats: dict[str, Any] = {**counts, "total": len(emb), "overlap": overlap}
    if specials:
        stats["specials"] = len(specials)
    if factorization is not None:
        stats["factorize"] = {"dim": factorization.dim, "projection_error": factorization.meta["projection_error"],
                              "random_rows": len(by_method.get("random") or [])}  # fmt: skip
    if ctx.report:
        stats["report"] = ctx.report
    if src.extension is not None:
        stats.update(
            vocab=vocab,
            kept=len(fixed or {}),
            added=len(emb) - len(fixed or {}),
            already_present=src.extension["already_present"],
            skipped_special=src.extension["skipped_special"],
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
        src.model.save_pretrained(str(tmp))
        src.target_tokenizer.save_pretrained(str(tmp))
        if factorization is not None:
            from langadapt.models.factorized import save_factorization

            save_factorization(tmp, factorization.coordinates, factorization.primitives, factorization.meta)
        if diagnostics:
            stats["pca"] = _pca_diagnostics(ctx, emb, copied, tmp / "pca.png", f"init {methods} ({vocab})", seed)
        write_provenance(tmp, prov, final=out_dir)  # langadapt.json + README.md
        (tmp / "init_stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    log.info("initialized %s: %s", out_dir, stats)
    return stats


def _resolve_methods(methods: Sequence[str | Mapping[str, Any]], given: Mapping[str, Any] | None,
                     resources: InitResources) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(method names, per-method parameters) of a recipe's ``init`` list plus `given` parameters; ConfigError
    for an unknown method or parameter and for a method whose resources (`NEEDS`) were not provided."""
    parsed = parse_init(list(methods), where="embedding init") if methods else []
    names = [name for name, _ in parsed]
    params = {name: dict(p) for name, p in parsed if p}
    for name, extra in dict(given or {}).items():
        params[name] = {**params.get(name, {}), **extra}
    _check_config(names, params)
    missing_needs = sorted(
        f"{name} needs {need}" for name in names for need in NEEDS.get(name, ())
        if (need == "texts" and not resources.texts) or (need == "hypernet" and resources.hypernet_dir is None)
        or (need == "word_vectors" and params.get(name, {}).get("word_vectors") not in resources.word_vectors)
    )
    if missing_needs:
        raise ConfigError(f"embedding init: missing inputs: {'; '.join(missing_needs)}")
    return names, params


@dataclass
class _Source:
    """The source MLM with its tokenizer, the target tokenizer (merged with the source one for ``extend``),
    and float32 copies of the source rows the init reads."""

    model: Any
    tokenizer: Any
    target_tokenizer: Any
    extension: dict[str, int] | None  # `extend_tokenizer`'s counts, None for ``replace``
    emb: torch.Tensor  # input embeddings [V_src, d]
    bias: torch.Tensor  # decoder bias [V_src] (zeros without one)
    out: torch.Tensor | None  # the untied decoder's rows, None when it is tied


def _load_source(source_model_dir: Path, target_tokenizer_dir: Path, vocab: str) -> _Source:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

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
    return _Source(model, src_tok, tgt_tok, extension, source_emb, src_bias, source_out)


def _kept_rows(ctx: InitContext, src: _Source, methods: list[str], source_model_dir: Path,
               target_tokenizer_dir: Path) -> tuple[dict[int, int] | None, float]:
    """(source rows kept as they are — every one with ``extend``, none with ``replace`` —, overlap)."""
    if src.extension is None:
        overlap = overlap_fraction(ctx)
        if methods == ["ident"] and overlap == 0.0:
            raise DataError(
                f"embedding init 'ident': the target tokenizer {target_tokenizer_dir} shares no piece with the "
                f"source tokenizer {source_model_dir}; add a fallback method, e.g. ['ident', 'random']"
            )
        return None, overlap
    n_kept = src.extension["source_size"]
    if len(src.emb) < n_kept:
        raise DataError(
            f"embedding init: {source_model_dir} has {len(src.emb)} embedding rows but its tokenizer "
            f"{n_kept} pieces"
        )
    n_new = src.extension["added"] + src.extension["already_present"]
    return {i: i for i in range(n_kept)}, (src.extension["already_present"] / n_new if n_new else 0.0)


def _check_complete(emb: torch.Tensor, ctx: InitContext, methods: list[str], target_tokenizer_dir: Path) -> None:
    missing = torch.isnan(emb).any(1).nonzero().flatten().tolist()
    if missing:
        inv = {i: p for p, i in ctx.target_vocab.items()}
        examples = [inv.get(i, f"#{i}") for i in missing[:5]]
        raise DataError(
            f"embedding init methods {methods} leave {len(missing)} of {len(emb)} target ids of "
            f"{target_tokenizer_dir} unassigned (e.g. {examples}); end the list with a method that assigns "
            f"every id, such as 'random'"
        )


def _decoder_rows(emb: torch.Tensor, src_of: torch.Tensor, src: _Source) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(decoder bias, untied decoder rows or None): copied pieces take their source row's, the others the
    mean source bias and their input row."""
    copied = src_of >= 0
    bias = torch.full((len(emb),), float(src.bias.mean()))
    bias[copied] = src.bias[src_of[copied]]
    out_emb = None
    if src.out is not None:
        out_emb = emb.clone()
        out_emb[copied] = src.out[src_of[copied]]
    return bias, out_emb


def _pca_diagnostics(ctx: InitContext, emb: torch.Tensor, copied: torch.Tensor, path: Path, title: str,
                     seed: int) -> dict[str, Any]:
    """`pca_figure` of the source and the initialized embeddings; a failure is logged, not raised."""
    try:
        from langadapt.vocab.diagnostics import pca_figure

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


def init_job(spec: dict, model_dir: Path, tokenizer_dir: Path, out_dir: Path, provenance: dict, *,
             texts: dict[str, Path] | None = None, word_vectors: Sequence[Path] = (),
             hypernet_dir: Path | None = None, threads: int = 1, log: logging.Logger = log) -> dict:
    """The `init_model` rule: replace/extend the vocabulary and initialize embeddings with the recipe's
    method chain; `texts` (lang -> corpus), `word_vectors` (directories named like their config entries)
    and `hypernet_dir` are given when a method needs them."""
    from langadapt.data.corpus import corpus_texts_by_lang

    resources = InitResources(
        texts=corpus_texts_by_lang(texts, split="train") if texts else None,
        word_vectors={Path(p).name: Path(p) for p in word_vectors},
        hypernet_dir=Path(hypernet_dir) if hypernet_dir else None,
        threads=threads,
    )
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as scratch:
        resources.workdir = Path(scratch)
        stats = initialize_embeddings(model_dir, tokenizer_dir, spec["init"], out_dir, seed=spec.get("seed", 0),
                                      provenance=provenance, vocab=spec.get("vocab", "replace"),
                                      resources=resources, diagnostics=True,  # + pca.png
                                      factorize=spec.get("factorize"))  # + factorized.safetensors
    log.info("init stats: %s", stats)
    return stats
