"""What every stage uses: errors (`errors`), registries (`registry`), atomic outputs (`atomic`), language
codes and scripts (`languages`), strict text reading (`textfiles`), value checks (`checks`), provenance
(`provenance`) and the glue of a workflow job (`runtime`). Imports nothing from the stages."""
