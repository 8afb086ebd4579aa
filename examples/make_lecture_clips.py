"""Generate a small lecture's worth of clips through convviz's Python API.

    python examples/make_lecture_clips.py                 # into ./lecture-clips, 720p
    python examples/make_lecture_clips.py --out /tmp/x --quality l --max-steps 3

For every layer below it checks the derivation first (symbolic identities and numeric
cross-checks), then renders the forward pass and the three gradients, each with a
timeline and WebVTT chapters, and prints what it wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import convviz
from convviz import ConvSpec

LAYERS = {
    "seed": ConvSpec(input_size=(6, 6), kernel_size=(3, 3)),
    "strided": ConvSpec(input_size=(5, 5), kernel_size=(3, 3), stride=2, padding=1),
}
CLIPS = ("forward", "dw", "da", "db")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("lecture-clips"))
    parser.add_argument("--quality", default="m", choices=["l", "m", "h", "k"])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--layers", nargs="*", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--clips", nargs="*", default=list(CLIPS), choices=list(CLIPS))
    args = parser.parse_args(argv)

    for name in args.layers:
        spec = LAYERS[name]
        derivation = convviz.derive(spec)
        identities = convviz.verify(derivation, engines=False)
        numeric = convviz.cross_check(derivation)
        if any(c.holds is False for c in identities) or not all(c.passed for c in numeric):
            print(f"{name}: derivation failed its checks", file=sys.stderr)
            return 1
        print(f"{name}: {spec.describe()}: all checks pass")
        for op in args.clips:
            stem = args.out / name / op
            video = convviz.render(
                spec,
                op,
                quality=args.quality,
                output=stem.with_suffix(".mp4"),
                timeline=stem.with_suffix(".json"),
                chapters=stem.with_suffix(".vtt"),
                max_steps=args.max_steps,
            )
            print(f"  {op:8s} -> {video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
