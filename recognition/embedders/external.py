"""Bring your own face network, in every protocol and as the identity network C: ONNX, TorchScript, timm.

    python -m protocols.lfw --embedder 'onnx:/models/arcface.onnx?colour=rgb&std=127.5' --split 10fold
    get_embedder("torchscript:/models/net.pt", input_size=112, crop=0.25, metric="euclidean")
    get_embedder("timm:resnet18:/runs/face/checkpoint.pth", num_classes=512)

Names: `onnx:PATH`, `torchscript:PATH` (a file saved by `torch.jit.script(model).save(PATH)` or
`torch.jit.trace`) and `timm:NAME[:CHECKPOINT]` (a timm architecture and a state dict trained for it;
timm's own pretrained weights come from the Hugging Face hub, which this project never contacts, so a
checkpoint is required; `weights=PATH`, i.e. `--weights`, gives it too). Options, as keywords of
`get_embedder` or after '?' in the name (values as text there; lists comma-separated):

- `input_size`: side of the square input in pixels; default: the ONNX graph's own size, else 112;
- `mean`, `std`: the network receives (x - mean) / std of 0..255 pixel values; one number or three,
  in the network's channel order. Default 127.5 and 127.5 (inputs in [-1, 1], as ArcFace/insightface);
  for ImageNet-style weights use mean=123.675,116.28,103.53 and std=58.395,57.12,57.375;
- `colour`: 'rgb' (default) or 'bgr' (networks trained on OpenCV-loaded images without a swap);
- `crop`: 'arcface' (default: `align.ARCFACE_CROP`, the 112x112 five-point template of ArcFace and of
  most public face models), 'dlib' (padding 0.25, the project's canonical crop), or a number: the
  padding around the unit face frame (see recognition/faces/align.py);
- `metric`: 'cosine' (default) or 'euclidean';
- `backend` (onnx only): 'torch' (onnx2torch; differentiable, the default) or 'onnxruntime';
- `num_classes` (timm only): size of the head; 0 (default) gives the pooled features.

`forward` takes RGB chips of 0..255 values, (N, 3, S, S), like every embedder, and applies the colour
order and normalisation itself, so any of these can serve as C. Files are read when the embedder is
built and the output shape is checked on the first batch (it must be (N, D)); any problem is a
UserError that names the file. Cache keys include the file's SHA-256, so a changed file is re-embedded.
These conventions, their options and the checkpoint reading live in `recognition.embedders.own_model`,
shared with insightface's and AdaFace's released formats (`iresnet:`, `mobilefacenet:`, `adaface:`).
"""
from __future__ import annotations

from typing import Any

import torch

from bench.common.cli import UserError
from recognition.embedders.onnx_graph import OnnxRuntimeNetwork, input_shape, load_onnx, to_torch
from recognition.embedders.own_model import ExternalEmbedder, integer, model_file, read_state_dict
from recognition.embedders.registry import register_embedder_prefix


@register_embedder_prefix("onnx", "onnx:PATH")
def onnx_embedder(target: str, backend: str = "torch", input_size: Any = None, mean: Any = 127.5, std: Any = 127.5,
                  colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    file = model_file(target, "ONNX")
    model = load_onnx(file)
    dims = input_shape(model)
    if len(dims) != 4 or dims[1] not in (3, None):
        raise UserError(f"{file}: the input must be (N, 3, H, W) images; the graph's input has shape {dims}")
    if dims[2] is not None and dims[3] is not None:
        if dims[2] != dims[3]:
            raise UserError(f"{file}: the input is {dims[2]}x{dims[3]}; only square inputs are supported")
        if input_size is not None and integer(input_size, "input_size", str(file), 8) != dims[2]:
            raise UserError(f"{file}: the graph takes {dims[2]}x{dims[3]} images, not input_size {input_size}")
        input_size = dims[2]
    if backend not in ("torch", "onnxruntime"):
        raise UserError(f"onnx:{target}: option backend must be 'torch' or 'onnxruntime', not '{backend}'")
    network = to_torch(model, file) if backend == "torch" else OnnxRuntimeNetwork(model, file)
    return ExternalEmbedder(network, f"onnx:{target}", file, input_size, mean, std, colour, crop, metric,
                            kind="onnx", backend=backend)


@register_embedder_prefix("torchscript", "torchscript:PATH")
def torchscript_embedder(target: str, input_size: Any = None, mean: Any = 127.5, std: Any = 127.5,
                         colour: str = "rgb", crop: Any = "arcface", metric: str = "cosine") -> ExternalEmbedder:
    file = model_file(target, "TorchScript")
    try:
        network = torch.jit.load(str(file), map_location="cpu").eval()
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{file} is not a TorchScript file ({first}); save one with torch.jit.script(model).save(PATH), "
                        f"or for a state dict of a timm model use timm:NAME:CHECKPOINT") from None
    return ExternalEmbedder(network, f"torchscript:{target}", file, input_size, mean, std, colour, crop, metric,
                            kind="torchscript")


@register_embedder_prefix("timm", "timm:NAME[:CHECKPOINT]")
def timm_embedder(target: str, weights: str | None = None, num_classes: Any = 0, input_size: Any = None,
                  mean: Any = 127.5, std: Any = 127.5, colour: str = "rgb", crop: Any = "arcface",
                  metric: str = "cosine") -> ExternalEmbedder:
    import timm

    name, _, checkpoint = target.partition(":")
    if checkpoint and weights:
        raise UserError(f"timm:{target}: give the checkpoint once, in the name or as weights=, not both")
    checkpoint = checkpoint or weights
    if not checkpoint:
        raise UserError(f"timm:{name} needs a checkpoint: timm:{name}:PATH (or weights=PATH). timm's pretrained "
                        f"weights are downloaded from the Hugging Face hub at run time, which this project never does")
    file = model_file(str(checkpoint), "checkpoint")
    classes = integer(num_classes, "num_classes", f"timm:{target}", 0)
    try:
        network = timm.create_model(name, pretrained=False, num_classes=classes)
    except Exception as error:  # timm raises RuntimeError('Unknown model ...') and others
        raise UserError(f"timm cannot build '{name}': {error}") from None
    try:
        network.load_state_dict(read_state_dict(file))
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        raise UserError(f"{file} does not fit timm's {name} with num_classes={classes}: "
                        f"{' '.join(line.strip() for line in lines[1:3]) or lines[0]}") from None
    return ExternalEmbedder(network.eval(), f"timm:{target}", file, input_size, mean, std, colour, crop, metric,
                            kind="timm", architecture=name, num_classes=classes)
