"""The command line: `simclr-tf pretrain | linear-eval | finetune | export`.

One module per concern, shared by the installed command, the
`experiments/` entry points of a checkout and the ablation harness:

- `config`: loading configs (`configs/`), `--set` overrides, `check_config`;
- `builders`: strategy, encoder (`simclr_tf.resnet` or a `keras.applications`
  backbone), augmenter, `SimCLR` model, optimizer, `jit_compile`;
- `probes`: the one linear probe every entry point reports;
- `files`: the output folder, an earlier run's checkpoints, batch counts;
- `usage`: one-line usage errors instead of tracebacks;
- `pretrain`, `linear_eval`, `finetune`, `export`: the sub-commands, each
  with `define_flags` and `main`; `main` dispatches between them.

The console script is `simclr_tf_launcher:main`, a module outside this
package, because TensorFlow must see `TF_ENABLE_ONEDNN_OPTS` before it
loads and importing `simclr_tf` loads it.
"""
