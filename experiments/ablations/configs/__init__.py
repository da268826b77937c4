"""Ablation configs: modules whose `get_config()` returns the nested dict that
`experiments.ablations.run` reads (a pretraining config plus `operators`,
`probe`, `supervised` and `studies` sections)."""
