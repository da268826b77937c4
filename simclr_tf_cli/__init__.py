"""The command line: `simclr-tf pretrain | linear-eval | finetune | export | label-efficiency`.

A package beside the library, not inside it: `simclr_tf` stays free of
absl flags (a library must not define process-wide flags), while the
installed command still ships in the wheel.

One module per concern, shared by the installed command, the
`experiments/` entry points of a checkout and the ablation harness:

- `config`: loading configs (`configs/`), `--set` overrides, `check_config`;
- `builders`: strategy, encoder (`simclr_tf.resnet` or a `keras.applications`
  backbone), augmenter, `SimCLR` model, optimizer, `jit_compile`;
- `probes`: the one linear probe every entry point reports;
- `files`: the output folder, an earlier run's checkpoints, batch counts;
- `usage`: one-line usage errors instead of tracebacks;
- `report`: the main job's label-efficiency report;
- `pretrain`, `linear_eval`, `finetune`, `export`, `label_efficiency`: the sub-commands, each
  with `define_flags` and `main`; `main` dispatches between them.

The console script is `simclr_tf_launcher:main`, a module outside this
package, because TensorFlow must see `TF_ENABLE_ONEDNN_OPTS` before it
loads and importing `simclr_tf` loads it.
"""
