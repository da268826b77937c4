"""Evaluation protocols, one module each.

- `features`: `extract_features` and `labelled_features`, the one loop that
  runs a model over images (`embed`), and `tsne_2d` for pictures.
- `logistic`: multinomial logistic regression by L-BFGS with its L2 penalty
  chosen on held-out training rows (`fit_logistic_probe`).
- `linear`: `linear_probe` on frozen features and the paper's
  `linear_eval`.
- `knn`: weighted cosine `knn_classify`, `knn_accuracy` and the
  `KNNMonitor` callback.
- `subsets`: class-balanced nested label subsets (`label_fraction_subset`,
  `nested_label_subsets`).
- `finetuning`: `finetune`, fine-tuning the whole encoder on a label fraction, from h or
  from a projection-head layer (SimCLRv2).
- `label_efficiency`: `evaluate_label_efficiency`, every arm (learned, random encoder, raw pixels,
  fine-tuned, supervised from scratch) at several label fractions and
  subset seeds, as rows and a text table.
- `loading`: `load_encoder` (a `.keras` file or a run folder) and
  `grid_encoder`.

Every public name is importable from `simclr_tf.evaluation` itself; so are
`_fit_logistic`, `_scores` and `_topk`, which tests reach for.
"""

from simclr_tf.evaluation.features import (  # noqa: F401
    embed,
    embedder,
    extract_features,
    labelled_features,
    tsne_2d,
)
from simclr_tf.evaluation.finetuning import finetune  # noqa: F401
from simclr_tf.evaluation.knn import KNNMonitor, knn_accuracy, knn_classify  # noqa: F401
from simclr_tf.evaluation.label_efficiency import (  # noqa: F401
    ARMS,
    evaluate_label_efficiency,
    format_label_efficiency,
    predict_label_efficiency,
    summarize_label_efficiency,
)
from simclr_tf.evaluation.linear import linear_eval, linear_probe  # noqa: F401
from simclr_tf.evaluation.loading import grid_encoder, load_encoder  # noqa: F401
from simclr_tf.evaluation.logistic import (  # noqa: F401
    PROBE_L2_GRID,
    _fit_logistic,
    _scores,
    _topk,
    fit_logistic_probe,
    logistic_logits,
)
from simclr_tf.evaluation.subsets import label_fraction_subset, nested_label_subsets  # noqa: F401
