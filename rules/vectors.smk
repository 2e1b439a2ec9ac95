# External word vectors for OFA / HyperOFA (results/word_vectors/{name}; format: langadapt.word_vectors).
