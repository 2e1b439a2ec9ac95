"""HyperOFA's hypernetwork (HyperOFA §3): networks mapping the external vectors of a piece's words to its
factorized embedding (`nets`, registry `HYPERNETS`), and their training and loading (`training`)."""
