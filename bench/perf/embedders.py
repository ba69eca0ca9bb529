"""Embeddings per second: the PyTorch port of dlib's ResNet vs dlib-bin, side by side in one run.

    python -m bench.perf.embedders [--batch-size 32] [--batches 6] [--threads 2]

Both get the same real LFW chips (dlib-bin's own chips of DevTest people); each variant is timed
over the same batches after one warm-up batch. dlib-bin is the reference implementation
(`pip install dlib-bin`).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.common.datasets import data_root
from bench.perf.record import write_record
from recognition.faces.align import DLIB_CHIP, DlibChipAligner
from protocols.lfw_files import LFWLayout
from recognition.embedders import get_embedder


def real_chips(root, count: int) -> torch.Tensor:
    layout = LFWLayout(data_root(root))
    people = layout.people("peopleDevTest.txt")
    images = [Image.open(layout.image_path(p.name, 1)).convert("RGB") for p in people[:count]]
    chips, _ = DlibChipAligner().chips(images, DLIB_CHIP)
    return torch.stack([torch.from_numpy(np.array(c)).permute(2, 0, 1).float() for c in chips])


def time_variant(forward, batches: list[torch.Tensor]) -> float:
    """Embeddings per second over `batches`, after one warm-up call."""
    with torch.inference_mode():
        forward(batches[0])
        start = time.perf_counter()
        for batch in batches:
            forward(batch)
        elapsed = time.perf_counter() - start
    return sum(len(b) for b in batches) / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.embedders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.batch_size < 1 or args.batches < 1:
        raise UserError("--batch-size and --batches must be positive")
    torch.set_num_threads(args.threads)
    chips = real_chips(args.data_root, args.batch_size * args.batches)
    batches = list(chips.split(args.batch_size))
    port, reference = get_embedder("dlib-resnet"), get_embedder("dlib-bin")

    def port_bf16(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return port(batch)

    port_cl = get_embedder("dlib-resnet").to(memory_format=torch.channels_last)
    variants = {
        "dlib-bin compute_face_descriptor": reference,
        "port fp32": port,
        "port fp32 channels-last": lambda b: port_cl(b.contiguous(memory_format=torch.channels_last)),
        "port bf16 autocast": port_bf16,
    }
    rows = []
    for name, forward in variants.items():
        rate = time_variant(forward, batches)
        rows.append({"variant": name, "embeddings_per_s": rate, "ms_per_batch": 1000 * args.batch_size / rate})
    with torch.inference_mode():
        difference = float((port(batches[0]) - reference(batches[0])).abs().max())
        bf16_difference = float((port_bf16(batches[0]).float() - reference(batches[0])).abs().max())
    base = rows[0]["embeddings_per_s"]
    for row in rows:
        row["speed_vs_dlib_bin"] = row["embeddings_per_s"] / base
    command = f"python -m bench.perf.embedders --batch-size {args.batch_size} --batches {args.batches} --threads {args.threads}"
    notes = (f"{len(chips)} real LFW chips (150x150), batch {args.batch_size}, {args.threads} torch threads. "
             f"Max |port - dlib-bin| on one batch: fp32 {difference:.2e}, bf16 {bf16_difference:.2e}.")
    frame = write_record("embedders", "dlib face recognition ResNet: port vs dlib-bin", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".2f"))
    print(notes)
    return 0


if __name__ == "__main__":
    run_main(main)
