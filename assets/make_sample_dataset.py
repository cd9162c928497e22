"""Generates the bundled sample dataset: coloured shapes with LLaVA-format questions (run once; output is committed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
OUT = Path(__file__).resolve().parent / "sample_dataset"


def draw(shape: str, rgb: tuple[int, int, int], size: int, offset: int) -> Image.Image:
    img = Image.new("RGB", (64, 64), (245, 245, 245))
    d = ImageDraw.Draw(img)
    lo, hi = offset, offset + size
    if shape == "circle":
        d.ellipse([lo, lo, hi, hi], fill=rgb)
    elif shape == "square":
        d.rectangle([lo, lo, hi, hi], fill=rgb)
    else:
        d.polygon([((lo + hi) // 2, lo), (hi, hi), (lo, hi)], fill=rgb)
    return img


def main() -> None:
    rng = random.Random(0)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for variant, (size, offset) in enumerate(((44, 10), (30, 17))):
        for colour, rgb in COLOURS.items():
            for shape in SHAPES:
                name = f"{colour}_{shape}_{variant}.png"
                draw(shape, rgb, size, offset).save(OUT / "images" / name, optimize=True)
                first = rng.choice(["What colour is the shape?", "What colour is it?"])
                conversations = [
                    {"from": "human", "value": f"<image>\n{first}"},
                    {"from": "gpt", "value": f"The shape is {colour}."},
                ]
                if variant == 0:
                    conversations += [
                        {"from": "human", "value": "What shape is this?"},
                        {"from": "gpt", "value": f"It is a {shape}."},
                    ]
                rows.append({"id": f"{colour}-{shape}-{variant}", "image": f"images/{name}",
                             "conversations": conversations})
    (OUT / "data.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
