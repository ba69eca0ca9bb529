"""dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`) as a PyTorch module.

The network of dlib's `dnn_face_recognition_ex.cpp` (`anet_type`): a 7x7/2 stem conv with 32
filters, affine, relu and 3x3/2 max-pool; residual units of 32 (x3), 64 (down + x3), 128 (down +
x2), 256 (down + x2) and 256 (down) channels; global average pool; a 256->128 fully connected layer
without bias. Batch norm is folded into per-channel affine layers (scale and shift). A unit is
conv3x3 -> affine -> relu -> conv3x3 -> affine, added to its input, then relu; a downsampling unit's
first conv has stride 2 and no padding, and its shortcut is a 2x2/2 average pool. dlib adds tensors
of different shapes by zero-padding the smaller one at the end of channels, rows and columns, and
its convolutions read zeros past the bottom/right border when the input is smaller than the kernel;
both are reproduced so the port matches dlib to float precision.

Input: a 150x150 RGB face chip (dlib's `get_face_chip` with padding 0.25), as 0-255 floats;
`DlibFaceResNet.normalise` applies dlib's (pixel - mean colour) / 256. Output: the 128-D descriptor,
compared by Euclidean distance (same person below 0.6).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from PIL import Image
from torchvision.transforms import functional as TF

from bench.common.cli import UserError
from bench.common.weights import packaged_model_path
from recognition.faces.align import DLIB_CHIP
from recognition.embedders.registry import Embedder, register_embedder
from recognition.embedders.dlib_format import DlibFormatError, DlibNetwork, LayerRecord, read_network

WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def _dlib_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """dlib's rule: 1 + (size + 2 padding - kernel) / stride, with C++ division (towards zero)."""
    return 1 + int((size + 2 * padding - kernel) / stride)


class DlibConv2d(nn.Conv2d):
    """nn.Conv2d that, like dlib, reads zeros past the bottom/right edge when the input is too small."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = []
        for dim, axis in ((-1, 1), (-2, 0)):
            size, kernel = x.shape[dim], self.kernel_size[axis]
            stride, padding = self.stride[axis], self.padding[axis]
            needed = (_dlib_output_size(size, kernel, stride, padding) - 1) * stride + kernel - 2 * padding
            pad.append(max(0, needed - size))
        if any(pad):
            x = F.pad(x, (0, pad[0], 0, pad[1]))
        return super().forward(x)


class Affine(nn.Module):
    """Per-channel scale and shift: dlib's affine layer (batch norm folded at training's end)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[:, None, None] + self.shift[:, None, None]


def zero_padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, the smaller tensor zero-padded at the ends."""
    if a.shape == b.shape:
        return a + b
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, shape[3] - t.shape[3], 0, shape[2] - t.shape[2], 0, shape[1] - t.shape[1]))

    return grow(a) + grow(b)


class ResidualUnit(nn.Module):
    def __init__(self, in_channels: int, channels: int, downsample: bool):
        super().__init__()
        stride, padding = (2, 0) if downsample else (1, 1)
        self.downsample = downsample
        self.conv1 = DlibConv2d(in_channels, channels, 3, stride, padding)
        self.affine1 = Affine(channels)
        self.conv2 = DlibConv2d(channels, channels, 3, 1, 1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(zero_padded_add(y, shortcut))


# (channels, downsample) of each residual unit, input to output: alevel4 ... alevel0 of anet_type
UNITS = [(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)] + [(128, False)] * 2 \
    + [(256, True)] + [(256, False)] * 2 + [(256, True)]
UNIT_LAYERS = ["con_4", "affine_", "relu_", "con_4", "affine_"]


class DlibFaceResNet(nn.Module):
    """The 29-conv ResNet of dlib's face recognition model; `from_dat` loads its weights."""

    def __init__(self):
        super().__init__()
        self.stem = DlibConv2d(3, 32, 7, 2, 0)
        self.stem_affine = Affine(32)
        units, channels = [], 32
        for out_channels, downsample in UNITS:
            units.append(ResidualUnit(channels, out_channels, downsample))
            channels = out_channels
        self.units = nn.Sequential(*units)
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean_rgb", torch.tensor([122.782, 117.001, 104.298]))

    def normalise(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        return (chips_0_255 - self.mean_rgb[:, None, None]) / 256.0

    def forward(self, normalised: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_affine(self.stem(normalised)))
        x = F.max_pool2d(x, 3, 2)
        x = self.units(x)
        return self.fc(x.mean(dim=(2, 3)))

    @classmethod
    def from_dat(cls, path: str | Path | None = None) -> "DlibFaceResNet":
        """Build the module from a dlib .dat file (default: the one shipped by face-recognition-models)."""
        network = read_network(path or packaged_model_path(WEIGHTS_FILE))
        model = cls()
        model._load(network)
        return model.eval()

    def _load(self, network: DlibNetwork) -> None:
        if network.input.name != "input_rgb_image_sized" or network.input.fields["nr"] != 150:
            raise DlibFormatError(f"expected a 150x150 RGB input layer, found {network.input.name} {network.input.fields}")
        if network.loss.name != "loss_metric_2":
            raise DlibFormatError(f"expected dlib's metric loss, found {network.loss.name}")
        layers = iter(network.layers)
        self.mean_rgb.copy_(torch.tensor([network.input.fields[k] for k in ("avg_red", "avg_green", "avg_blue")]))

        def expect(name: str, where: str) -> LayerRecord:
            record = next(layers, None)
            if record is None or record.name != name:
                found = "the end of the file" if record is None else f"'{record.name}' at offset {record.offset}"
                raise DlibFormatError(f"not dlib's face recognition ResNet: {where} should be '{name}', found {found}")
            return record

        _load_conv(self.stem, expect("con_4", "stem conv"))
        _load_affine(self.stem_affine, expect("affine_", "stem affine"))
        expect("relu_", "stem relu")
        expect("max_pool_2", "stem max pool")
        for index, unit in enumerate(self.units):
            where = f"residual unit {index + 1}"
            _load_conv(unit.conv1, expect("con_4", where))
            _load_affine(unit.affine1, expect("affine_", where))
            expect("relu_", where)
            _load_conv(unit.conv2, expect("con_4", where))
            _load_affine(unit.affine2, expect("affine_", where))
            if unit.downsample:
                expect("avg_pool_2", where)
            expect("add_prev_", where)
            expect("relu_", where)
        expect("avg_pool_2", "global average pool")
        fc = expect("fc_2", "fully connected layer")
        weights = fc.fields["params"].reshape(-1)[: 256 * 128].reshape(256, 128)
        self.fc.weight.data.copy_(torch.from_numpy(weights.T.copy()))
        leftover = next(layers, None)
        if leftover is not None:
            raise DlibFormatError(f"unexpected layer '{leftover.name}' at offset {leftover.offset} after the fc layer")


def _load_conv(conv: DlibConv2d, record: LayerRecord) -> None:
    fields = record.fields
    shape = tuple(conv.weight.shape)
    if fields["filters"] != shape or (fields["stride_y"], fields["padding_y"]) != (conv.stride[0], conv.padding[0]):
        raise DlibFormatError(f"conv at offset {record.offset}: filters {fields['filters']} stride {fields['stride_y']} "
                              f"padding {fields['padding_y']}, expected {shape} stride {conv.stride[0]} padding {conv.padding[0]}")
    flat = fields["params"].reshape(-1)
    count = int(np.prod(shape))
    if flat.size != count + shape[0]:
        raise DlibFormatError(f"conv at offset {record.offset}: {flat.size} parameters, expected {count + shape[0]}")
    conv.weight.data.copy_(torch.from_numpy(flat[:count].reshape(shape)))
    conv.bias.data.copy_(torch.from_numpy(flat[count:]))


def _load_affine(affine: Affine, record: LayerRecord) -> None:
    flat = record.fields["params"].reshape(-1)
    channels = affine.scale.numel()
    if flat.size != 2 * channels:
        raise DlibFormatError(f"affine at offset {record.offset}: {flat.size} parameters, expected {2 * channels}")
    affine.scale.data.copy_(torch.from_numpy(flat[:channels]))
    affine.shift.data.copy_(torch.from_numpy(flat[channels:]))


@register_embedder("dlib-resnet")
class DlibResNetEmbedder(Embedder):
    """The port as an embedder: aligned 150x150 chips in, 128-D descriptors out, differentiable."""

    metric = "euclidean"
    crop = DLIB_CHIP
    input_size = (DLIB_CHIP.size, DLIB_CHIP.size)

    def __init__(self, weights: str | Path | None = None):
        # resolved: a venv reached through a symlink (a worktree's .venv) names the same file, so the same cache key
        path = (Path(weights) if weights else packaged_model_path(WEIGHTS_FILE)).resolve()
        super().__init__(weights=str(path), weights_bytes=path.stat().st_size if path.exists() else None)
        self.network = DlibFaceResNet.from_dat(path)

    def transform(self, chip: Image.Image) -> torch.Tensor:
        return TF.pil_to_tensor(chip.convert("RGB").resize(self.input_size, Image.Resampling.BILINEAR)).float()

    def forward(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        return self.network(self.network.normalise(chips_0_255))


@register_embedder("dlib-bin")
class DlibBinEmbedder(DlibResNetEmbedder):
    """dlib-bin's own `compute_face_descriptor` on the same chips: the reference the port is checked against."""

    def __init__(self, weights: str | Path | None = None):
        try:
            import dlib
        except ImportError:
            raise UserError("the 'dlib-bin' reference embedder needs dlib-bin: pip install dlib-bin") from None
        path = (Path(weights) if weights else packaged_model_path(WEIGHTS_FILE)).resolve()
        if not path.is_file():
            raise UserError(f"dlib network file not found: {path}")
        Embedder.__init__(self, weights=str(path), weights_bytes=path.stat().st_size)
        try:
            self.reference = dlib.face_recognition_model_v1(str(path))
        except RuntimeError as error:  # dlib's deserialisation error on a cut-off or foreign file
            first_line = (str(error).strip().splitlines() or ["unreadable"])[0][:160]
            raise UserError(f"{path}: dlib cannot read this network file ({path.stat().st_size} bytes; {first_line}); "
                            "it is truncated or not dlib_face_recognition_resnet_model_v1.dat: "
                            "reinstall face-recognition-models") from None

    def forward(self, chips_0_255: torch.Tensor) -> torch.Tensor:
        chips = [np.ascontiguousarray(c) for c in chips_0_255.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()]
        return torch.tensor(np.array(self.reference.compute_face_descriptor(chips)), dtype=torch.float32)
