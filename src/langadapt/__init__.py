"""langadapt: adapting multilingual masked language models to low-resource languages.

One library behind the Snakemake workflow: data sources and filters, source models, tokenizers,
embedding initialization, continued pretraining, realignment, evaluation and aggregation.
"""

__version__ = "0.1.0"
