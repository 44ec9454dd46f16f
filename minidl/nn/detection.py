"""DetectionLoss: the YOLO-style loss of minidl.nn.functional.detection as a layer."""
from . import functional as F
from .functional.loss import check_reduction
from .module import Module


class DetectionLoss(Module):
    """YOLO-style loss on (N, S, S, B*5 + classes) predictions (raw outputs) and targets.

    Per box, x, y and the confidence c pass through the logistic and are scored by binary
    cross-entropy, w and h by 1/2 squared error; an object indicator from the target's
    confidence switches the box's terms on; with no object only l_noobj H_b(0, s(c)) remains;
    class scores (logistic, BCE) count in cells holding an object. Formula in
    ``minidl.nn.functional.detection``.
    """

    def __init__(self, num_classes, num_boxes=1, lambda_coord=1.0, lambda_noobj=0.5, reduction="mean"):
        super().__init__()
        check_reduction("DetectionLoss", reduction)
        self.num_classes, self.num_boxes = int(num_classes), int(num_boxes)
        self.lambda_coord, self.lambda_noobj, self.reduction = lambda_coord, lambda_noobj, reduction

    def forward(self, input, target):
        return F.detection_loss(input, target, self.num_classes, self.num_boxes, self.lambda_coord,
                                self.lambda_noobj, self.reduction)

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, num_boxes={self.num_boxes}, "
                f"lambda_coord={self.lambda_coord}, lambda_noobj={self.lambda_noobj}")
