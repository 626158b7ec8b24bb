"""Drawing scenes with PIL: supersampled vector shapes, so 32-64 px images stay crisp.

Everything is drawn at ``SUPERSAMPLE`` times the target size and reduced with a box filter, which
anti-aliases edges deterministically (no fonts, no randomness: a scene always renders the same).
Letters are drawn from a tiny stroke font below, so no font file is needed.

How a scene *looks* (canvas colour, edges, line widths, size and place of the whole layout, a
small tilt, the star's and arrow's proportions) is a :class:`RenderStyle`, apart from what the
scene *is*. The benchmark and the diffusion model's data use :data:`CANONICAL`; the lab CLIP
pretrains partly on :func:`sample_style` draws, so that it reads a plain drawing it never drew
(a lone large circle on grey, hard pixel edges) and not only the lab's one look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from trainer.scenes.world import COLORS, Placement, Scene, Thing

SUPERSAMPLE = 4
BACKGROUND = (255, 255, 255)
_MARGIN = 0.02  # canvas units kept free at every edge when a style moves or grows a layout
# How far past its radius an object may paint: a tilted triangle (1.09) plus half a thick outline.
_REACH = 1.22


@dataclass(frozen=True)
class RenderStyle:
    """How a scene is drawn; the defaults are the lab's canonical look (bit for bit)."""

    background: tuple[int, int, int] = BACKGROUND
    antialias: bool = True  # False: drawn at the target size, hard pixel edges
    line_scale: float = 1.0  # outline width of hollow objects, times the canonical width
    tilt_deg: float = 0.0  # every object turned about its centre (a triangle still points its way)
    scale: float = 1.0  # the whole layout grown or shrunk about the canvas centre
    shift: tuple[float, float] = (0.0, 0.0)  # then moved, in canvas units
    star_inner: float = 0.45  # inner radius of a star's points, as a fraction of the outer
    arrow_shaft: float = 0.38  # half width of an arrow's shaft (its head's is 0.95)


CANONICAL = RenderStyle()


def sample_style(rng: np.random.Generator, scene: Scene) -> RenderStyle:
    """A random look for ``scene``: grey or tinted canvases, hard or soft edges, thin or thick
    outlines, the layout grown or shrunk and moved anywhere it fits (a lone object from 0.35x to
    about 1.1x, a group to 0.7x at least, so its marks stay legible), tilted up to 12 degrees,
    and other star and arrow proportions. Position, count and direction stay what the scene says."""
    low, high = _extent(scene.placements)
    fit = (0.5 - _MARGIN) / max(max(0.5 - low, high - 0.5), 1e-6)
    smallest = 0.35 if len(scene.things) == 1 else 0.7
    scale = float(rng.uniform(smallest, max(smallest, min(1.3, fit))))
    low, high = 0.5 + (low - 0.5) * scale, 0.5 + (high - 0.5) * scale
    room = (_MARGIN - low, 1 - _MARGIN - high)
    shift = tuple(float(rng.uniform(*room)) if room[0] < room[1] else 0.0 for _ in range(2))
    if rng.random() < 0.35:
        background = BACKGROUND
    else:
        grey = rng.uniform(150, 250)
        background = tuple(int(np.clip(grey + rng.uniform(-8, 8), 0, 255)) for _ in range(3))
    return RenderStyle(
        background=background,  # type: ignore[arg-type]
        antialias=bool(rng.random() < 0.6),
        line_scale=float(rng.uniform(0.5, 1.8)),
        tilt_deg=float(rng.uniform(-12, 12)),
        scale=scale,
        shift=shift,  # type: ignore[arg-type]
        star_inner=float(rng.uniform(0.3, 0.55)),
        arrow_shaft=float(rng.uniform(0.2, 0.45)),
    )


def _extent(placements: tuple[Placement, ...]) -> tuple[float, float]:
    """The smallest and largest coordinate any object reaches, over both axes."""
    low = min(min(p.cx, p.cy) - _REACH * p.radius for p in placements)
    high = max(max(p.cx, p.cy) + _REACH * p.radius for p in placements)
    return low, high


def _styled(place: Placement, style: RenderStyle) -> Placement:
    s = style.scale
    return Placement(
        0.5 + (place.cx - 0.5) * s + style.shift[0],
        0.5 + (place.cy - 0.5) * s + style.shift[1],
        place.radius * s,
    )


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


def render(scene: Scene, size: int = 64, style: RenderStyle = CANONICAL) -> Image.Image:
    """The scene as an RGB image of ``size`` x ``size`` pixels, drawn in ``style``."""
    if size < 16:
        raise ValueError(f"image size must be at least 16 px, got {size}")
    big = size * SUPERSAMPLE if style.antialias else size
    canvas = Image.new("RGB", (big, big), style.background)
    for thing, place in zip(scene.things, scene.placements):
        _draw_thing(canvas, thing, place if style == CANONICAL else _styled(place, style), style)
    return canvas.resize((size, size), Image.Resampling.BOX) if style.antialias else canvas


def _draw_thing(canvas: Image.Image, thing: Thing, place: Placement, style: RenderStyle) -> None:
    big = canvas.size[0]
    cx, cy, r = place.cx * big, place.cy * big, place.radius * big
    faces, mark_at = _faces(thing, cx, cy, r, style)
    if style.tilt_deg:
        turn = math.radians(style.tilt_deg)
        faces = [(kind, _turned(kind, pts, turn, cx, cy), shade) for kind, pts, shade in faces]
        mark_at = _turn(mark_at, turn, cx, cy)
    base = COLORS[thing.color]
    mask = Image.new("L", canvas.size, 0)
    mask_draw = ImageDraw.Draw(mask)
    draw = ImageDraw.Draw(canvas)
    thinnest = 2 if style.antialias else 1
    outline = max(thinnest, round(0.14 * r * style.line_scale))
    for kind, pts, shade in faces:
        color = _shade(base, shade)
        if thing.filled:
            _shape(draw, kind, pts, fill=color)
            _shape(mask_draw, kind, pts, fill=255)
        else:
            _shape(draw, kind, pts, outline=color, width=outline)
    if thing.striped:
        _stripes(
            canvas, mask, period=max(4 if style.antialias else 2, round(0.36 * r)), paint=style.background
        )
    if thing.mark == "dot":
        _dot(draw, mark_at, 0.16 * r)
    elif thing.mark is not None:
        _letter(draw, thing.mark, mark_at, 0.5 * r)


def _faces(
    thing: Thing, cx: float, cy: float, r: float, style: RenderStyle = CANONICAL
) -> tuple[list[Face], tuple[float, float]]:
    """Polygons (with a shade: <0 darker, >0 lighter) and where the mark goes."""
    if thing.shape == "circle":
        return [("ellipse", [(cx - r, cy - r), (cx + r, cy + r)], 0.0)], (cx, cy)
    if thing.shape == "box":
        return _box(cx, cy, r, oblique=thing.view == "angle")
    if thing.shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else style.star_inner * r
            ang = math.radians(-90 + 36 * i)
            pts.append((cx + rad * math.cos(ang), cy + rad * math.sin(ang) + 0.08 * r))
        return [("poly", pts, 0.0)], (cx, cy + 0.08 * r)
    if thing.shape == "triangle":
        unit = [(0.0, -1.0), (0.95, 0.75), (-0.95, 0.75)]
        centre = (0.0, 0.2)
    else:  # arrow pointing up: a block arrow with a head and a broad shaft
        w = style.arrow_shaft
        unit = [(0, -1), (0.95, -0.05), (w, -0.05), (w, 1), (-w, 1), (-w, -0.05), (-0.95, -0.05)]
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


def _turn(p: tuple[float, float], angle: float, cx: float, cy: float) -> tuple[float, float]:
    """``p`` turned by ``angle`` about (cx, cy)."""
    return _rotate((p[0] - cx, p[1] - cy), angle, cx, cy, 1.0)


def _turned(
    kind: str, pts: list[tuple[float, float]], angle: float, cx: float, cy: float
) -> list[tuple[float, float]]:
    """A face turned about the object's centre; an ellipse (a circle) looks the same turned."""
    if kind == "ellipse":
        (x0, y0), (x1, y1) = pts
        mx, my = _turn(((x0 + x1) / 2, (y0 + y1) / 2), angle, cx, cy)
        hx, hy = (x1 - x0) / 2, (y1 - y0) / 2
        return [(mx - hx, my - hy), (mx + hx, my + hy)]
    return [_turn(p, angle, cx, cy) for p in pts]


def _shape(draw: ImageDraw.ImageDraw, kind: str, pts: list[tuple[float, float]], **style: object) -> None:
    if kind == "ellipse":
        draw.ellipse([pts[0], pts[1]], **style)  # type: ignore[arg-type]
    else:
        draw.polygon(pts, **style)  # type: ignore[arg-type]


def _shade(color: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    target = 255 if amount > 0 else 0
    a = abs(amount)
    return tuple(round(c + (target - c) * a) for c in color)  # type: ignore[return-value]


def _stripes(
    canvas: Image.Image, mask: Image.Image, period: int, paint: tuple[int, int, int] = BACKGROUND
) -> None:
    """Canvas-coloured horizontal bands, only where the object is painted."""
    bands = Image.new("L", canvas.size, 0)
    band_draw = ImageDraw.Draw(bands)
    for y in range(0, canvas.size[1], period):
        band_draw.rectangle([0, y, canvas.size[0], y + period // 2 - 1], fill=255)
    canvas.paste(paint, mask=ImageChops.multiply(mask, bands))


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
