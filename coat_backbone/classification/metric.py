"""Top-k accuracy, the ImageNet metric the official CoaT results report (Acc@1 / Acc@5)."""
from typing import Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


@METRICS.register_module()
class TopKAccuracy(BaseMetric):
    """Percentage of images whose class is among the k highest scores, for each k in `topk`.

    Consumes the 'predict' outputs of `CoaTImageClassifier` (`pred_score`, `gt_label` per image)
    and keeps one row of hits per image, so mmengine's result collection can drop the padding a
    distributed sampler adds. Keys: `accuracy/top1`, `accuracy/top5`, ...; with fewer classes than
    k, top-k counts all of them.

    Args:
        topk: the k values.
        collect_device: where distributed results are gathered ('cpu' or 'gpu').
        prefix: key prefix, 'accuracy' by default.
    """

    default_prefix = 'accuracy'

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'topk={topk}: give positive k values, e.g. (1, 5).')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            score = sample['pred_score']
            if sample['gt_label'] is None:
                raise ValueError('TopKAccuracy needs the class labels: evaluate a dataset with '
                                 'labels (ImageFolderDataset gives them).')
            ranked = score.topk(min(max(self.topk), score.numel())).indices.tolist()
            label = int(sample['gt_label'])
            self.results.append([label in ranked[:k] for k in self.topk])

    def compute_metrics(self, results: List[List[bool]]) -> Dict[str, float]:
        return {f'top{k}': 100.0 * sum(row[i] for row in results) / len(results)
                for i, k in enumerate(self.topk)}
