"""FaceNet NN4 as OpenFace's `nn4.small2`: network "C" of Gecer et al. (ECCV 2018), as an embedder.

Gecer et al. used OpenFace's small FaceNet NN4 variant (Schroff et al., CVPR 2015, Table 2, slimmed
down by Amos et al., 2016). No pretrained weights ship with this project: users bring a PyTorch state
dict of `NN4Small2` (`NN4Embedder(weights=PATH)`, or `<data root>/models/nn4.small2.pt`), or build
the network with random weights (`pretrained=False`) to train it themselves.

The network below was written from the published description of nn4.small2 (OpenFace's
`nn4.small2.def.lua`, dpnn's `nn.Inception` and `nn.DepthConcat`), not from code copied from
elsewhere; see `NN4Small2` for the layer table and for the details that are uncertain.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms import functional as TF

from bench.common.cli import UserError
from bench.common.datasets import data_root
from recognition.faces.align import CropGeometry
from recognition.embedders.registry import Embedder, load_state_dict, random_weights_fingerprint, register_embedder

WEIGHTS_FILE = "nn4.small2.pt"  # looked for under <data root>/models/
EMBEDDING_SIZE = 128
INPUT_SIZE = 96


class ConvBNReLU(nn.Sequential):
    """conv (with bias, as Torch7's SpatialConvolutionMM) -> batch norm -> ReLU; 'same' padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)


class L2Pool(nn.Module):
    """Torch7's SpatialLPPooling with p=2: the L2 norm of each window, sqrt(sum x^2).

    Like Torch7, the stride defaults to the window size and there is no padding; the branch output is
    smaller than the block's and `centre_pad` puts it in place.
    """

    def __init__(self, kernel: int = 3, stride: int | None = None):
        super().__init__()
        self.kernel, self.stride = kernel, stride or kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # sum of squares = mean * window area; the epsilon keeps sqrt's gradient finite at zero windows
        squares = F.avg_pool2d(x * x, self.kernel, self.stride) * (self.kernel * self.kernel)
        return torch.sqrt(squares + 1e-12)


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

    Branch outputs smaller than the largest are zero-padded around it (`centre_pad`), as DepthConcat does.
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


class NN4Small2(nn.Module):
    """OpenFace's nn4.small2: 96x96 RGB in [0, 1] -> 128-D unit-norm embedding (about 3.73M parameters).

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
    5b      3x3: 96 -> 384; max 3x3/1 -> proj 96; 1x1: 256         3x3       736
    pool    3x3 average pool                                       1x1       736
    fc      linear 736 -> 128, then L2 normalisation                         128
    ======  =====================================================  ========  ========

    Pools inside inception blocks have no padding (Torch7 defaults), so their outputs are smaller
    than the block's (3a: 5x5 of 12x12, 3b: 4x4 of 12x12, 3c: 5x5 of 6x6, 4a: 2x2 of 6x6, 4e: 2x2 of
    3x3, 5a and 5b: 1x1 of 3x3) and are zero-padded into place as DepthConcat does (floor of half the
    difference before, the rest after). Batch norm uses Torch7's and PyTorch's eps 1e-5.

    Uncertain details (no reference implementation was consulted, so these are from memory):

    - the pools inside 3a, 3c, 4e and 5b: taken as 3x3 max pools with stride 2 (3a, 3c, 4e) and 1
      (5b) without padding, and those of 3b, 4a, 5a as L2 pools with stride 3 (Torch7's default
      stride = window). If OpenFace padded them instead, only the position of the pool branch's
      output within the block changes, not any parameter shape; 5b's pool gives 1x1 either way;
    - the LRN layers (Torch7 `SpatialCrossMapLRN(5, 0.0001, 0.75)`, k = 1, which computes the same
      as `nn.LocalResponseNorm(5, 1e-4, 0.75, 1.0)`) after pool1 and after conv3: believed to be in
      nn4.small2; `lrn=False` drops them (an LRN-free variant; LRN has no parameters, so state dicts
      fit both). Weights trained with one setting should be used with the same setting;
    - the branch order in the concatenation (3x3, 5x5, pool, 1x1) follows dpnn's Inception; it fixes
      which fc inputs mean what, so it matters only for weights converted from OpenFace's .t7.

    The channel counts are those of the table (conv biases included, as Torch7's convolutions have
    them); they give 3,733,968 parameters, which is, as far as I recall, the count OpenFace publishes
    for nn4.small2 - the one check of the table against a number from OpenFace itself.
    """

    def __init__(self, lrn: bool = True):
        super().__init__()
        self.lrn = lrn
        self.conv1 = ConvBNReLU(3, 64, 7, 2)
        self.conv2 = ConvBNReLU(64, 64, 1)
        self.conv3 = ConvBNReLU(64, 192, 3)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0) if lrn else nn.Identity()
        max_pool = lambda stride: nn.MaxPool2d(3, stride)  # noqa: E731
        self.inception_3a = Inception(192, reduce_3x3=96, out_3x3=128, reduce_5x5=16, out_5x5=32,
                                      pool=max_pool(2), pool_proj=32, out_1x1=64)
        self.inception_3b = Inception(256, reduce_3x3=96, out_3x3=128, reduce_5x5=32, out_5x5=64,
                                      pool=L2Pool(3), pool_proj=64, out_1x1=64)
        self.inception_3c = Inception(320, reduce_3x3=128, out_3x3=256, reduce_5x5=32, out_5x5=64,
                                      pool=max_pool(2), stride=2)
        self.inception_4a = Inception(640, reduce_3x3=96, out_3x3=192, reduce_5x5=32, out_5x5=64,
                                      pool=L2Pool(3), pool_proj=128, out_1x1=256)
        self.inception_4e = Inception(640, reduce_3x3=160, out_3x3=256, reduce_5x5=64, out_5x5=128,
                                      pool=max_pool(2), stride=2)
        self.inception_5a = Inception(1024, reduce_3x3=96, out_3x3=384, pool=L2Pool(3), pool_proj=96, out_1x1=256)
        self.inception_5b = Inception(736, reduce_3x3=96, out_3x3=384, pool=max_pool(1), pool_proj=96, out_1x1=256)
        self.fc = nn.Linear(self.inception_5b.out_channels, EMBEDDING_SIZE)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 736-D pooled features before the linear layer."""
        x = self.norm(F.max_pool2d(self.conv1(x), 3, 2, 1))
        x = F.max_pool2d(self.norm(self.conv3(self.conv2(x))), 3, 2, 1)
        for block in (self.inception_3a, self.inception_3b, self.inception_3c, self.inception_4a,
                      self.inception_4e, self.inception_5a, self.inception_5b):
            x = block(x)
        return F.avg_pool2d(x, 3).flatten(1)  # 3x3 -> 1x1 for 96x96 inputs

    def forward(self, images_0_1: torch.Tensor) -> torch.Tensor:
        """(N, 3, 96, 96) RGB in [0, 1] -> (N, 128) unit-norm embeddings."""
        return F.normalize(self.fc(self.features(images_0_1)), p=2, dim=1)


def default_weights_path() -> Path:
    return data_root() / "models" / WEIGHTS_FILE


@register_embedder("facenet-nn4")
class NN4Embedder(Embedder):
    """nn4.small2 as an embedder: aligned 96x96 crops in, 128-D unit-norm features out, differentiable.

    `weights`: a state dict of `NN4Small2` (default `<data root>/models/nn4.small2.pt`); none ships
    with the project and none is ever downloaded. `pretrained=False` builds random weights instead.

    The crop geometry is the project's (padding 0.25, as the canonical crop and dlib's chips), not
    OpenFace's own alignment (outer eyes and nose on its min-max template, a tighter crop): weights
    converted from OpenFace expect that geometry and will do worse on these crops.
    """

    metric = "euclidean"
    crop = CropGeometry(INPUT_SIZE, 0.25)
    input_size = (INPUT_SIZE, INPUT_SIZE)

    def __init__(self, weights: str | Path | None = None, pretrained: bool = True, lrn: bool = True):
        network = NN4Small2(lrn=lrn)
        if not pretrained:
            if weights is not None:
                raise UserError("pass either weights=PATH or pretrained=False (random weights), not both")
            super().__init__(weights=None, random_init=random_weights_fingerprint(network), lrn=lrn)
        else:
            path = Path(weights).expanduser() if weights is not None else default_weights_path()
            if not path.is_file():
                where = ("the path given as weights" if weights is not None
                         else f"the default, <data root>/models/{WEIGHTS_FILE}; set the data root with FACEBENCH_DATA")
                raise UserError(
                    f"no nn4.small2 weights at {path} ({where}); no pretrained weights ship with this project "
                    f"and none are downloaded. Pass weights=PATH, a state dict of "
                    f"recognition.embedders.nn4.NN4Small2 saved with torch.save(model.state_dict(), PATH) "
                    f"(or put it at the default), or pretrained=False for random weights")
            load_state_dict(network, path)
            super().__init__(weights=str(path.resolve()), weights_bytes=path.stat().st_size, lrn=lrn)
        self.network = network

    def transform(self, crop: Image.Image) -> torch.Tensor:
        """An aligned crop (of `crop` geometry) -> (3, 96, 96) float RGB in [0, 1]."""
        crop = crop.convert("RGB")
        if crop.size != self.input_size:
            crop = crop.resize(self.input_size, Image.Resampling.BILINEAR)
        return TF.to_tensor(crop)

    def forward(self, images_0_1: torch.Tensor) -> torch.Tensor:
        return self.network(images_0_1)
