"""Thumbnail benchmark: the five default sizes of a 4000x3000 JPEG photo.

    python -m bench.thumbnails [--repeat N]

Prints milliseconds per size (median of N runs) for media_repo.thumbnailer.render, the
total for render_all (all five sizes from one decode), and, for comparison, the same
work done the naive way (full-size decode, one Lanczos resize,
no JPEG draft), which is what a thumbnailer without Image.draft pays. The source is a
synthetic photo-like picture (gradients plus noise) written once to a temp dir; no
assertions, numbers only.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

from PIL import Image

from media_repo.thumbnailer import DEFAULT_SIZES, probe, render, render_all

LIMIT = 32_000_000
SOURCE_SIZE = (4000, 3000)


def make_photo(path: str) -> None:
    """A 4000x3000 JPEG with detail everywhere (flat colour would flatter the decoder)."""
    w, h = SOURCE_SIZE
    red = Image.linear_gradient("L").resize((w, h))
    green = Image.radial_gradient("L").resize((w, h))
    blue = Image.effect_noise((w, h), 60)
    Image.merge("RGB", (red, green, blue)).save(path, "JPEG", quality=90)


def naive(path: str, width: int, height: int, method: str) -> bytes:
    """Full decode and a single resize: the baseline the draft path is measured against."""
    with Image.open(path) as img:
        img.load()
        sw, sh = img.size
        if method == "scale":
            f = min(width / sw, height / sh)
            out = img.resize((round(sw * f), round(sh * f)), Image.Resampling.LANCZOS)
        else:
            f = max(width / sw, height / sh)
            rw, rh = round(sw * f), round(sh * f)
            left, top = (rw - width) // 2, (rh - height) // 2
            out = img.resize((rw, rh), Image.Resampling.LANCZOS).crop(
                (left, top, left + width, top + height)
            )
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=80)
        return buf.getvalue()


def timed(fn, repeat: int) -> float:
    """Median CPU milliseconds of ``fn``: the work is single-threaded, and CPU time stays
    meaningful on a machine busy with other things, where wall time does not."""
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        runs.append((time.process_time() - start) * 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "photo.jpg")
        make_photo(src)
        print(f"source: {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} JPEG, "
              f"{os.path.getsize(src) // 1024} KB; median CPU ms of {args.repeat} runs")
        print(f"probe: {timed(lambda: probe(src, max_pixels=LIMIT), args.repeat):.2f} ms")
        print(f"{'size':>16}  {'type':>5}  {'render ms':>9}  {'bytes':>7}  {'naive ms':>8}")
        totals = {"jpeg": 0.0, "webp": 0.0, "naive": 0.0}
        for w, h, method in DEFAULT_SIZES:
            naive_ms = timed(lambda: naive(src, w, h, method), args.repeat)
            totals["naive"] += naive_ms
            for ctype in ("image/jpeg", "image/webp"):
                short = ctype.split("/")[1]
                ms = timed(
                    lambda: render(src, w, h, method, ctype, max_pixels=LIMIT), args.repeat
                )
                totals[short] += ms
                size = len(render(src, w, h, method, ctype, max_pixels=LIMIT).data)
                shown = f"{naive_ms:8.1f}" if short == "jpeg" else ""
                print(f"{f'{w}x{h} {method}':>16}  {short:>5}  {ms:9.1f}  {size:7d}  {shown}")
        for ctype in ("image/jpeg", "image/webp"):
            ms = timed(
                lambda: render_all(src, DEFAULT_SIZES, ctype, max_pixels=LIMIT), args.repeat
            )
            print(f"render_all, five sizes, {ctype}: {ms:.0f} ms")
        print(f"five render calls: jpeg {totals['jpeg']:.0f} ms, webp {totals['webp']:.0f} ms, "
              f"naive jpeg {totals['naive']:.0f} ms")


if __name__ == "__main__":
    main()
