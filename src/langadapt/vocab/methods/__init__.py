"""Embedding init methods, one module each, registered in `langadapt.vocab.base.INIT_METHODS` on import:
`basic` (IDENT, RANDOM, source-statistics random), `script` (SCRIPT, SCRIPT+POSN), `focus` (FOCUS), `ofa`
(OFA) and `hyperofa` (HyperOFA). The torch-free facts about them (what each reads) are in
`langadapt.vocab.spec`."""

from langadapt.vocab.methods import basic, focus, hyperofa, ofa, script  # noqa: F401
