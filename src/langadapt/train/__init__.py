"""Training machinery shared by every trainer, and continued MLM pretraining; each trainer resumable from a
run directory.

- ``langadapt.train.mlm.pretrain``: continued MLM pretraining (LangSAMP §4.1, LAPT); `pretrain_job` is the rule.
- ``langadapt.train.objective``: the MLM objective with LangSAMP language/script embeddings.
- ``langadapt.train.packing``: tokenize + pack corpora into single-language sequences; temperature sampling.
- ``langadapt.train.checkpoint`` / ``langadapt.train.loop``: checkpoints, RNG capture, SIGTERM, the loop.
- ``langadapt.train.settings``: the trainer keys with their paper sources (torch-free).
- ``langadapt.train.distributed`` / ``langadapt.train.launch``: DDP under ``torchrun``.

The realignment trainer builds on these and lives with the rest of realignment
(``langadapt.realign.trainer``). The package itself imports nothing, so ``langadapt.train.settings`` stays
free of torch.
"""
