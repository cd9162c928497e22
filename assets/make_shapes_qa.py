"""Generates the bundled image-QA dataset (shapes, colours, counts, positions; captions) with a fixed seed.

Run once (``python assets/make_shapes_qa.py``); the output in ``assets/shapes_qa/`` is committed:
``train.json`` (LLaVA format, several questions per image), ``eval.json`` (held out: new images, one
question per row, so exact-match scoring is one generation per row) and ``images/``.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

SEED = 12
SIZE = 112  # the starter model's input size (core/models/starter/recipe.py), so no resampling there
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square", "triangle")
COUNTS = (1, 2, 3, 4)
POSITIONS = {"top left": (0.27, 0.27), "top right": (0.73, 0.27), "bottom left": (0.27, 0.73),
             "bottom right": (0.73, 0.73), "center": (0.5, 0.5)}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
TRAIN_IMAGES = 288  # six times each of the 48 colour x shape x count combinations
# Held-out rows (new images, one question each) per question kind: 96 in all.
EVAL_QUOTA = {"position": 18, "colour": 18, "shape": 18, "count": 18, "caption": 24}
OUT = Path(__file__).resolve().parent / "shapes_qa"

QUESTIONS = {
    "colour": (["What colour is the shape?", "What color is it?"],
               ["What colour are the shapes?", "What color are they?"]),
    "shape": (["What shape is it?", "Which shape is shown?"], ["What shape are they?", "Which shape is shown?"]),
    "count": (["How many shapes are there?", "How many shapes do you see?"],) * 2,
    "position": (["Where is the shape?", "In which part of the image is the shape?"], []),
    "caption": (["Describe the image.", "Write a short caption for this picture."],) * 2,
}


@dataclass
class Scene:
    colour: str
    shape: str
    count: int
    position: str | None  # for a single shape only

    def answer(self, kind: str) -> str:
        if kind == "colour":
            return self.colour
        if kind == "shape":
            return self.shape
        if kind == "count":
            return str(self.count)
        if kind == "position":
            return str(self.position)
        if self.count == 1:
            return f"A {self.colour} {self.shape} in the {self.position}." if self.position != "center" else \
                f"A {self.colour} {self.shape} in the center."
        return f"{NUMBER_WORDS[self.count].capitalize()} {self.colour} {self.shape}s."

    def kinds(self) -> list[str]:
        return ["colour", "shape", "count"] + (["position"] if self.count == 1 else [])


def draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rgb: tuple[int, int, int]) -> None:
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        d.ellipse(box, fill=rgb)
    elif shape == "square":
        d.rectangle(box, fill=rgb)
    else:
        d.polygon([(cx, cy - r), (cx + r, cy + r * 0.85), (cx - r, cy + r * 0.85)], fill=rgb)


def render(scene: Scene, rng: random.Random) -> Image.Image:
    tone = rng.randint(232, 250)
    img = Image.new("RGB", (SIZE, SIZE), (tone, tone, tone - rng.randint(0, 8)))
    d = ImageDraw.Draw(img)
    rgb = tuple(max(0, min(255, c + rng.randint(-18, 18))) for c in COLOURS[scene.colour])
    if scene.count == 1:
        fx, fy = POSITIONS[str(scene.position)]
        r = rng.uniform(0.13, 0.18) * SIZE
        jitter = 0.04 * SIZE
        draw_shape(d, scene.shape, fx * SIZE + rng.uniform(-jitter, jitter), fy * SIZE + rng.uniform(-jitter, jitter),
                   r, rgb)
        return img
    r = rng.uniform(0.085, 0.11) * SIZE
    placed: list[tuple[float, float]] = []
    while len(placed) < scene.count:  # non-overlapping centres, away from the border
        x, y = rng.uniform(r + 3, SIZE - r - 3), rng.uniform(r + 3, SIZE - r - 3)
        if all((x - px) ** 2 + (y - py) ** 2 > (2.3 * r) ** 2 for px, py in placed):
            placed.append((x, y))
    for x, y in placed:
        draw_shape(d, scene.shape, x, y, r, rgb)
    return img


def scenes(n: int, rng: random.Random) -> list[Scene]:
    """``n`` scenes cycling through every colour x shape x count, single shapes cycling through positions."""
    combos = [(c, s, k) for c in COLOURS for s in SHAPES for k in COUNTS]
    out, position_turn = [], 0
    for i in range(n):
        if i % len(combos) == 0:
            rng.shuffle(combos)
        colour, shape, count = combos[i % len(combos)]
        position = None
        if count == 1:
            position = list(POSITIONS)[position_turn % len(POSITIONS)]
            position_turn += 1
        out.append(Scene(colour, shape, count, position))
    return out


def eval_scenes(rng: random.Random) -> list[tuple[str, Scene]]:
    """New scenes for each question kind, with that kind's answers taking turns (balanced) and the rest random."""
    out = []
    for kind, n in EVAL_QUOTA.items():
        for i in range(n):
            colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
            count = 1 if kind == "position" else rng.choice(COUNTS)
            if kind == "colour":
                colour = list(COLOURS)[i % len(COLOURS)]
            elif kind == "shape":
                shape = SHAPES[i % len(SHAPES)]
            elif kind == "count":
                count = COUNTS[i % len(COUNTS)]
            position = list(POSITIONS)[i % len(POSITIONS)] if kind == "position" else (
                rng.choice(list(POSITIONS)) if count == 1 else None)
            out.append((kind, Scene(colour, shape, count, position)))
    return out


def question(kind: str, scene: Scene, rng: random.Random) -> str:
    single, several = QUESTIONS[kind]
    return rng.choice(single if scene.count == 1 else several)


def train_row(index: int, scene: Scene, image: str, rng: random.Random) -> dict:
    """All the short questions about the image in a random order, and the caption request half of the time."""
    kinds = scene.kinds()
    rng.shuffle(kinds)
    if rng.random() < 0.5:
        kinds.insert(rng.randint(0, len(kinds)), "caption")
    conversations = []
    for turn, kind in enumerate(kinds):
        text = question(kind, scene, rng)
        conversations += [{"from": "human", "value": f"<image>\n{text}" if turn == 0 else text},
                          {"from": "gpt", "value": scene.answer(kind)}]
    return {"id": f"train-{index:03d}", "image": image, "conversations": conversations}


def eval_row(start: int, scene: Scene, image: str, kind: str, rng: random.Random) -> dict:
    text = question(kind, scene, rng)
    return {"id": f"eval-{start:03d}-{kind}", "image": image, "kind": kind,
            "conversations": [{"from": "human", "value": f"<image>\n{text}"},
                              {"from": "gpt", "value": scene.answer(kind)}]}


def main() -> None:
    rng = random.Random(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "images").mkdir(parents=True)
    train, evals = [], []
    for i, scene in enumerate(scenes(TRAIN_IMAGES, rng)):
        name = f"images/train_{i:03d}.png"
        render(scene, rng).save(OUT / name, optimize=True)
        train.append(train_row(i, scene, name, rng))
    for i, (kind, scene) in enumerate(eval_scenes(rng)):
        name = f"images/eval_{i:03d}.png"
        render(scene, rng).save(OUT / name, optimize=True)
        evals.append(eval_row(i, scene, name, kind, rng))
    for name, rows in (("train.json", train), ("eval.json", evals)):
        (OUT / name).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
