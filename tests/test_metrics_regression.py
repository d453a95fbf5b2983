"""Regression metrics of MOSI / MOSEI, pinned by examples computed by hand."""
import math

import numpy as np
import pytest
import torch

from mcrlib.metrics_regression import (METRICS, multiclass_accuracy, pearson, regression_head_metrics,
                                       regression_metrics)

# Nine samples; every value below is worked out by hand in the comments.
LABELS = [-3.0, -1.2, -0.4, 0.0, 0.4, 2.5, 1.6, 3.0, -2.8]
PREDS = [-2.6, 0.3, 0.8, -0.2, 0.5, 2.2, 1.4, 4.2, -1.8]


def test_binary_accuracy_and_f1_without_zero_labels():
    m = regression_metrics(PREDS, LABELS)
    # label != 0: samples 0,1,2,4,5,6,7,8. sign right: 0,4,5,6,7,8 (1 and 2 are predicted positive).
    assert m["acc2"] == pytest.approx(6 / 8)
    # positive class (support 4): P 4/6, R 1 -> F1 4/5; negative (support 4): P 1, R 1/2 -> F1 2/3.
    # support-weighted: (4 * 4/5 + 4 * 2/3) / 8 = 11/15. (With the arguments swapped, as the
    # release calls f1_score, the supports would be 6 and 2 and the value 23/30.)
    assert m["f1"] == pytest.approx(11 / 15)


def test_binary_accuracy_and_f1_with_zero_labels_counted_non_negative():
    m = regression_metrics(PREDS, LABELS)
    # >= 0 on all nine: sample 3 (label 0, prediction -0.2) is now wrong too -> 6/9.
    assert m["acc2_has0"] == pytest.approx(6 / 9)
    # non-negative (support 5): TP 4, FP 2, FN 1 -> P 2/3, R 4/5, F1 8/11;
    # negative (support 4): TP 2, FP 1, FN 2 -> P 2/3, R 1/2, F1 4/7; (5*8/11 + 4*4/7)/9 = 152/231.
    assert m["f1_has0"] == pytest.approx(152 / 231)
    # The release's variant (> 0): label 0 counts as negative, so sample 3 is right -> 7/9.
    assert regression_metrics(PREDS, LABELS, zero_positive=False)["acc2_has0"] == pytest.approx(7 / 9)


def test_seven_and_five_class_accuracy_clip_then_round_half_to_even():
    m = regression_metrics(PREDS, LABELS)
    # clip to [-3, 3], round half to even: labels -3 -1 0 0 0 2 2 3 -3, predictions -3 0 1 0 0 2 1 3 -2
    # -> agree on samples 0,3,4,5,7 = 5/9. (Rounding half up would give 3/9; no clipping 4/9.)
    assert m["acc7"] == pytest.approx(5 / 9)
    # clip to [-2, 2]: labels -2 -1 0 0 0 2 2 2 -2, predictions -2 0 1 0 0 2 1 2 -2 -> 0,3,4,5,7,8 = 6/9.
    assert m["acc5"] == pytest.approx(6 / 9)
    assert multiclass_accuracy([0.5, 1.5, 2.5, -0.5], [0.0, 2.0, 2.0, 0.0], 3) == 1.0
    assert multiclass_accuracy([1.8], [3.0], 2) == 1.0
    assert multiclass_accuracy([1.8], [3.0], 3) == 0.0


def test_mae_and_pearson():
    m = regression_metrics(PREDS, LABELS)
    # |errors| 0.4 1.5 1.2 0.2 0.1 0.3 0.2 1.2 1.0 sum to 6.1
    assert m["mae"] == pytest.approx(6.1 / 9)
    assert m["corr"] == pytest.approx(np.corrcoef(PREDS, LABELS)[0, 1])
    # p = 1 2 3, y = 1 2 4: deviations (-1 0 1), (-4/3 -1/3 5/3): r = 3 / sqrt(2 * 14/3) = sqrt(27/28)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(math.sqrt(27 / 28))
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_inputs_of_any_shape_and_type_and_undefined_values():
    m = regression_metrics(torch.tensor(PREDS).reshape(-1, 1), torch.tensor(LABELS))
    assert set(m) == set(METRICS)
    assert m["acc2"] == pytest.approx(6 / 8)
    zeros = regression_metrics([0.3, -0.1], [0.0, 0.0])
    assert math.isnan(zeros["acc2"]) and math.isnan(zeros["f1"]) and math.isnan(zeros["corr"])
    assert zeros["acc2_has0"] == 0.5
    with pytest.raises(ValueError, match="3 predictions but 2 labels"):
        regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0])


def test_head_metrics_are_keyed_by_metric_and_head():
    predictions = {"fused": torch.tensor(PREDS).reshape(-1, 1), "vision": torch.zeros(9, 1),
                   "label": torch.tensor(LABELS)}
    out = regression_head_metrics(predictions, ["fused", "vision"])
    assert set(out) == {f"{m}_{h}" for m in METRICS for h in ("fused", "vision")}
    assert out["acc7_fused"] == pytest.approx(5 / 9)
    assert out["mae_vision"] == pytest.approx(np.mean(np.abs(LABELS)))
    # a constant prediction of 0 counts as non-negative: right on the 5 labels >= 0
    assert out["acc2_has0_vision"] == pytest.approx(5 / 9)
