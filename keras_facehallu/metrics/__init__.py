"""The paper's metrics (match score, SSIM, FID, PieAPP) and this project's extras (verification
rate, SSIM of the hallucinated region, KID), registered by name in ``registry``.

Example:
    >>> from keras_facehallu.metrics import get_metric
    >>> get_metric("fid").higher_is_better
    False
"""

from keras_facehallu.metrics.registry import (
    METRICS,
    EvalBatch,
    EvalContext,
    Metric,
    MetricUnavailable,
    get_metric,
    list_metrics,
)

__all__ = [
    "METRICS",
    "EvalBatch",
    "EvalContext",
    "Metric",
    "MetricUnavailable",
    "get_metric",
    "list_metrics",
]
