"""A realistic starter catalog, made by code and the same on every machine.

Deterministic: a fixed random seed and ids derived from the SKU, so two cities (and every test)
see the same products with the same ids.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6b1f0d3e-9a47-4c1e-8f3a-2d5c7e9b1a40")
_SEED = 20261123


@dataclass(frozen=True)
class SeedProduct:
    id: str
    sku: str
    name: str
    description: str
    price_amount: int
    currency: str
    categories: tuple[str, ...]
    image_url: str


CATEGORIES: dict[str, tuple[str, list[str], list[str], tuple[int, int]]] = {
    # slug: (display name, kinds of product, what they are made of or known for, price range in cents)
    "kitchen": ("Kitchen", ["Chef's Knife", "Cutting Board", "Saucepan", "Espresso Cups", "Mixing Bowl", "Cast-Iron Skillet"],
                ["walnut", "stainless steel", "enamel", "ceramic", "carbon steel", "bamboo"], (900, 18900)),
    "books": ("Books", ["Field Guide", "Cookbook", "Novel", "Atlas", "Poetry Collection", "Travel Journal"],
              ["illustrated", "hardcover", "annotated", "pocket", "collector's", "paperback"], (799, 6900)),
    "outdoors": ("Outdoors", ["Tent", "Hiking Boots", "Water Bottle", "Headlamp", "Sleeping Bag", "Trekking Poles"],
                 ["ultralight", "waterproof", "insulated", "rugged", "packable", "recycled"], (1500, 42900)),
    "audio": ("Audio", ["Headphones", "Bookshelf Speaker", "Turntable", "Earbuds", "Radio", "Soundbar"],
              ["wireless", "noise-cancelling", "studio", "vintage", "portable", "hi-fi"], (2900, 59900)),
    "garden": ("Garden", ["Pruning Shears", "Watering Can", "Seed Kit", "Planter", "Garden Gloves", "Hose Reel"],
               ["galvanized", "terracotta", "heirloom", "self-watering", "leather", "compact"], (600, 12900)),
    "toys": ("Toys", ["Puzzle", "Building Blocks", "Kite", "Board Game", "Wooden Train", "Plush Fox"],
             ["1000-piece", "beechwood", "stunt", "family", "magnetic", "organic cotton"], (999, 8900)),
    "office": ("Office", ["Fountain Pen", "Notebook", "Desk Lamp", "Monitor Stand", "Pencil Set", "Letter Tray"],
               ["brass", "dot-grid", "adjustable", "oak", "graphite", "powder-coated"], (450, 24900)),
    "apparel": ("Apparel", ["Wool Sweater", "Rain Jacket", "Linen Shirt", "Beanie", "Denim Jeans", "Scarf"],
                ["merino", "breathable", "organic", "chunky-knit", "selvedge", "cashmere"], (1900, 32900)),
    "coffee": ("Coffee & Tea", ["Coffee Beans", "Pour-Over Kettle", "Tea Sampler", "Grinder", "French Press", "Matcha Set"],
               ["single-origin", "gooseneck", "loose-leaf", "burr", "double-wall", "ceremonial"], (800, 21900)),
    "home": ("Home", ["Throw Blanket", "Candle", "Wall Clock", "Vase", "Rug", "Picture Frame"],
             ["hand-woven", "soy wax", "minimalist", "stoneware", "jute", "reclaimed wood"], (1200, 27900)),
}

_QUALITIES = ["Everyday", "Classic", "Heritage", "Nordic", "Atlas", "Harbor", "Summit", "Meadow", "Studio", "Copper"]
_PER_CATEGORY = 22


def _product(rng: random.Random, slug: str, index: int) -> SeedProduct:
    display, kinds, materials, (low, high) = CATEGORIES[slug]
    kind = kinds[index % len(kinds)]
    material = materials[rng.randrange(len(materials))]
    line = _QUALITIES[rng.randrange(len(_QUALITIES))]
    name = f"{line} {_capitalized(material)} {kind}"
    sku = f"{slug[:3].upper()}-{index + 1:04d}"
    price = rng.randrange(low, high) // 50 * 50 + 49  # prices end in .49 or .99, as shops price them
    categories = [slug]
    if rng.random() < 0.15:  # some products sit in two departments, as in a real shop
        categories.append(rng.choice([other for other in CATEGORIES if other != slug]))
    description = (
        f"A {material} {kind.lower()} from our {line} line, chosen for {display.lower()} lovers. "
        f"Built to last, easy to care for, and backed by a two-year guarantee."
    )
    return SeedProduct(
        id=str(uuid.uuid5(_NAMESPACE, sku)),
        sku=sku,
        name=name,
        description=description,
        price_amount=price,
        currency="USD",
        categories=tuple(categories),
        image_url=f"/static/products/{sku.lower()}.svg",
    )


def seed_catalog() -> tuple[dict[str, str], list[SeedProduct]]:
    """Categories (slug to name) and the products: 220 in 10 categories."""
    rng = random.Random(_SEED)
    products = [_product(rng, slug, index) for slug in CATEGORIES for index in range(_PER_CATEGORY)]
    return {slug: spec[0] for slug, spec in CATEGORIES.items()}, products


def _capitalized(words: str) -> str:
    """`str.title()` would make "collector's" into "Collector'S"."""
    return " ".join(word[:1].upper() + word[1:] for word in words.split())
