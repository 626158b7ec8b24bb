"""Drawing scenes with PIL: supersampled vector shapes, so 32-64 px images stay crisp.

Everything is drawn at ``SUPERSAMPLE`` times the target size and reduced with a box filter, which
anti-aliases edges deterministically (no fonts, no randomness: a scene always renders the same).
Letters are drawn from a tiny stroke font below, so no font file is needed.
"""

from __future__ import annotations

import math

from PIL import Image, ImageChops, ImageDraw

from trainer.scenes.world import COLORS, Placement, Scene, Thing

SUPERSAMPLE = 4
BACKGROUND = (255, 255, 255)

# Stroke font on a unit box (x right, y down): each letter is a list of polylines.
_STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "a": [[(0, 1), (0.5, 0), (1, 1)], [(0.25, 0.55), (0.75, 0.55)]],
    "e": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.8, 0.5)]],
    "h": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
    "l": [[(0, 0), (0, 1), (1, 1)]],
    "t": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
    "x": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
}
_ANGLE = {"up": 0.0, "right": 90.0, "down": 180.0, "left": 270.0}

Face = tuple[str, list[tuple[float, float]], float]  # kind ("poly"/"ellipse"), points, shade


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as an RGB image of ``size`` x ``size`` pixels."""
    if size < 16:
        raise ValueError(f"image size must be at least 16 px, got {size}")
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUND)
    for thing, place in zip(scene.things, scene.placements):
        _draw_thing(canvas, thing, place)
    return canvas.resize((size, size), Image.Resampling.BOX)


def _draw_thing(canvas: Image.Image, thing: Thing, place: Placement) -> None:
    big = canvas.size[0]
    cx, cy, r = place.cx * big, place.cy * big, place.radius * big
    faces, mark_at = _faces(thing, cx, cy, r)
    base = COLORS[thing.color]
    mask = Image.new("L", canvas.size, 0)
    mask_draw = ImageDraw.Draw(mask)
    draw = ImageDraw.Draw(canvas)
    outline = max(2, round(0.14 * r))
    for kind, pts, shade in faces:
        color = _shade(base, shade)
        if thing.filled:
            _shape(draw, kind, pts, fill=color)
            _shape(mask_draw, kind, pts, fill=255)
        else:
            _shape(draw, kind, pts, outline=color, width=outline)
    if thing.striped:
        _stripes(canvas, mask, period=max(4, round(0.36 * r)))
    if thing.mark == "dot":
        _dot(draw, mark_at, 0.16 * r)
    elif thing.mark is not None:
        _letter(draw, thing.mark, mark_at, 0.5 * r)


def _faces(thing: Thing, cx: float, cy: float, r: float) -> tuple[list[Face], tuple[float, float]]:
    """Polygons (with a shade: <0 darker, >0 lighter) and where the mark goes."""
    if thing.shape == "circle":
        return [("ellipse", [(cx - r, cy - r), (cx + r, cy + r)], 0.0)], (cx, cy)
    if thing.shape == "box":
        return _box(cx, cy, r, oblique=thing.view == "angle")
    if thing.shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else 0.45 * r
            ang = math.radians(-90 + 36 * i)
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang) + 0.08 * r))
        return [("poly", pts, 0.0)], (cx, cy + 0.08 * r)
    if thing.shape == "triangle":
        unit = [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)]
        centre = (0.0, 0.2)
    else:  # arrow pointing up: a block arrow with a head and a broad shaft
        unit = [(0, -1), (0.95, -0.05), (0.38, -0.05), (0.38, 1), (-0.38, 1), (-0.38, -0.05), (-0.95, -0.05)]
        centre = (0.0, 0.25)
    angle = math.radians(_ANGLE[thing.direction or "up"])
    pts = [_rotate(p, angle, cx, cy, r) for p in unit]
    return [("poly", pts, 0.0)], _rotate(centre, angle, cx, cy, r)


def _box(cx: float, cy: float, r: float, *, oblique: bool) -> tuple[list[Face], tuple[float, float]]:
    if not oblique:
        s = 0.85 * r
        front = [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
        return [("poly", front, 0.0)], (cx, cy)
    s, d = 0.62 * r, 0.42 * r  # half side of the front face, depth offset
    fx, fy = cx - 0.3 * r, cy + 0.3 * r
    front = [(fx - s, fy - s), (fx + s, fy - s), (fx + s, fy + s), (fx - s, fy + s)]
    top = [(fx - s, fy - s), (fx - s + d, fy - s - d), (fx + s + d, fy - s - d), (fx + s, fy - s)]
    side = [(fx + s, fy - s), (fx + s + d, fy - s - d), (fx + s + d, fy + s - d), (fx + s, fy + s)]
    return [("poly", top, 0.45), ("poly", side, -0.35), ("poly", front, 0.0)], (fx, fy)


def _rotate(p: tuple[float, float], angle: float, cx: float, cy: float, r: float) -> tuple[float, float]:
    x, y = p
    cos, sin = math.cos(angle), math.sin(angle)
    return (cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos))


def _shape(draw: ImageDraw.ImageDraw, kind: str, pts: list[tuple[float, float]], **style: object) -> None:
    if kind == "ellipse":
        draw.ellipse([pts[0], pts[1]], **style)  # type: ignore[arg-type]
    else:
        draw.polygon(pts, **style)  # type: ignore[arg-type]


def _shade(color: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    target = 255 if amount > 0 else 0
    a = abs(amount)
    return tuple(round(c + (target - c) * a) for c in color)  # type: ignore[return-value]


def _stripes(canvas: Image.Image, mask: Image.Image, period: int) -> None:
    """White horizontal bands, only where the object is painted."""
    bands = Image.new("L", canvas.size, 0)
    band_draw = ImageDraw.Draw(bands)
    for y in range(0, canvas.size[1], period):
        band_draw.rectangle([0, y, canvas.size[0], y + period // 2 - 1], fill=255)
    canvas.paste(BACKGROUND, mask=ImageChops.multiply(mask, bands))


def _dot(draw: ImageDraw.ImageDraw, at: tuple[float, float], radius: float) -> None:
    x, y = at
    halo = radius * 1.45
    draw.ellipse([x - halo, y - halo, x + halo, y + halo], fill=(255, 255, 255))
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(0, 0, 0))


def _letter(draw: ImageDraw.ImageDraw, letter: str, at: tuple[float, float], height: float) -> None:
    """A black stroke letter with a white halo, readable on any colour."""
    x0, y0 = at[0] - 0.4 * height, at[1] - 0.5 * height
    width = max(2, round(0.16 * height))
    for halo, color in ((width * 2 + 2, (255, 255, 255)), (width, (0, 0, 0))):
        for line in _STROKES[letter]:
            pts = [(x0 + 0.8 * height * px, y0 + height * py) for px, py in line]
            draw.line(pts, fill=color, width=halo, joint="curve")
