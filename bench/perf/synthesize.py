"""GANFaces synthesis speed end to end (render + G + scores + encode + write), and where the time goes.

    python -m bench.perf.synthesize [--images 600] [--presets cpu,paper]

Each row runs `generators.synthesize` itself into a scratch folder with an untrained translator of the
preset's network (speed does not depend on the weights): fp32, bf16 autocast, bf16 + channels-last,
bf16 and fp32 without the confidence scores (D_R, G' and C forwards), and the last with 1 and 2 render
workers (`--render-workers`: processes rendering the next chunks while G translates). The split columns
are seconds per 1,000 images spent rendering in the main process (sampling included), waiting for the
render workers, in G, in the scores, and encoding and writing JPEGs. `--variants 'A;B'` picks some by name.
Peak resident memory is read after every variant; it must not grow with the number of images.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.common.cli import UserError, add_common_arguments, run_main, setup_logging
from bench.perf.record import write_record
from generators.synthesis_plan import SynthesisConfig
from generators.synthesize import synthesize
from generators.translator import save_untrained_translator

# (name, SynthesisConfig fields, render workers)
VARIANTS = (
    ("fp32", {"bf16": False}, 0),
    ("bf16 autocast", {"bf16": True}, 0),
    ("bf16 + channels-last", {"bf16": True, "channels_last": True}, 0),
    ("bf16, no scores", {"bf16": True, "scores": False}, 0),
    ("fp32, no scores", {"bf16": False, "scores": False}, 0),
    ("fp32, no scores, 1 render worker", {"bf16": False, "scores": False}, 1),
    ("fp32, no scores, 2 render workers", {"bf16": False, "scores": False}, 2),
)


def memory_growth(generator: Path, scratch: Path, identities: tuple[int, int] = (50, 300)) -> list[tuple[int, float]]:
    """Peak resident memory of `generators.synthesize` processes making 20 x `identities` images."""
    import subprocess
    import sys

    peaks = []
    for count in identities:
        subprocess.run([sys.executable, "-m", "generators.synthesize", "--generator", str(generator), "--preset", "cpu",
                        "--identities", str(count), "--out", str(scratch / f"memory-{count}")],
                       check=True, capture_output=True)
        # children's peak so far; the second process makes more images, so its peak is the maximum
        peaks.append((count * 20, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024))
    return peaks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.synthesize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument("--images", type=int, default=600, help="images per variant (whole identities of 20)")
    parser.add_argument("--presets", default="cpu,paper", help="translator network sizes to time")
    parser.add_argument("--variants", help="variant names separated by ';' (they contain commas; default: all); "
                                           "the record is then written as synthesize-subset")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    names = [name for name, _, _ in VARIANTS]
    chosen = names if args.variants is None else [name.strip() for name in args.variants.split(";")]
    unknown = [name for name in chosen if name not in names]
    if unknown:
        raise UserError(f"--variants: unknown {', '.join(unknown)}; choose from: {'; '.join(names)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="facebench-synthesize-") as scratch:
        for preset in args.presets.split(","):
            generator = save_untrained_translator(Path(scratch) / f"{preset}.pt", preset)
            # warm-up: the 3DMM conversion cache, the EGL context, the embedder's weights
            synthesize(SynthesisConfig(identities=2, per_identity=4), generator, Path(scratch) / f"warm-{preset}",
                       progress=False)
            for variant, options, workers in VARIANTS:
                if variant not in chosen:
                    continue
                config = replace(SynthesisConfig(identities=max(1, args.images // 20), per_identity=20), **options)
                started = time.perf_counter()
                summary = synthesize(config, generator, Path(scratch) / f"{preset}-{variant}", progress=False,
                                     render_workers=workers)
                seconds = time.perf_counter() - started
                per_thousand = {f"{k}_s_per_1k": 1000 * v / summary["images"] for k, v in summary["split"].items()}
                rows.append({"translator": preset, "variant": variant, "render_workers": workers,
                             "images": summary["images"],
                             "images_per_s": summary["images"] / seconds, **per_thousand,
                             "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
                print(rows[-1], flush=True)
        memory = (None if args.variants else
                  memory_growth(save_untrained_translator(Path(scratch) / "memory.pt", "cpu"), Path(scratch)))
    command = f"python -m bench.perf.synthesize --images {args.images} --presets {args.presets}" + (
        f" --variants '{args.variants}'" if args.variants else "")
    notes = ("End to end = wall time of `synthesize()` including the merge (metadata.csv, contact sheet); G runs at "
             "the translator's training size (cpu preset 64x64, paper 108x108) and its output is resized to 108x108. "
             "One process (plus its render workers where the variant has them), the default torch threads (2). "
             "Target: at least 30 images/s at 108x108. ")
    if memory is not None:
        notes += (f"Memory does not grow with the number of images: peak RSS of a separate process making "
                  f"{memory[0][0]:,} images {memory[0][1]:.0f} MB, making {memory[1][0]:,} images "
                  f"{memory[1][1]:.0f} MB (cpu translator, scores on).")
    frame = write_record("synthesize" if args.variants is None else "synthesize-subset", "GANFaces synthesis: images/s end to end and time split", command, rows, notes)
    print(frame.to_markdown(index=False, floatfmt=".1f"))
    return 0


if __name__ == "__main__":
    run_main(main)
