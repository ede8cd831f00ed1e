"""
ROIAlign whose backward is two batched matrix products instead of torchvision's per-element
scatter (single-threaded on CPU, and the costliest op of a CPU training iteration).

ROIAlign samples each bin on an axis-aligned grid, and bilinear weights factorise into a y and an
x part, so the output of ROI r is ``Ay_r @ F_b @ Ax_r^T`` per channel: ``Ay_r`` (S_h, H) and
``Ax_r`` (S_w, W) hold, for each output row / column, the bilinear weights of its sampling points
averaged over the bin. The backward is then ``Ay_r^T @ G_r @ Ax_r``, summed over the ROIs of
image b. The forward stays torchvision's kernel; both follow its rules exactly (``aligned``
half-pixel offset, adaptive sampling grid, samples beyond one pixel outside the map dropped,
clamping at the border).
"""

import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torch import nn
from torchvision.ops import roi_align

__all__ = ["SeparableROIAlign", "axis_weights", "use_separable_roi_align"]

_ROI_BLOCK = 32
"""ROIs per block of the backward's matrix products."""


def axis_weights(
    start: torch.Tensor, length: torch.Tensor, bins: int, size: int, sampling_ratio: int
) -> torch.Tensor:
    """
    Bilinear sampling weights of ROIAlign along one axis.

    Args:
        start, length: (R,) the ROIs' start and length on this axis, in feature-map pixels
            (after the ``aligned`` offset).
        bins: number of output bins on this axis.
        size: the feature map's size on this axis.
        sampling_ratio: sampling points per bin; <= 0: ``ceil(length / bins)`` per ROI.

    Returns:
        (R, bins, size): the weight of each map row (column) in each output bin, averaged over
        the bin's sampling points.
    """
    bin_size = length / bins
    if sampling_ratio > 0:
        grid = torch.full_like(length, sampling_ratio)
    else:
        grid = torch.ceil(length / bins)
    grid = grid.clamp(min=0)
    points = max(int(grid.max().item()) if grid.numel() else 0, 1)
    bin_index = torch.arange(bins, dtype=length.dtype, device=length.device)
    point_index = torch.arange(points, dtype=length.dtype, device=length.device)
    # (R, bins, points) sampling coordinates, as torchvision computes them.
    step = (bin_size / grid.clamp(min=1))[:, None, None]
    coords = (
        start[:, None, None]
        + bin_index[None, :, None] * bin_size[:, None, None]
        + (point_index[None, None, :] + 0.5) * step
    )
    used = (point_index[None, None, :] < grid[:, None, None]) & (coords >= -1.0) & (coords <= size)
    coords = coords.clamp(min=0)
    low = coords.floor()
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    coords = torch.where(at_end, low, coords)
    high = torch.where(at_end, low, low + 1)
    frac = coords - low
    scale = used.to(length.dtype) / grid.clamp(min=1)[:, None, None]
    weights = torch.zeros(len(length), bins, size, dtype=length.dtype, device=length.device)
    weights.scatter_add_(2, low.long(), (1 - frac) * scale)
    weights.scatter_add_(2, high.long(), frac * scale)
    return weights


def _roi_axis_weights(rois, output_size, spatial_scale, sampling_ratio, aligned, height, width):
    """(R, S_h, H) and (R, S_w, W) weights of ``rois`` (R, 5): batch index, x1, y1, x2, y2."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    out_h, out_w = output_size
    return (
        axis_weights(y1, roi_h, out_h, height, sampling_ratio),
        axis_weights(x1, roi_w, out_w, width, sampling_ratio),
    )


class _ROIAlignSeparableGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, rois, output_size, spatial_scale, sampling_ratio, aligned):
        ctx.save_for_backward(rois)
        ctx.params = (output_size, spatial_scale, sampling_ratio, aligned, features.shape)
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)

    @staticmethod
    def backward(ctx, grad_output):
        (rois,) = ctx.saved_tensors
        output_size, spatial_scale, sampling_ratio, aligned, shape = ctx.params
        batch, channels, height, width = shape
        grad_features = grad_output.new_zeros(shape)
        if len(rois) == 0:
            return grad_features, None, None, None, None, None
        image_of_roi = rois[:, 0].long()
        if not bool((image_of_roi[1:] >= image_of_roi[:-1]).all()):  # the images' ROIs in runs
            order = image_of_roi.argsort(stable=True)
            rois, grad_output, image_of_roi = rois[order], grad_output[order], image_of_roi[order]
        weights_y, weights_x = _roi_axis_weights(
            rois.to(grad_output.dtype), output_size, spatial_scale, sampling_ratio, aligned,
            height, width,
        )  # fmt: skip
        out_h, out_w = output_size
        start = 0
        for image, count in enumerate(torch.bincount(image_of_roi, minlength=batch).tolist()):
            grad_image = grad_features[image].view(channels * height, width)
            # Blocks of ROIs keep the intermediate products in cache (2-3x faster on CPU).
            for first in range(start, start + count, _ROI_BLOCK):
                block = slice(first, min(first + _ROI_BLOCK, start + count))
                num_rois = block.stop - block.start
                # (R_k, H, C * S_w): contract the output rows with the y weights.
                rows = (
                    weights_y[block]
                    .transpose(1, 2)
                    .bmm(grad_output[block].permute(0, 2, 1, 3).reshape(num_rois, out_h, -1))
                )
                # (C * H, R_k * S_w) @ (R_k * S_w, W): contract the columns, sum over the ROIs.
                left = rows.view(num_rois, height, channels, out_w).permute(2, 1, 0, 3)
                grad_image.addmm_(
                    left.reshape(channels * height, -1), weights_x[block].flatten(0, 1)
                )
            start += count
        return grad_features, None, None, None, None, None


class SeparableROIAlign(nn.Module):
    """
    Detectron2's :class:`ROIAlign` (same arguments, same forward) with the separable backward of
    this module's docstring: equal gradients, computed by batched matrix products.
    """

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned=True):
        super().__init__()
        self.output_size = tuple(output_size)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: (N, C, H, W) feature maps.
            rois: (R, 5) batch index and box (x1, y1, x2, y2) in image pixels.

        Returns:
            (R, C, S_h, S_w) pooled features.
        """
        assert rois.dim() == 2 and rois.size(1) == 5
        if features.is_quantized:
            features = features.dequantize()
        return _ROIAlignSeparableGrad.apply(
            features, rois.to(features.dtype), self.output_size, self.spatial_scale,
            self.sampling_ratio, self.aligned,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"output_size={self.output_size}, spatial_scale={self.spatial_scale},"
            f" sampling_ratio={self.sampling_ratio}, aligned={self.aligned}"
        )


def use_separable_roi_align(pooler: ROIPooler | None, backward: str) -> ROIPooler | None:
    """
    Give ``pooler``'s ROIAlign levels the separable backward when ``backward`` (the config's
    ``MODEL.ROI_ALIGN_BACKWARD``) is ``"separable"``; ``"torchvision"`` leaves it as it is.

    Raises:
        ValueError: an unknown ``backward``, or a separable backward asked of a pooler that is not
            ROIAlign.
    """
    if backward not in ("torchvision", "separable"):
        raise ValueError(
            f"MODEL.ROI_ALIGN_BACKWARD is {backward!r}: use 'torchvision' or 'separable'."
        )
    if pooler is None or backward == "torchvision":
        return pooler
    levels = []
    for level in pooler.level_poolers:
        if not isinstance(level, ROIAlign):
            raise ValueError(
                f"MODEL.ROI_ALIGN_BACKWARD 'separable' needs ROIAlign poolers, not"
                f" {type(level).__name__}: set the POOLER_TYPE to ROIAlignV2 or the backward to"
                " 'torchvision'."
            )
        levels.append(
            SeparableROIAlign(
                level.output_size, level.spatial_scale, level.sampling_ratio, level.aligned
            )
        )
    pooler.level_poolers = nn.ModuleList(levels)
    return pooler
