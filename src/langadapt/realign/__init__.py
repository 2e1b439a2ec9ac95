"""Realignment (the realignment paper): language subsets chosen by typology-driven heuristics (`selection`,
registry `SELECTORS`), word alignments of translation pairs (`word_align`, registry `ALIGNERS`), and the
contrastive realignment trainer (`trainer`)."""
