"""A pure-Python reader of dlib's DNN serialization (`.dat` files written by `dlib::serialize(net)`).

No dlib import and no C++ build: the file is a stream of dlib's primitive encodings, read here in the
order dlib writes them (see ../shared/FACTS.md for the measured layout):

- integer: one control byte (0x80 = negative, low 4 bits = number of magnitude bytes), then the
  magnitude, little-endian;
- bool: the ASCII character '1' or '0';
- float scalar: an integer mantissa and an integer exponent, value = mantissa * 2**exponent;
- string: an integer length, then the bytes;
- tensor (version 2): num_samples, k, nr, nc, then raw little-endian float32 in that (NCHW) order;
- alias tensor (version 1): num_samples, k, nr, nc only (a view into a layer's flat params).

A network is: the loss layer's version, name and fields; the wrapper versions from the output to the
input (2 for a computational layer, 1 for a tag or skip, which carry nothing else); the input layer;
then for each computational layer from input to output its name and fields, three bools and three
(empty) tensors of training state (the layer on the input adds its sample expansion factor). `read_network` returns the layers as records; the wiring between
them (tags, skips) is not in the file and comes from the network's definition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common.cli import UserError


class DlibFormatError(UserError):
    """The file is not a dlib network of the expected kind, or is truncated; says where."""


@dataclass
class LayerRecord:
    """One serialized layer: its dlib type name, its fields, and where in the file it started."""

    name: str
    offset: int
    fields: dict[str, Any] = field(default_factory=dict)


class _Stream:
    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0
        self.context = "file header"

    def fail(self, message: str, offset: int | None = None) -> DlibFormatError:
        where = self.pos if offset is None else offset
        return DlibFormatError(f"{self.path}: offset {where} ({self.context}): {message}")

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise self.fail(f"file ends after {len(self.data)} bytes, {count} more needed (truncated?)")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}", self.pos - 1)
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def boolean(self) -> bool:
        char = self.take(1)
        if char not in (b"0", b"1"):
            raise self.fail(f"expected a bool ('0' or '1'), found byte 0x{char[0]:02x}", self.pos - 1)
        return char == b"1"

    def scalar(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 256:
            raise self.fail(f"implausible string length {length}")
        raw = self.take(length)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"expected a layer name, found bytes {raw[:16]!r}", self.pos - length) from None

    def tensor(self) -> np.ndarray:
        start = self.pos
        version = self.integer()
        if version != 2:
            raise self.fail(f"tensor version {version}, expected 2", start)
        shape = tuple(self.integer() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative tensor shape {shape}", start)
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count), dtype="<f4").reshape(shape).copy()

    def alias(self) -> tuple[int, int, int, int]:
        start = self.pos
        version = self.integer()
        if version != 1:
            raise self.fail(f"alias tensor version {version}, expected 1", start)
        return tuple(self.integer() for _ in range(4))


def _multipliers(stream: _Stream) -> dict[str, float]:
    keys = ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
            "bias_weight_decay_multiplier")
    return {key: stream.scalar() for key in keys}


def _read_con(s: _Stream) -> dict[str, Any]:
    fields = {"params": s.tensor()}
    for key in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
        fields[key] = s.integer()
    fields["filters"], fields["biases"] = s.alias(), s.alias()
    return {**fields, **_multipliers(s)}


def _read_affine(s: _Stream) -> dict[str, Any]:
    return {"params": s.tensor(), "gamma": s.alias(), "beta": s.alias(), "mode": s.integer()}


def _read_pool(s: _Stream) -> dict[str, Any]:
    return {key: s.integer() for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")}


def _read_fc(s: _Stream) -> dict[str, Any]:
    fields = {"num_outputs": s.integer(), "num_inputs": s.integer(), "params": s.tensor(),
              "weights": s.alias(), "biases": s.alias(), "bias_mode": s.integer()}
    return {**fields, **_multipliers(s)}


def _read_input_rgb(s: _Stream) -> dict[str, Any]:
    fields = {"avg_red": s.scalar(), "avg_green": s.scalar(), "avg_blue": s.scalar()}
    fields["nr"], fields["nc"] = s.integer(), s.integer()
    return fields


def _read_nothing(s: _Stream) -> dict[str, Any]:
    return {}


LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": _read_nothing,
    "add_prev_": _read_nothing,
    "max_pool_2": _read_pool,
    "avg_pool_2": _read_pool,
    "fc_2": _read_fc,
}
INPUT_READERS = {"input_rgb_image_sized": _read_input_rgb}
LOSS_READERS = {
    "loss_metric_2": lambda s: {"margin": s.scalar(), "distance_threshold": s.scalar()},
}


@dataclass
class DlibNetwork:
    loss: LayerRecord
    input: LayerRecord
    layers: list[LayerRecord]  # computational layers, input to output
    wrapper_versions: list[int]  # output to input: 2 = computational layer (3 for the one on the input), 1 = tag or skip


def read_network(path: str | Path) -> DlibNetwork:
    """Parse a dlib DNN file completely; DlibFormatError names the offset and layer on any mismatch."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read dlib network file {path}: {error}") from None
    s = _Stream(data, path)
    s.context = "loss layer"
    loss_version = s.integer()
    if loss_version != 1:
        raise s.fail(f"loss wrapper version {loss_version}, expected 1 (is this a dlib DNN file?)", 0)
    loss = _record(s, LOSS_READERS, "loss layer")
    versions: list[int] = []
    s.context = "layer wrapper versions"
    while True:
        start = s.pos
        value = s.integer()
        if value not in (1, 2, 3):  # the input layer's name length comes next
            s.pos = start
            break
        versions.append(value)
    net_input = _record(s, INPUT_READERS, "input layer")
    layers = []
    computational = sum(v in (2, 3) for v in versions)
    for index in range(computational):
        record = _record(s, LAYER_READERS, f"layer {index + 1} of {computational}")
        s.context = f"layer {index + 1} ({record.name}) training state"
        for _ in range(3):
            s.boolean()
        for _ in range(3):
            s.tensor()
        if index == 0 and versions[-1] == 3:
            record.fields["sample_expansion_factor"] = s.integer()  # kept by the layer on the input only
        layers.append(record)
    if s.pos != len(data):
        s.context = "end of network"
        raise s.fail(f"{len(data) - s.pos} unread bytes after the last layer")
    return DlibNetwork(loss, net_input, layers, versions)


def _record(s: _Stream, readers: dict, what: str) -> LayerRecord:
    start = s.pos
    s.context = what
    name = s.string()
    if name not in readers:
        raise s.fail(f"unsupported layer type '{name}' (known: {', '.join(readers)})", start)
    s.context = f"{what} ({name})"
    return LayerRecord(name, start, readers[name](s))
