"""Rendering speed of 3DMM faces into aligned 108x108 crops, and peak memory over many images.

    python -m bench.perf.render [--images 2048] [--batch-size 64] [--processes 1]

Times, side by side in one run: sampling + shape assembly, rendering + alignment (the renderer's
own work), encoding PNG/JPEG in memory, and writing PNG files as `generators.render` does, in images/s; reports peak resident
memory (ru_maxrss) and its growth between the first and the last quarter of the run, which must be
near zero for memory not to grow with the number of images.
"""
from __future__ import annotations

import argparse
import io
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from bench.common.cli import add_common_arguments, run_main, setup_logging
from bench.perf.record import write_record
from recognition.faces.align import CANONICAL_CROP
from generators.morphable.render import FaceRenderer, batch_from_samples
from generators.morphable.sampling import sample_identity, sample_image
from bench.common.atomic import save_image_atomically
from generators.render import RenderConfig, load_render_model


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--per-identity", type=int, default=8)
    parser.add_argument("--keep-triangles", type=float, default=RenderConfig.keep_triangles)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    model = load_render_model(RenderConfig(keep_triangles=args.keep_triangles))
    renderer = FaceRenderer(model, CANONICAL_CROP, args.batch_size)
    timings = {"sample": 0.0, "render": 0.0, "png": 0.0, "jpg": 0.0, "write": 0.0}
    scratch = Path(tempfile.mkdtemp(prefix="facebench-render-"))
    rss = []
    done = 0
    identity_cache = {}
    while done < args.images:
        count = min(args.batch_size, args.images - done)
        start = time.perf_counter()
        samples = []
        for k in range(done, done + count):
            identity = k // args.per_identity
            if identity not in identity_cache:
                identity_cache.clear()
                identity_cache[identity] = sample_identity(model, 0, identity)
            samples.append((identity_cache[identity], sample_image(model, 0, identity, k % args.per_identity)))
        batch = batch_from_samples(model, samples)
        timings["sample"] += time.perf_counter() - start
        start = time.perf_counter()
        images, _ = renderer.render(batch)
        timings["render"] += time.perf_counter() - start
        for name, options in (("png", {"format": "PNG", "compress_level": 1}), ("jpg", {"format": "JPEG", "quality": 95})):
            start = time.perf_counter()
            for pixels in images:
                Image.fromarray(pixels).save(io.BytesIO(), **options)
            timings[name] += time.perf_counter() - start
        start = time.perf_counter()
        for offset, pixels in enumerate(images):  # as generators.render writes: PNG, temporary name, rename
            save_image_atomically(pixels, scratch / f"{(done + offset) // 1000:04d}" / f"{done + offset:06d}.png", "png")
        timings["write"] += time.perf_counter() - start
        done += count
        rss.append(peak_rss_mb())
    shutil.rmtree(scratch)
    total = args.images
    rows = [
        {"stage": "sample + shapes (numpy)", "images_per_s": total / timings["sample"]},
        {"stage": "render + align (renderer)", "images_per_s": total / timings["render"]},
        {"stage": "encode PNG level 1", "images_per_s": total / timings["png"]},
        {"stage": "encode JPEG q95", "images_per_s": total / timings["jpg"]},
        {"stage": "end to end, PNG (sample + render + encode)",
         "images_per_s": total / (timings["sample"] + timings["render"] + timings["png"])},
        {"stage": "end to end, JPEG", "images_per_s": total / (timings["sample"] + timings["render"] + timings["jpg"])},
        {"stage": "end to end, PNG written to disk atomically",
         "images_per_s": total / (timings["sample"] + timings["render"] + timings["write"])},
    ]
    quarter = max(1, len(rss) // 4)
    notes = (f"{total} images, batch {args.batch_size}, {len(model.triangles)} triangles per face, one process. "
             f"Peak RSS {rss[-1]:.0f} MB; growth from the end of the first quarter to the end: "
             f"{rss[-1] - rss[quarter - 1]:.1f} MB.")
    command = (f"python -m bench.perf.render --images {args.images} --batch-size {args.batch_size} "
               f"--keep-triangles {args.keep_triangles}")
    frame = write_record("render", "3DMM rendering into aligned 108x108 crops", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".1f"))
    print(notes)
    return 0


if __name__ == "__main__":
    run_main(main)
