"""Small-scale reproduction of the SimCLR paper's ablations.

`run.py` is the entry point; `studies` defines each study's cells,
`operators` builds the composition study's augmenters, `cells` runs one
cell (short pretraining plus linear evaluation), `harness` runs a study
resumably and `report` writes its CSV and PNG. Configs live in `configs/`.
"""
