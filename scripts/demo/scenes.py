"""Procedural shape scenes for the flux-shapes demo model: caption grammar, layout, renderer, seeded sampler.

The grammar (the Swift checker in Sources/ShapesDemo parses the same one, docs/demo.md):

    caption  := group [" " relation " " group] " on " article " " color " background"
    group    := count [" " size] " " color " " shape ["s" when count > 1]
    count    := "a" | "an" | "two" | "three"        ("an" before a vowel)
    size     := "small" | "large"                    (absent: medium)
    relation := "above" | "below" | "to the left of" | "to the right of"

Layout is a function of the caption plus a small seeded jitter: a lone group fills the canvas, a relation puts the
first group in the top / bottom / left / right half and the second in the other half; the n objects of a group sit
in n equal cells along the region's longer side (horizontal for a square region). Object size is a fraction of the
cell's shorter side. Run as a script: `--dump FILE` writes scenes (uint8 images + captions) to a safetensors file
for the checker tests; `--show N` prints sample captions.
"""

import argparse
import json
import os
import random

import numpy as np
from PIL import Image, ImageDraw

SIZE = 128
SUPERSAMPLE = 4

PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
COLORS = list(PALETTE)
SHAPES = ["circle", "square", "triangle"]
SIZES = {"small": 0.45, "medium": 0.65, "large": 0.85}
COUNTS = {1: None, 2: "two", 3: "three"}
RELATIONS = ["above", "below", "to the left of", "to the right of"]
# Where the first and the second group go for each relation: (x0, y0, x1, y1) in units of the canvas.
RELATION_REGIONS = {
    None: ((0.0, 0.0, 1.0, 1.0), None),
    "above": ((0.0, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 1.0)),
    "below": ((0.0, 0.5, 1.0, 1.0), (0.0, 0.0, 1.0, 0.5)),
    "to the left of": ((0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0)),
    "to the right of": ((0.5, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 1.0)),
}
POSITION_JITTER = 0.06   # of the cell length
SIZE_JITTER = 0.05       # relative

HELDOUT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heldout_prompts.json")


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def group_text(group):
    count, size, color, shape = group["count"], group["size"], group["color"], group["shape"]
    words = [] if size == "medium" else [size]
    words += [color, shape + ("s" if count > 1 else "")]
    lead = COUNTS[count] or article(words[0])
    return " ".join([lead] + words)


def caption(scene):
    text = group_text(scene["groups"][0])
    if scene["relation"] is not None:
        text += " " + scene["relation"] + " " + group_text(scene["groups"][1])
    return text + " on " + article(scene["background"]) + " " + scene["background"] + " background"


def sample_scene(rng):
    """A random scene: 1 or 2 groups of distinct colours, none the background colour."""
    relation = None if rng.random() < 0.4 else rng.choice(RELATIONS)
    n_groups = 1 if relation is None else 2
    colors = rng.sample(COLORS, n_groups + 1)
    groups = [{"count": rng.choice([1, 1, 2, 3]), "size": rng.choice(["small", "medium", "medium", "large"]),
               "color": colors[i], "shape": rng.choice(SHAPES)} for i in range(n_groups)]
    return {"groups": groups, "relation": relation, "background": colors[-1]}


def load_heldout():
    with open(HELDOUT_FILE) as f:
        return json.load(f)["prompts"]


def object_boxes(scene, rng):
    """(shape, colour, (cx, cy, half)) for every object, in pixels of the SIZE canvas."""
    regions = RELATION_REGIONS[scene["relation"]]
    out = []
    for group, region in zip(scene["groups"], regions):
        x0, y0, x1, y1 = (v * SIZE for v in region)
        w, h = x1 - x0, y1 - y0
        n = group["count"]
        horizontal = w >= h
        cell_long = (w if horizontal else h) / n
        cell_short = h if horizontal else w
        extent = SIZES[group["size"]] * min(cell_long, cell_short)
        for i in range(n):
            along = (i + 0.5) * cell_long
            cx = x0 + (along if horizontal else w / 2)
            cy = y0 + (h / 2 if horizontal else along)
            cx += rng.uniform(-1, 1) * POSITION_JITTER * cell_long
            cy += rng.uniform(-1, 1) * POSITION_JITTER * cell_long
            half = extent / 2 * (1 + rng.uniform(-1, 1) * SIZE_JITTER)
            out.append((group["shape"], group["color"], (cx, cy, half)))
    return out


def render(scene, rng):
    """The scene as a [SIZE, SIZE, 3] uint8 array (drawn at 4x, box-filtered down)."""
    s = SUPERSAMPLE
    image = Image.new("RGB", (SIZE * s, SIZE * s), PALETTE[scene["background"]])
    draw = ImageDraw.Draw(image)
    for shape, color, (cx, cy, half) in object_boxes(scene, rng):
        box = [(cx - half) * s, (cy - half) * s, (cx + half) * s, (cy + half) * s]
        fill = PALETTE[color]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([((cx) * s, (cy - half) * s), ((cx - half) * s, (cy + half) * s),
                          ((cx + half) * s, (cy + half) * s)], fill=fill)
    image = image.resize((SIZE, SIZE), Image.BOX)
    return np.asarray(image, dtype=np.uint8)


def training_scenes(count, seed, excluded):
    """`count` (caption, image) pairs, none of whose captions is in `excluded`."""
    rng = random.Random(seed)
    excluded = set(excluded)
    captions, images = [], np.empty((count, SIZE, SIZE, 3), dtype=np.uint8)
    while len(captions) < count:
        scene = sample_scene(rng)
        text = caption(scene)
        if text in excluded:
            continue
        images[len(captions)] = render(scene, rng)
        captions.append(text)
    return captions, images


def make_heldout(count, seed):
    """The fixed held-out prompts: two-group scenes with a relation, drawn from their own seed."""
    rng = random.Random(seed)
    prompts = []
    while len(prompts) < count:
        scene = sample_scene(rng)
        if scene["relation"] is None and len(prompts) % 3 != 0:
            continue
        text = caption(scene)
        if text not in prompts:
            prompts.append(text)
    return prompts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", help="write scenes to this safetensors file (images uint8 [N,128,128,3])")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=0, help="print this many sample captions")
    parser.add_argument("--write-heldout", action="store_true", help="(re)write heldout_prompts.json")
    args = parser.parse_args()
    if args.write_heldout:
        with open(HELDOUT_FILE, "w") as f:
            json.dump({"seed": 20261121, "prompts": make_heldout(32, 20261121)}, f, indent=1)
            f.write("\n")
    rng = random.Random(args.seed)
    for _ in range(args.show):
        print(caption(sample_scene(rng)))
    if args.dump:
        from safetensors.numpy import save_file
        captions, images = training_scenes(args.count, args.seed, [])
        save_file({"images": images}, args.dump, metadata={"captions": json.dumps(captions)})


if __name__ == "__main__":
    main()
