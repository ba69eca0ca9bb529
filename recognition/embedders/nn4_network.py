"""OpenFace's nn4.small2 network (FaceNet NN4, slimmed) in PyTorch: the definition alone.

Written from the published description of nn4.small2 (OpenFace's `nn4.small2.def.lua`, dpnn's
`nn.Inception`, Torch7's `nn.DepthConcat`; Amos et al., CMU-CS-16-118, 2016; Schroff et al., CVPR
2015, Table 2), then checked layer by layer against the released `nn4.small2.v1.t7` by
`recognition.embedders.nn4.convert_openface_t7`. The embedder, the weights and their conversion
live in `recognition.embedders.nn4`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EMBEDDING_SIZE = 128
INPUT_SIZE = 96


class ConvBNReLU(nn.Sequential):
    """conv (with bias, as Torch7's SpatialConvolution) -> batch norm -> ReLU; 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


class L2Pool(nn.Module):
    """Torch7's SpatialLPPooling with p=2: the L2 norm of each window, sqrt(sum x^2).

    Torch7 builds it as square -> average pool -> multiply by the window area -> sqrt, with the
    stride defaulting to the window size and no padding; the branch output is smaller than the
    block's and `centre_pad` puts it in place. `eps` inside the sqrt keeps its gradient finite at
    all-zero windows (frequent after a ReLU); 1e-20 shifts such outputs by 1e-10, far below float
    precision of the embeddings, and is still a normal number in float32 and bfloat16.
    """

    def __init__(self, kernel: int = 3, stride: int | None = None, eps: float = 1e-20):
        super().__init__()
        self.kernel, self.stride, self.eps = kernel, stride or kernel, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squares = F.avg_pool2d(x * x, self.kernel, self.stride) * (self.kernel * self.kernel)
        return torch.sqrt(squares + self.eps)


def centre_pad(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero-pad `x` to height x width as Torch7's DepthConcat places a smaller branch output:
    floor(difference / 2) before, the rest after."""
    dh, dw = height - x.shape[-2], width - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    if dh < 0 or dw < 0:
        raise ValueError(f"branch output {tuple(x.shape[-2:])} larger than the block output {(height, width)}")
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class Inception(nn.Module):
    """dpnn's `nn.Inception` with batch norm: branches concatenated along channels in the order
    3x3, 5x5 (when present), pool, 1x1 (when present).

    - kxk branch: 1x1 reduce -> BN -> ReLU -> kxk conv (stride `stride`, padding k//2) -> BN -> ReLU;
    - pool branch: `pool`, then (when `pool_proj`) 1x1 conv -> BN -> ReLU, else the pooled input itself;
    - 1x1 branch (when `out_1x1`): 1x1 conv -> BN -> ReLU.

    Branch outputs smaller than the largest are zero-padded around it (`centre_pad`), as DepthConcat
    does. Submodules are registered in the .t7's order (the conversion relies on it).
    """

    def __init__(self, in_channels: int, *, reduce_3x3: int, out_3x3: int, reduce_5x5: int | None = None,
                 out_5x5: int | None = None, pool: nn.Module, pool_proj: int | None = None,
                 out_1x1: int | None = None, stride: int = 1):
        super().__init__()
        self.branch_3x3 = nn.Sequential(ConvBNReLU(in_channels, reduce_3x3, 1), ConvBNReLU(reduce_3x3, out_3x3, 3, stride))
        self.branch_5x5 = (nn.Sequential(ConvBNReLU(in_channels, reduce_5x5, 1), ConvBNReLU(reduce_5x5, out_5x5, 5, stride))
                           if out_5x5 else None)
        self.pool = pool
        self.pool_proj = ConvBNReLU(in_channels, pool_proj, 1) if pool_proj else None
        self.branch_1x1 = ConvBNReLU(in_channels, out_1x1, 1, stride) if out_1x1 else None
        self.out_channels = out_3x3 + (out_5x5 or 0) + (pool_proj or in_channels) + (out_1x1 or 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x)
        outputs = [self.branch_3x3(x)]
        if self.branch_5x5 is not None:
            outputs.append(self.branch_5x5(x))
        outputs.append(self.pool_proj(pooled) if self.pool_proj is not None else pooled)
        if self.branch_1x1 is not None:
            outputs.append(self.branch_1x1(x))
        height = max(o.shape[-2] for o in outputs)
        width = max(o.shape[-1] for o in outputs)
        return torch.cat([centre_pad(o, height, width) for o in outputs], dim=1)


def _lrn(enabled: bool) -> nn.Module:
    """Torch7's SpatialCrossMapLRN(5, 1e-4, 0.75, k=1) = x / (k + alpha/5 * sum of 5 squares)^beta."""
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if enabled else nn.Identity()


class NN4Small2(nn.Module):
    """OpenFace's nn4.small2: 96x96 RGB in [0, 1] -> 128-D unit-norm embedding (3,733,968 parameters).

    Layer table (spatial sizes for a 96x96 input; "reduce" = the 1x1 conv before the 3x3 / 5x5 conv,
    "proj" = the 1x1 conv after the pool; every conv is followed by batch norm and ReLU):

    ======  =====================================================  ========  ========
    name    layer                                                  output    channels
    ======  =====================================================  ========  ========
    conv1   7x7/2 conv, padding 3                                  48x48     64
    pool1   3x3/2 max pool, padding 1; LRN(5, 1e-4, 0.75)          24x24     64
    conv2   1x1 conv                                               24x24     64
    conv3   3x3 conv, padding 1; LRN                               24x24     192
    pool3   3x3/2 max pool, padding 1                              12x12     192
    3a      3x3: 96 -> 128; 5x5: 16 -> 32; max 3x3/2 -> proj 32;   12x12     256
            1x1: 64
    3b      3x3: 96 -> 128; 5x5: 32 -> 64; L2 3x3/3 -> proj 64;    12x12     320
            1x1: 64
    3c      3x3/2: 128 -> 256; 5x5/2: 32 -> 64; max 3x3/2          6x6       640
            (pass-through, 320)
    4a      3x3: 96 -> 192; 5x5: 32 -> 64; L2 3x3/3 -> proj 128;   6x6       640
            1x1: 256
    4e      3x3/2: 160 -> 256; 5x5/2: 64 -> 128; max 3x3/2         3x3       1024
            (pass-through, 640)
    5a      3x3: 96 -> 384; L2 3x3/3 -> proj 96; 1x1: 256          3x3       736
    5b      3x3: 96 -> 384; max 3x3/2 -> proj 96; 1x1: 256         3x3       736
    pool    3x3/1 average pool                                     1x1       736
    fc      linear 736 -> 128, then L2 normalisation                         128
    ======  =====================================================  ========  ========

    Pools inside inception blocks have no padding (Torch7 defaults), so their outputs are smaller
    than the block's (3a: 5x5 of 12x12, 3b: 4x4 of 12x12, 3c: 5x5 of 6x6, 4a: 2x2 of 6x6, 4e: 2x2 of
    3x3, 5a and 5b: 1x1 of 3x3) and are zero-padded into place as DepthConcat does (floor of half the
    difference before, the rest after). Batch norm: eps 1e-5, as in the .t7.

    Every entry of the table was checked against the released `nn4.small2.v1.t7` (`convert_openface_t7`
    compares each layer's type, channels, kernel, stride and padding); the one correction the real
    file made to the first, from-memory version of this table was 5b's max pool (stride 2, not 1:
    the same 1x1 output for a 3x3 input, so no number changes). `lrn=False` drops the two LRN layers
    (a variant for training from scratch; LRN has no parameters, so state dicts fit both); the
    released weights need `lrn=True`.

    Submodules are registered in forward order, which is also the .t7's order.
    """

    def __init__(self, lrn: bool = True):
        super().__init__()
        self.lrn = lrn
        self.conv1 = ConvBNReLU(3, 64, 7, 2)
        self.pool1 = nn.MaxPool2d(3, 2, 1)
        self.norm1 = _lrn(lrn)
        self.conv2 = ConvBNReLU(64, 64, 1)
        self.conv3 = ConvBNReLU(64, 192, 3)
        self.norm3 = _lrn(lrn)
        self.pool3 = nn.MaxPool2d(3, 2, 1)
        self.inception_3a = Inception(192, reduce_3x3=96, out_3x3=128, reduce_5x5=16, out_5x5=32,
                                      pool=nn.MaxPool2d(3, 2), pool_proj=32, out_1x1=64)
        self.inception_3b = Inception(256, reduce_3x3=96, out_3x3=128, reduce_5x5=32, out_5x5=64,
                                      pool=L2Pool(3), pool_proj=64, out_1x1=64)
        self.inception_3c = Inception(320, reduce_3x3=128, out_3x3=256, reduce_5x5=32, out_5x5=64,
                                      pool=nn.MaxPool2d(3, 2), stride=2)
        self.inception_4a = Inception(640, reduce_3x3=96, out_3x3=192, reduce_5x5=32, out_5x5=64,
                                      pool=L2Pool(3), pool_proj=128, out_1x1=256)
        self.inception_4e = Inception(640, reduce_3x3=160, out_3x3=256, reduce_5x5=64, out_5x5=128,
                                      pool=nn.MaxPool2d(3, 2), stride=2)
        self.inception_5a = Inception(1024, reduce_3x3=96, out_3x3=384, pool=L2Pool(3), pool_proj=96, out_1x1=256)
        self.inception_5b = Inception(736, reduce_3x3=96, out_3x3=384, pool=nn.MaxPool2d(3, 2), pool_proj=96,
                                      out_1x1=256)
        self.avgpool = nn.AvgPool2d(3, 1)
        self.fc = nn.Linear(self.inception_5b.out_channels, EMBEDDING_SIZE)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 736-D pooled features before the linear layer."""
        x = self.norm1(self.pool1(self.conv1(x)))
        x = self.pool3(self.norm3(self.conv3(self.conv2(x))))
        for block in (self.inception_3a, self.inception_3b, self.inception_3c, self.inception_4a,
                      self.inception_4e, self.inception_5a, self.inception_5b):
            x = block(x)
        return self.avgpool(x).flatten(1)  # 3x3 -> 1x1 for 96x96 inputs

    def forward(self, images_0_1: torch.Tensor) -> torch.Tensor:
        """(N, 3, 96, 96) RGB in [0, 1] -> (N, 128) unit-norm embeddings."""
        return F.normalize(self.fc(self.features(images_0_1)), p=2, dim=1)
