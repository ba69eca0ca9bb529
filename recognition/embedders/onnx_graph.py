"""ONNX networks as PyTorch modules (onnx2torch) or behind onnxruntime, for the embedders that load them.

Not an embedder: the helper `sface` and `external` share (as `dlib_format` is dlib_resnet's reader).

`load_onnx` reads a file and tidies its graph in memory, so both runtimes accept files written by old
or quantising exporters:

- graph inputs that are really weights, or that no node reads, are dropped: IR-3 files (SFace's,
  converted from MXNet) list every initializer as an input too, and OpenCV Zoo's block quantiser
  left the names of the weights it replaced among the inputs;
- weight-only quantisation is folded: `DequantizeLinear` (per tensor, per axis or in blocks, opset 21)
  and `Reshape` nodes whose inputs are all constants become float32 initializers. onnxruntime runs the
  same arithmetic on those weights, (x - zero_point) * scale, so nothing changes but the runtime:
  onnx2torch has no converter for blocked DequantizeLinear;
- a fixed batch size of the first input and output becomes a named dimension, so batches of any size run.

onnx2torch's conversion takes about a second; its result (a torch.fx GraphModule) is not cached on
disk, since loading a pickled module back would need unsafe unpickling. `to_torch` then folds each
batch norm into the convolution before it (the network is used frozen; the input gradient is
unchanged) and runs in channels-last memory format: together about twice as fast for SFace on this
CPU (6.6 -> 12.7 faces/s at batch 32, one thread; onnxruntime 14.0), outputs equal to 2.4e-6.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common.cli import UserError

INSTALL = {"onnx": "onnx==1.23.2", "onnx2torch": "onnx2torch==1.5.15", "onnxruntime": "onnxruntime==1.32.0",
           "cv2": "opencv-python-headless==4.12.0.88"}


def require(module: str, purpose: str):
    """Import an optional package, or stop with what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise UserError(f"{purpose} needs the package '{module}': pip install {INSTALL.get(module, module)} "
                        f"({error})") from None


def load_onnx(path: str | Path):
    """The ONNX model in `path`, tidied (see the module docstring); UserError naming the file otherwise."""
    onnx = require("onnx", "reading ONNX files")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:  # protobuf decode errors, checker errors: all mean "not a usable ONNX file"
        raise UserError(f"{path} is not a valid ONNX model: {str(error).splitlines()[0] if str(error) else error}") from None
    if len(_real_inputs(model)) != 1 or len(model.graph.output) != 1:
        raise UserError(f"{path}: an embedder network takes one image tensor and gives one feature tensor; this "
                        f"graph has inputs {[i.name for i in _real_inputs(model)]} and outputs "
                        f"{[o.name for o in model.graph.output]}")
    _fold_constant_weights(model, path)
    keep = _real_inputs(model)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    for value in (model.graph.input[0], model.graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"
    return model


def _real_inputs(model) -> list:
    """Graph inputs that some node reads and that are not weights."""
    weights = {i.name for i in model.graph.initializer}
    read = {name for node in model.graph.node for name in node.input}
    return [i for i in model.graph.input if i.name not in weights and i.name in read]


def input_shape(model) -> list[int | None]:
    """The first input's shape; None for a named or unknown dimension."""
    return [d.dim_value if d.HasField("dim_value") else None for d in model.graph.input[0].type.tensor_type.shape.dim]


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear: (x - zero_point) * scale, per tensor, per axis, or per block along `axis`."""
    zero = np.zeros_like(scale) if zero is None else zero

    def expand(a: np.ndarray) -> np.ndarray:
        if a.size == 1:
            return a.reshape(())
        if block:
            return np.repeat(a, block, axis=axis).take(np.arange(x.shape[axis]), axis=axis)
        shape = [1] * x.ndim
        shape[axis] = -1
        return a.reshape(shape)

    return ((x.astype(np.float32) - expand(zero).astype(np.float32)) * expand(scale).astype(np.float32)).astype(np.float32)


def _fold_constant_weights(model, path: Path) -> None:
    from onnx import helper, numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    folded, kept = {}, []
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (node.op_type in ("DequantizeLinear", "Reshape")
                                          and all(name in constants for name in inputs)):
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            try:
                if node.op_type == "Constant":
                    if "value" not in attributes:
                        kept.append(node)
                        continue
                    value = numpy_helper.to_array(attributes["value"])
                elif node.op_type == "DequantizeLinear":
                    x, scale = constants[node.input[0]], constants[node.input[1]]
                    zero = constants[node.input[2]] if len(node.input) > 2 and node.input[2] else None
                    axis = attributes.get("axis", 1) % max(x.ndim, 1)
                    value = _dequantize(x, scale, zero, axis, attributes.get("block_size", 0))
                else:
                    data, shape = constants[node.input[0]], constants[node.input[1]].astype(int)
                    shape = [data.shape[i] if d == 0 and not attributes.get("allowzero") else d for i, d in enumerate(shape)]
                    value = data.reshape(shape)
            except Exception as error:
                raise UserError(f"{path}: cannot fold the constant {node.op_type} node '{node.name}': {error}") from None
            constants[node.output[0]] = folded[node.output[0]] = value
        else:
            kept.append(node)
    if not folded:
        return
    used = {name for node in kept for name in node.input} | {o.name for o in model.graph.output}
    initializers = [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items() if name in used]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)


def to_torch(model, path: str | Path) -> nn.Module:
    """The tidied ONNX `model` as a PyTorch module (onnx2torch): differentiable, batched.

    onnx2torch registers converters per operator version and lags the newest opsets (1.5.15 has no
    Flatten-21, which OpenCV Zoo's opset-21 int8 files use). When a converter is missing, the graph is
    converted down one opset at a time with onnx's own version converter, whose adapters refuse any
    step that would change the computation, until onnx2torch accepts it (opset 13 at the lowest)."""
    onnx2torch = require("onnx2torch", f"running {path} in PyTorch")
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    attempt, first_error, network = model, None, None
    for target in [opset] + list(range(opset - 1, 12, -1)):
        try:
            if target != opset:
                attempt = version_converter.convert_version(model, target)
            network = onnx2torch.convert(attempt).eval()
            break
        except NotImplementedError as error:
            first_error = first_error or error
        except Exception as error:
            if target == opset:
                raise UserError(f"{path}: onnx2torch failed to convert the graph: {error}") from None
            break  # the version converter refused: no lower opset to try
    if network is None:
        raise UserError(f"{path}: onnx2torch cannot convert this graph ({first_error}); try backend='onnxruntime'")
    fuse_conv_batchnorm(network)
    return ChannelsLast(network.to(memory_format=torch.channels_last))


def fuse_conv_batchnorm(graph_module) -> int:
    """Fold every BatchNorm2d that only follows a Conv2d into that convolution (eval mode); returns how many.

    torch.fx.experimental.optimization.fuse does the same but re-traces the module, which onnx2torch's
    PRelu (Python control flow on shapes) does not allow; this edits the converted graph directly."""
    from torch import fx
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    modules = dict(graph_module.named_modules())
    fused = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not (isinstance(source, fx.Node) and source.op == "call_module" and len(source.users) == 1
                and isinstance(modules.get(source.target), nn.Conv2d)):
            continue
        parent, _, name = source.target.rpartition(".")
        setattr(graph_module.get_submodule(parent), name, fuse_conv_bn_eval(modules[source.target], modules[node.target]))
        node.replace_all_uses_with(source)
        graph_module.graph.erase_node(node)
        fused += 1
    if fused:
        graph_module.graph.lint()
        graph_module.delete_all_unused_submodules()
        graph_module.recompile()
    return fused


class ChannelsLast(nn.Module):
    """Runs `network` on channels-last input (faster convolutions on CPU; same results)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.contiguous(memory_format=torch.channels_last))


class OnnxRuntimeNetwork(nn.Module):
    """The tidied ONNX `model` behind an onnxruntime CPU session: tensor in, tensor out, no gradient.

    It uses as many threads as torch is told to (`torch.get_num_threads()` when built)."""

    def __init__(self, model, path: str | Path):
        super().__init__()
        ort = require("onnxruntime", f"running {path} in onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise UserError(f"{path}: onnxruntime cannot load the graph: {error}") from None
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32))
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])
