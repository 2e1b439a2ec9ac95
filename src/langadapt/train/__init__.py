"""Training stages, each resumable from a run directory.

- ``langadapt.train.mlm.pretrain``: continued MLM pretraining (LangSAMP §4.1, LAPT).
- ``langadapt.realign.trainer.realign``: sentence-level contrastive realignment (realignment paper, Eq. 1).
- ``langadapt.train.packing``: tokenize + pack corpora into single-language sequences; temperature sampling.
- ``langadapt.train.checkpoint`` / ``langadapt.train.loop``: checkpoints, RNG capture, SIGTERM, the loop.

Import the stage functions from their modules (``from langadapt.realign.trainer import realign``): the
package itself imports nothing, so ``langadapt.train.packing`` stays free of torch.
"""
