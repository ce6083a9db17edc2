"""Photos: a car on a street, and the photos without a car that real listings also hold.

Every scene is drawn procedurally with numpy + Pillow (and Pillow's bundled font, so rendering is the same on
every machine) from the random generator it is given, so a seed fixes every pixel. Layout, colours and framing
are drawn per photo, so that two photos of the same kind are not perceptual-hash near duplicates of each other.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from carvision.sample.catalogue import CLASSES, RGB
from carvision.sample.drawing import jitter, render_car, shade

Size = tuple[int, int]  # (width, height) px
Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) px
Scene = Callable[[np.random.Generator, Size], Image.Image]  # draws one photo of the given size
T = TypeVar("T")

JPEG_QUALITY = 90  # normal photos
CAR_WIDTH = (0.35, 0.80)  # a listing photo's car box spans 35-80 % of the photo width

# exif_transpose applies ROTATE_270 for 6, ROTATE_90 for 8, ROTATE_180 for 3: store the inverse rotation.
STORE_ROTATION = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}

_BLACK: RGB = (22, 22, 24)
_WHITE: RGB = (246, 246, 242)
_CAR_COLOURS: tuple[RGB, ...] = tuple(col for c in CLASSES for col in c.colours)  # body colour around a close-up
_TRIMS: tuple[RGB, ...] = ((40, 38, 38), (70, 68, 66), (150, 138, 118), (96, 90, 84))  # cabin plastics
_UPHOLSTERY: tuple[RGB, ...] = ((30, 30, 32), (88, 88, 94), (188, 168, 136), (140, 92, 56), (128, 30, 34))
_AD_TEXTS = ("SALE -50%", "BEST PRICE", "0% FINANCE", "WE BUY CARS", "CALL 555-0199", "NEW ARRIVALS", "TOP DEAL")
_AD_COLOURS: tuple[RGB, ...] = ((220, 30, 40), (250, 200, 0), (20, 60, 160), (20, 140, 60), (250, 250, 250))
_DEALERS = ("AUTO HAUS", "CITY MOTORS", "PRIME CARS", "NORD AUTO", "CAR CENTER", "DRIVE STORE", "MOTOR WORLD")
_TAGLINES = ("Your trusted dealer", "Since 1987", "Used cars with warranty", "Service - Sales - Parts")
# EU energy-label classes A (best) to G: dark green through yellow to red.
_ENERGY: tuple[RGB, ...] = (
    (0, 140, 70),
    (80, 180, 60),
    (190, 210, 50),
    (255, 235, 0),
    (250, 180, 30),
    (240, 110, 30),
    (225, 30, 40),
)
_DOC_TITLES = ("REGISTRATION CERTIFICATE", "SERVICE BOOK", "INSPECTION REPORT", "INVOICE", "VEHICLE HISTORY")
_DOC_WORDS = ("vehicle", "owner", "date", "km", "VIN", "oil", "filter", "brake", "check", "OK", "engine", "tyres")


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font (no system font, so rendering is the same on every machine)."""
    return ImageFont.load_default(size=max(6, size))


def _pick(rng: np.random.Generator, options: tuple[T, ...]) -> T:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


def _gradient(top: RGB, bottom: RGB, h: int, w: int) -> np.ndarray:
    """h x w x 3 float array fading vertically from `top` to `bottom`."""
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    g = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(g, (h, w, 3))


def _light(rng: np.random.Generator, size: Size, lo: float, hi: float) -> np.ndarray:
    """Uneven light: a smooth h x w x 1 gain field, a 3 x 3 grid of gains drawn in [lo, hi] and bicubically
    interpolated."""
    grid = Image.fromarray(rng.uniform(lo, hi, size=(3, 3)).astype(np.float32))  # mode F
    return np.asarray(grid.resize(size, Image.Resampling.BICUBIC)).clip(lo, hi)[..., None]


def _lit(rng: np.random.Generator, im: Image.Image, lo: float, hi: float) -> Image.Image:
    """`im` under uneven light with gains in [lo, hi]."""
    a = np.asarray(im, dtype=np.float32) * _light(rng, im.size, lo, hi)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _camera(rng: np.random.Generator, im: Image.Image, sigma: float) -> Image.Image:
    """What the camera adds to a scene: uneven light (gains 0.7-1.05) and Gaussian sensor noise (sigma in 8-bit
    grey levels). The light's random low-frequency shape also keeps look-alike photos apart in perceptual hash."""
    a = np.asarray(im, dtype=np.float32) * _light(rng, im.size, 0.7, 1.05)
    a += rng.standard_normal(a.shape, dtype=np.float32) * sigma
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _surface(rng: np.random.Generator, size: Size, colour: RGB) -> Image.Image:
    """Plain surface (desk, dashboard plastic, body panel, page) in `colour`, unevenly lit."""
    return _lit(rng, Image.new("RGB", size, colour), 0.55, 1.0)


def _em(px: float) -> int:
    """Font size (em, px) whose capitals are about `px` pixels tall in the bundled font."""
    return round(px / 0.7)  # capitals are 0.7 em tall


def _text(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, px: float, fill: RGB) -> None:
    """Draw text with capitals about `px` pixels tall and its top-left at xy."""
    d.text(xy, text, font=_font(_em(px)), fill=fill)


def _fit(d: ImageDraw.ImageDraw, text: str, px: float, width: float) -> float:
    """`px`, made smaller where needed so that the text is at most `width` pixels wide."""
    return min(px, px * width / max(1.0, d.textlength(text, font=_font(_em(px)))))


def _centred(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, px: float, width: float, fill: RGB) -> None:
    """Draw text centred on xy, capitals about `px` pixels tall, shrunk to at most `width` pixels wide."""
    font = _font(_em(_fit(d, text, px, width)))
    d.text(xy, text, font=font, fill=fill, anchor="mm")


def _words(rng: np.random.Generator, d: ImageDraw.ImageDraw, px: float, width: float) -> str:
    """A line of random document words, as many as fit in `width` pixels."""
    line = _pick(rng, _DOC_WORDS)
    while True:
        longer = f"{line} {_pick(rng, _DOC_WORDS)}"
        if d.textlength(longer, font=_font(_em(px))) > width:
            return line
        line = longer


def _handheld(rng: np.random.Generator, scene: Scene, size: Size) -> Image.Image:
    """A scene photographed by hand: drawn on a canvas 1/0.78 times larger, tilted up to 3 degrees, framed by a
    window of 70-86 % of the canvas side at a random place, scaled to `size`, unevenly lit, with sensor noise."""
    w, h = size
    cw, ch = round(w / 0.78), round(h / 0.78)
    im = scene(rng, (cw, ch)).rotate(rng.uniform(-3, 3), resample=Image.Resampling.BILINEAR)
    # A 3 degree tilt moves the corners by < 5 % of the height: a 6 % margin keeps the blank corners out.
    u = rng.uniform(0.70, 0.86)
    x0, y0 = rng.uniform(0.06, 0.94 - u) * cw, rng.uniform(0.06, 0.94 - u) * ch
    im = im.resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x0 + u * cw, y0 + u * ch))
    return _camera(rng, im, float(rng.uniform(2, 6)))


# --------------------------------------------------------------------------------------------------------------
# The car photo
# --------------------------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: Size) -> Image.Image:
    """Street scene: sky, buildings on the horizon, road, a few random shapes."""
    w, h = size
    horizon = int(h * rng.uniform(0.35, 0.6))
    sky_top = jitter(_pick(rng, ((104, 150, 214), (176, 182, 190), (150, 170, 196))), rng, 14)
    ground_top = jitter(_pick(rng, ((116, 116, 120), (136, 126, 110), (100, 102, 108))), rng, 12)
    a = np.empty((h, w, 3), np.float32)
    a[:horizon] = _gradient(sky_top, shade(sky_top, 1.2), horizon, w)
    a[horizon:] = _gradient(ground_top, shade(ground_top, 0.7), h - horizon, w)
    im = Image.fromarray(a.astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(0, 5)):  # buildings standing on the horizon
        bx, bw, bh = rng.uniform(-0.1, 1.0) * w, rng.uniform(0.1, 0.35) * w, rng.uniform(0.1, 0.3) * h
        d.rectangle((bx, horizon - bh, bx + bw, horizon), fill=jitter((150, 140, 128), rng, 30))
    if rng.random() < 0.5:  # dashed road marking
        y = horizon + (h - horizon) * rng.uniform(0.3, 0.9)
        for x in range(-int(rng.integers(0, 20)), w, 24):
            d.rectangle((x, y, x + 12, y + 2), fill=(220, 220, 210))
    for _ in range(rng.integers(0, 4)):  # random clutter (signs, bins, bushes), muted colours
        x, y, r = rng.uniform(0, w), rng.uniform(0.2, 1.0) * h, rng.uniform(0.03, 0.1) * w
        fill = jitter((120, 118, 110), rng, 40)
        (d.ellipse if rng.random() < 0.5 else d.rectangle)((x - r, y - r, x + r, y + r), fill=fill)
    return im


def car_photo(
    rng: np.random.Generator,
    size: Size,
    cls: int,
    col: RGB,
    viewpoint: str,
    width: tuple[float, float] = CAR_WIDTH,
) -> tuple[Image.Image, Box]:
    """A car on a street background; returns the RGB photo and the car box in px.

    `width` is the range of the box width as a fraction of the photo width; a tall frontal view is made
    narrower when needed, so that it fits in 90 % of the photo height.
    """
    w, h = size
    bg = _background(rng, size)
    car = render_car(rng, cls, col, viewpoint, nominal_w=1.6 * w)
    aspect = car.height / car.width
    hi = min(width[1], 0.9 * h / (aspect * w))
    frac = rng.uniform(min(width[0], hi), hi)
    tw = max(4, round(frac * w))
    th = max(3, min(h - 2, round(tw * aspect)))
    car = car.resize((tw, th), Image.Resampling.LANCZOS)
    px = int(rng.integers(0, w - tw + 1))
    bottom = int(rng.integers(min(max(th + 1, int(0.55 * h)), h - 1), h))  # wheels on the road, not the sky
    py = bottom - th
    shadow = Image.new("L", size, 0)  # soft ground shadow so the car does not float
    ImageDraw.Draw(shadow).ellipse((px + 0.02 * tw, bottom - 0.07 * th, px + 0.98 * tw, bottom + 0.05 * th), fill=110)
    bg = Image.composite(Image.new("RGB", size, (0, 0, 0)), bg, shadow)
    bg.paste(car, (px, py), car)
    return _camera(rng, bg, float(rng.uniform(2, 7))), (float(px), float(py), float(px + tw), float(py + th))


# --------------------------------------------------------------------------------------------------------------
# Photos without a car. Each draws on a canvas of `size` px; coordinates are fractions of its width w and height h.
# --------------------------------------------------------------------------------------------------------------


def _interior(rng: np.random.Generator, size: Size) -> Image.Image:
    """Cabin seen from the back seat: windscreen, A-pillars, dashboard, steering wheel, screen, front seats."""
    w, h = size
    base = jitter(_pick(rng, _TRIMS), rng, 12)
    im = Image.new("RGB", size, base)
    d = ImageDraw.Draw(im)
    sill = rng.uniform(0.2, 0.5) * h  # bottom edge of the windscreen
    outside = _pick(rng, ((170, 190, 210), (200, 200, 196), (230, 214, 170), (70, 72, 76)))  # sky, showroom, garage
    d.rectangle((0, 0, w, sill), fill=jitter(outside, rng, 25))
    d.rectangle((0, rng.uniform(0.4, 0.8) * sill, w, sill), fill=jitter((90, 100, 80), rng, 30))  # trees, walls
    look = rng.uniform(-0.15, 0.15)  # camera turned left (< 0) or right: the cabin shifts sideways, in widths
    belt = sill + rng.uniform(0.05, 0.15) * h  # lower edge of the side windows
    window = shade(outside, rng.uniform(0.6, 1.0))
    d.rectangle((-w, 0, (0.1 - look) * w, belt), fill=window)  # side windows, left and right
    d.rectangle(((0.9 - look) * w, 0, 2 * w, belt), fill=window)
    pillar = shade(base, 0.6)
    for side in (0, 1):  # A-pillars between the windscreen and the side windows
        xs = (0.04, 0.14, 0.24, 0.12) if side == 0 else (0.96, 0.86, 0.76, 0.88)
        d.polygon([((x - look) * w, y) for x, y in zip(xs, (0, 0, sill, belt), strict=True)], fill=pillar)
    d.rectangle((0, 0, w, rng.uniform(0.02, 0.1) * h), fill=jitter((190, 186, 178), rng, 20))  # headliner
    mx = (0.44 - look) * w
    d.rounded_rectangle((mx, 0.02 * h, mx + 0.12 * w, 0.09 * h), radius=2, fill=_BLACK)  # rear-view mirror
    dash = shade(base, rng.uniform(0.45, 0.9))
    d.chord(((-0.3 - look) * w, sill - 0.08 * h, (1.3 - look) * w, sill + 0.9 * h), 180, 360, fill=dash)
    d.rectangle((0, sill + 0.3 * h, w, h), fill=dash)
    left = rng.random() < 0.7  # left-hand drive: steering wheel on the left
    cx = (rng.uniform(0.22, 0.36) if left else rng.uniform(0.64, 0.78)) * w
    cy, r = rng.uniform(0.58, 0.72) * h, rng.uniform(0.18, 0.27) * h
    d.chord((cx - 1.3 * r, cy - 1.5 * r, cx + 1.3 * r, cy - 0.2 * r), 180, 360, fill=shade(dash, 0.6))  # gauge hood
    lw = max(2, round(r * 0.18))
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=_BLACK, width=lw)  # steering wheel rim
    for a in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6):
        d.line((cx, cy, cx + r * math.cos(a), cy + r * math.sin(a)), fill=_BLACK, width=lw)
    d.ellipse((cx - r * 0.25, cy - r * 0.25, cx + r * 0.25, cy + r * 0.25), fill=(36, 36, 40))
    sx = (0.5 if left else 0.32) * w + rng.uniform(-0.05, 0.05) * w
    screen = jitter((24, 40, 80), rng, 20) if rng.random() < 0.5 else _BLACK  # infotainment screen, on or off
    d.rectangle((sx, sill + 0.06 * h, sx + 0.18 * w, sill + 0.18 * h), fill=screen)
    for k in range(2):  # air vents below the screen
        vx = sx + k * 0.1 * w
        d.rectangle((vx, sill + 0.22 * h, vx + 0.07 * w, sill + 0.27 * h), fill=_BLACK)
    if rng.random() < 0.3:  # taken from between the front seats
        return im
    seat = jitter(_pick(rng, _UPHOLSTERY), rng, 10)
    for x in (rng.uniform(-0.05, 0.06), rng.uniform(0.68, 0.78)):  # front seat backs in the bottom corners
        d.rounded_rectangle((x * w, 0.74 * h, (x + 0.3) * w, 1.2 * h), radius=0.06 * w, fill=seat)
        d.rounded_rectangle(((x + 0.07) * w, 0.64 * h, (x + 0.23) * w, 0.76 * h), radius=0.03 * w, fill=seat)
    return im


def _dashboard(rng: np.random.Generator, size: Size) -> Image.Image:
    """Instrument cluster close-up: speedometer and rev counter with ticks and needles, a trip display."""
    w, h = size
    im = _surface(rng, size, jitter((54, 52, 52), rng, 16))
    d = ImageDraw.Draw(im)
    glow = _pick(rng, ((240, 240, 235), (255, 150, 40), (90, 170, 255), (230, 40, 40), (150, 240, 170)))
    top = rng.uniform(0.0, 0.25) * h
    d.rounded_rectangle((-0.1 * w, top, 1.1 * w, 1.1 * h), radius=0.2 * h, fill=jitter((14, 14, 16), rng, 6))
    n = int(rng.choice([1, 2, 2, 3]))  # dials: one big speedometer, or two or three side by side
    r = h * {1: 0.42, 2: rng.uniform(0.24, 0.3), 3: rng.uniform(0.17, 0.22)}[n]
    cy = top + rng.uniform(1.05, 1.3) * r
    mid = (0.5 + rng.uniform(-0.1, 0.1)) * w
    for k in range(n):
        cx = mid + (k - (n - 1) / 2) * 2.1 * r
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=jitter((20, 22, 26), rng, 6), outline=(120, 120, 124))
        ticks = int(rng.integers(8, 14))
        for t in range(ticks + 1):  # ticks over a 240 degree sweep from 8 o'clock over the top to 4 o'clock
            a = math.radians(150 + 240 * t / ticks)
            r0 = 0.78 if t % 2 == 0 else 0.86  # long and short ticks
            c, s = math.cos(a) * r, math.sin(a) * r
            d.line((cx + r0 * c, cy + r0 * s, cx + 0.95 * c, cy + 0.95 * s), fill=glow, width=max(1, round(r * 0.04)))
        if k == n - 1 and n > 1:  # rev counter: red zone at the end of the sweep
            d.arc((cx - 0.95 * r, cy - 0.95 * r, cx + 0.95 * r, cy + 0.95 * r), 330, 30, fill=(220, 30, 30), width=3)
        a = math.radians(150 + 240 * rng.uniform(0, 1))
        d.line((cx, cy, cx + 0.8 * r * math.cos(a), cy + 0.8 * r * math.sin(a)), fill=(255, 70, 30), width=2)
        d.ellipse((cx - 0.1 * r, cy - 0.1 * r, cx + 0.1 * r, cy + 0.1 * r), fill=(50, 50, 54))
    # Trip computer between or under the dials: odometer digits in the backlight colour.
    lx = mid - 0.12 * w
    ly = min(cy + 0.5 * r, 0.9 * h)
    d.rectangle((lx, ly, lx + 0.24 * w, ly + 0.1 * h), fill=(8, 10, 12), outline=(70, 70, 74))
    _text(d, (lx + 0.02 * w, ly + 0.02 * h), f"{int(rng.integers(1000, 300000))} km", 0.05 * h, glow)
    for _ in range(rng.integers(1, 4)):  # warning lamps
        x, y = rng.uniform(0.05, 0.95) * w, top + rng.uniform(0.05, 0.15) * h
        d.ellipse((x, y, x + 0.03 * w, y + 0.03 * w), fill=_pick(rng, ((240, 180, 0), (40, 200, 60), (230, 40, 40))))
    return im


def _seats(rng: np.random.Generator, size: Size) -> Image.Image:
    """Seats: the rear bench seen from the open door, or a front seat seen from the side."""
    w, h = size
    trim = jitter(_pick(rng, _TRIMS), rng, 12)
    im = _surface(rng, size, trim)
    d = ImageDraw.Draw(im)
    cover = jitter(_pick(rng, _UPHOLSTERY), rng, 14)
    panel = shade(cover, rng.uniform(0.75, 1.25))  # centre inserts: lighter or darker than the bolsters
    stitch = shade(cover, 1.6) if rng.random() < 0.5 else shade(cover, 0.6)
    d.rectangle((0, rng.uniform(0.8, 0.9) * h, w, h), fill=jitter((34, 34, 36), rng, 8))  # floor mat
    if rng.random() < 0.5:  # rear bench: two or three backs side by side, cushion below
        n = int(rng.integers(2, 4))
        x0, x1 = rng.uniform(-0.05, 0.15) * w, rng.uniform(0.85, 1.05) * w
        top, seam = rng.uniform(0.15, 0.3) * h, rng.uniform(0.55, 0.65) * h
        bw = (x1 - x0) / n
        for k in range(n):
            bx = x0 + k * bw
            d.rounded_rectangle((bx + 2, top, bx + bw - 2, seam), radius=0.05 * w, fill=cover)
            d.rounded_rectangle((bx + 0.2 * bw, top + 0.08 * h, bx + 0.8 * bw, seam - 0.04 * h), radius=4, fill=panel)
            for s in range(1, 4):  # stitched flutes across the insert
                y = top + 0.08 * h + s * (seam - top - 0.12 * h) / 4
                d.line((bx + 0.2 * bw, y, bx + 0.8 * bw, y), fill=stitch, width=1)
            hx = bx + 0.3 * bw
            d.rounded_rectangle((hx, top - 0.12 * h, hx + 0.4 * bw, top + 0.02 * h), radius=5, fill=cover)  # headrest
        d.rounded_rectangle((x0, seam - 0.02 * h, x1, seam + 0.2 * h), radius=0.05 * w, fill=shade(cover, 0.9))
        for k in range(1, n):  # seat belt buckles between the places
            bx = x0 + k * bw
            d.rectangle((bx - 2, seam - 0.05 * h, bx + 2, seam + 0.02 * h), fill=_BLACK)
    else:  # front seat from the side: reclined back, cushion, headrest, door sill in front
        x = rng.uniform(0.25, 0.55) * w
        lean = rng.uniform(0.08, 0.16) * w
        top, seat_y = rng.uniform(0.12, 0.25) * h, rng.uniform(0.55, 0.68) * h
        back = [(x, seat_y), (x + 0.16 * w, seat_y), (x + 0.16 * w + lean, top), (x + lean, top)]
        d.polygon(back, fill=cover)
        insert = [(x + 0.03 * w, seat_y - 0.04 * h), (x + 0.13 * w, seat_y - 0.04 * h)]
        d.polygon([*insert, *((px + lean, top + 0.06 * h) for px, _ in reversed(insert))], fill=panel)
        d.rounded_rectangle((x + lean + 0.02 * w, top - 0.14 * h, x + lean + 0.14 * w, top), radius=6, fill=cover)
        cushion_x = x - rng.uniform(0.25, 0.35) * w
        d.rounded_rectangle((cushion_x, seat_y - 0.06 * h, x + 0.17 * w, seat_y + 0.1 * h), radius=8, fill=cover)
        d.line((cushion_x + 8, seat_y, x + 0.1 * w, seat_y), fill=stitch, width=1)
        d.rectangle((0, 0.86 * h, w, 0.94 * h), fill=jitter((120, 122, 126), rng, 20))  # door sill plate
        edge = rng.uniform(0.0, 0.1) * w
        d.rectangle((w - edge - 0.06 * w, 0, w - edge, h), fill=jitter(_pick(rng, _CAR_COLOURS), rng, 12))  # B-pillar
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else im  # from either side of the car


def _wheel(rng: np.random.Generator, size: Size) -> Image.Image:
    """Wheel and tyre close-up: tyre filling the frame, alloy spokes, brake disc and caliper behind them."""
    w, h = size
    body = jitter(_pick(rng, _CAR_COLOURS), rng, 14)
    im = _surface(rng, size, body)
    d = ImageDraw.Draw(im)
    ground = rng.uniform(0.8, 1.1) * h  # below the frame: a tighter close-up
    if ground < h:
        d.rectangle((0, ground, w, h), fill=jitter((90, 90, 94), rng, 16))  # asphalt
    cx, cy = rng.uniform(0.3, 0.7) * w, ground - rng.uniform(0.36, 0.5) * h
    r = ground - cy + 0.02 * h  # the tyre squats slightly on the ground
    sx = rng.uniform(0.8, 1.0)  # photographed a little from the side: the wheel is an upright ellipse
    arch = 1.15 * r
    d.pieslice((cx - arch * 1.1, cy - arch, cx + arch * 1.1, cy + arch), 180, 360, fill=_BLACK)  # wheel arch
    d.ellipse((cx - sx * r, cy - r, cx + sx * r, cy + r), fill=jitter((30, 30, 32), rng, 6))
    rim = rng.uniform(0.6, 0.74) * r
    rim_col = _pick(rng, ((190, 192, 196), (70, 72, 76), (20, 20, 22), (186, 160, 96), (220, 220, 224)))
    d.ellipse((cx - sx * rim, cy - rim, cx + sx * rim, cy + rim), fill=(56, 56, 60))  # brake disc behind
    ca = rng.uniform(0, 2 * math.pi)  # brake caliper, somewhere around the disc
    cal = _pick(rng, ((200, 30, 30), (230, 190, 20), (60, 60, 64)))
    px, py = cx + sx * 0.7 * rim * math.cos(ca), cy + 0.7 * rim * math.sin(ca)
    d.ellipse((px - 0.22 * rim, py - 0.22 * rim, px + 0.22 * rim, py + 0.22 * rim), fill=cal)
    spokes, twin = int(rng.integers(5, 11)), rng.random() < 0.4
    phase = rng.uniform(0, 2 * math.pi)
    for k in range(spokes):
        for off in (-0.09, 0.09) if twin else (0.0,):
            a = phase + 2 * math.pi * k / spokes + off
            half = 0.06 if twin else 0.11  # angular half width at the rim
            pts = [(cx, cy)] + [(cx + sx * rim * math.cos(a + s), cy + rim * math.sin(a + s)) for s in (-half, half)]
            d.polygon(pts, fill=rim_col)
    d.ellipse((cx - sx * rim, cy - rim, cx + sx * rim, cy + rim), outline=rim_col, width=max(2, round(0.1 * rim)))
    hub = 0.22 * rim
    d.ellipse((cx - sx * hub, cy - hub, cx + sx * hub, cy + hub), fill=shade(rim_col, 0.8), outline=_BLACK)
    for k in range(5):  # wheel nuts
        a = phase + 2 * math.pi * k / 5
        nx, ny = cx + sx * 0.6 * hub * math.cos(a), cy + 0.6 * hub * math.sin(a)
        d.ellipse((nx - 2, ny - 2, nx + 2, ny + 2), fill=(40, 40, 42))
    _text(d, (cx - 0.4 * r, cy - 0.92 * r), "205/55 R16", 0.05 * h, (70, 70, 72))  # sidewall lettering
    return im


def _engine_bay(rng: np.random.Generator, size: Size) -> Image.Image:
    """Open bonnet: its padded underside at the top, the engine cover, battery, fluid tanks, hoses, radiator."""
    w, h = size
    im = Image.new("RGB", size, jitter((34, 34, 36), rng, 10))
    d = ImageDraw.Draw(im)
    body = jitter(_pick(rng, _CAR_COLOURS), rng, 14)
    lid = 0.0  # lower edge of the raised bonnet; 0 in a close-up that leaves it out of the frame
    if rng.random() < 0.7:
        lid = rng.uniform(0.12, 0.3) * h
        d.rectangle((0, 0, w, lid), fill=jitter((62, 62, 64), rng, 10))  # insulation pad
        for k in range(1, 4):  # pressed ribs in the bonnet
            d.line((k * w / 4, 0, k * w / 4 + rng.uniform(-0.05, 0.05) * w, lid), fill=(44, 44, 46), width=2)
        d.rectangle((0, lid - 0.04 * h, w, lid), fill=body)
    for side in (0, 1):  # fenders at both sides
        x = (0.0, rng.uniform(0.08, 0.16), rng.uniform(0.04, 0.1)) if side == 0 else (1.0, 0.86, 0.92)
        d.polygon([(x[0] * w, lid), (x[1] * w, lid), (x[2] * w, h), (x[0] * w, h)], fill=body)
    d.line((0.2 * w, lid, 0.12 * w, 0.6 * h), fill=(150, 150, 150), width=2)  # bonnet stay
    ex0, ey0 = rng.uniform(0.18, 0.42) * w, lid + rng.uniform(0.08, 0.25) * h
    ex1, ey1 = ex0 + rng.uniform(0.3, 0.45) * w, ey0 + rng.uniform(0.3, 0.4) * h
    cover = _pick(rng, ((30, 30, 32), (90, 92, 96), (160, 162, 166)))
    d.rounded_rectangle((ex0, ey0, ex1, ey1), radius=0.04 * w, fill=cover, outline=_BLACK)
    for k in range(1, 4):  # ribs on the engine cover
        y = ey0 + k * (ey1 - ey0) / 4
        d.line((ex0 + 0.05 * w, y, ex1 - 0.05 * w, y), fill=shade(cover, 0.7), width=2)
    ox = rng.uniform(ex0 + 0.05 * w, ex1 - 0.08 * w)
    d.ellipse((ox, ey0 + 0.03 * h, ox + 0.05 * w, ey0 + 0.03 * h + 0.05 * w), fill=(230, 190, 20))  # oil filler cap
    battery_left = rng.random() < 0.5
    bx = (0.1 if battery_left else 0.72) * w + rng.uniform(-0.03, 0.03) * w
    by = lid + rng.uniform(0.1, 0.25) * h
    d.rectangle((bx, by, bx + 0.17 * w, by + 0.2 * h), fill=_BLACK, outline=(70, 70, 72))  # battery
    d.rectangle((bx + 0.02 * w, by - 0.03 * h, bx + 0.05 * w, by), fill=(210, 30, 30))  # + terminal cap
    tx = (0.74 if battery_left else 0.1) * w + rng.uniform(-0.03, 0.03) * w
    ty = lid + rng.uniform(0.05, 0.2) * h
    d.rounded_rectangle((tx, ty, tx + 0.14 * w, ty + 0.22 * h), radius=5, fill=(214, 214, 204))  # coolant tank
    d.ellipse((tx + 0.03 * w, ty - 0.03 * h, tx + 0.08 * w, ty + 0.03 * h), fill=(40, 90, 200))  # washer cap
    hx, hy = rng.uniform(0.05, 0.5) * w, rng.uniform(0.3, 0.5) * h
    d.arc((hx, hy, hx + 0.45 * w, hy + 0.6 * h), 200, 340, fill=(16, 16, 18), width=max(3, round(0.03 * h)))  # hose
    slam = rng.uniform(0.84, 0.92) * h
    d.rectangle((0, slam, w, h), fill=jitter((26, 26, 28), rng, 6))  # slam panel with the radiator below
    for k in range(int(rng.integers(3, 7))):
        y = slam + (k + 1) * (h - slam) / 8
        d.line((0.2 * w, y, 0.8 * w, y), fill=(70, 70, 74), width=1)
    return im


def _open_boot(rng: np.random.Generator, size: Size) -> Image.Image:
    """Open boot from behind: raised tailgate at the top, carpeted floor, rear seat backs, bumper and lights."""
    w, h = size
    body = jitter(_pick(rng, _CAR_COLOURS), rng, 14)
    im = Image.new("RGB", size, body)
    d = ImageDraw.Draw(im)
    gate = rng.uniform(0.12, 0.28) * h  # lower edge of the raised tailgate
    d.rectangle((0, 0, w, gate), fill=jitter((56, 56, 60), rng, 10))  # tailgate trim panel
    d.rectangle((0.35 * w, gate - 0.05 * h, 0.65 * w, gate - 0.02 * h), fill=(30, 30, 32))  # pull handle
    lip = rng.uniform(0.7, 0.82) * h  # loading lip
    inset = rng.uniform(0.06, 0.14) * w
    opening = [(inset, gate + 0.04 * h), (w - inset, gate + 0.04 * h), (w - 0.6 * inset, lip), (0.6 * inset, lip)]
    d.polygon(opening, fill=jitter((40, 40, 44), rng, 10))  # side walls
    carpet = jitter(_pick(rng, ((36, 36, 38), (70, 70, 74), (96, 86, 72))), rng, 8)
    far = gate + rng.uniform(0.25, 0.4) * h  # where the floor meets the rear seat backs
    d.polygon([(1.8 * inset, far), (w - 1.8 * inset, far), (w - 0.6 * inset, lip), (0.6 * inset, lip)], fill=carpet)
    seat = jitter(_pick(rng, _UPHOLSTERY), rng, 10)
    split = rng.uniform(0.4, 0.6) * w  # 60/40 split backs
    for x0, x1 in ((1.8 * inset, split - 1), (split + 1, w - 1.8 * inset)):
        d.rectangle((x0, gate + 0.08 * h, x1, far), fill=seat)
    if rng.random() < 0.6:  # something left in the boot: a box or a bag
        x, s = rng.uniform(0.2, 0.6) * w, rng.uniform(0.1, 0.2) * w
        cargo = _pick(rng, ((150, 110, 70), (30, 60, 120)))  # cardboard brown, bag blue
        d.rectangle((x, lip - 0.05 * h - s, x + 1.3 * s, lip - 0.05 * h), fill=cargo)
    d.rectangle((0, lip, w, lip + 0.04 * h), fill=(60, 60, 62))  # sill scuff plate
    d.rectangle((0, lip + 0.04 * h, w, h), fill=shade(body, 0.85))  # bumper
    for x in (0.0, w - 0.6 * inset):  # tail lights on both sides of the opening
        d.rectangle((x, gate + 0.1 * h, x + 0.6 * inset, gate + 0.3 * h), fill=(200, 24, 30))
    return im


def _ad(rng: np.random.Generator, size: Size) -> Image.Image:
    """Dealer advertisement: flat or two-colour background, a slogan, a price, colour blocks, the web address."""
    w, h = size
    bg = jitter(_pick(rng, _AD_COLOURS), rng, 10)
    im = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(im)
    if rng.random() < 0.5:  # diagonal split in a second colour
        y0, y1 = rng.uniform(0, 1) * h, rng.uniform(0, 1) * h
        d.polygon([(0, y0), (w, y1), (w, h), (0, h)], fill=jitter(_pick(rng, _AD_COLOURS), rng, 10))
    ink = (255, 255, 255) if sum(bg) < 450 else (10, 10, 10)
    for _ in range(rng.integers(1, 4)):  # decorative blocks and stripes (the text below gets a box of its own)
        x, y = rng.uniform(0, 0.8) * w, rng.uniform(0, 0.8) * h
        block = jitter(_pick(rng, _AD_COLOURS), rng, 20)
        d.rectangle((x, y, x + rng.uniform(0.1, 0.5) * w, y + rng.uniform(0.05, 0.2) * h), fill=block)
    text = _pick(rng, _AD_TEXTS)
    px = _fit(d, text, h * rng.uniform(0.1, 0.15), 0.9 * w)
    ty = rng.uniform(0.1, 0.45) * h
    tw = d.textlength(text, font=_font(_em(px)))
    tx = rng.uniform(0.03, max(0.04, 1 - tw / w - 0.03)) * w
    label = shade(bg, 0.6)  # text sits on a darker box of the background colour, readable over the split too
    d.rectangle((tx - 3, ty - 3, tx + tw + 3, ty + 1.4 * px + 3), fill=label)
    _text(d, (tx, ty), text, px, ink)
    price = f"{int(rng.integers(3, 60))} {int(rng.integers(0, 1000)):03d} EUR"
    px = 0.08 * h
    x, y = rng.uniform(0.05, 0.4) * w, ty + rng.uniform(0.25, 0.45) * h
    d.rectangle((x - 2, y - 2, x + d.textlength(price, font=_font(_em(px))) + 2, y + 1.4 * px + 2), fill=label)
    _text(d, (x, y), price, px, ink)
    _text(d, (4, h - 0.1 * h), "www.dealer.example", 0.06 * h, ink)
    return im


def _banner(rng: np.random.Generator, size: Size) -> Image.Image:
    """Dealer banner: a wide band with a logo and the dealer's name, or a centred logo card."""
    w, h = size
    page = jitter(_pick(rng, (_WHITE, (214, 216, 220), (40, 42, 46))), rng, 8)
    im = _surface(rng, size, page)
    d = ImageDraw.Draw(im)
    a, b = jitter(_pick(rng, _AD_COLOURS), rng, 20), jitter(_pick(rng, _AD_COLOURS), rng, 20)
    name = _pick(rng, _DEALERS)
    if rng.random() < 0.65:  # a band with a slanted end, logo at one end, contact line on the page
        bh = rng.uniform(0.3, 0.55) * h
        y0 = rng.uniform(0.05, 0.95) * (h - bh)
        end, slant = rng.uniform(0.75, 1.05) * w, rng.uniform(0.04, 0.12) * w
        outline = [(0, y0), (end, y0), (end - slant, y0 + bh), (0, y0 + bh)]
        from_right = rng.random() < 0.5  # the band comes in from the right edge instead of the left
        if from_right:
            outline = [(w - x, y) for x, y in outline]
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).polygon(outline, fill=255)
        t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        band = np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t  # left-to-right gradient
        im.paste(Image.fromarray(np.broadcast_to(band, (h, w, 3)).astype(np.uint8)), (0, 0), mask)
        ink = (255, 255, 255) if sum(a) + sum(b) < 900 else (16, 16, 16)
        s = 0.7 * bh  # logo diameter, at the band's straight end; the name runs towards the slanted end
        if from_right:
            lx = 0.96 * w - s
            nx = w - end + slant + 0.03 * w
            room = lx - 0.03 * w - nx
        else:
            lx = 0.04 * w
            nx = lx + 1.2 * s
            room = end - slant - 0.03 * w - nx
        ly = y0 + 0.15 * bh
        d.ellipse((lx, ly, lx + s, ly + s), fill=ink)
        _centred(d, (lx + s / 2, ly + s / 2), name[:2], 0.35 * s, 0.7 * s, a)
        _text(d, (nx, y0 + 0.2 * bh), name, _fit(d, name, 0.25 * bh, room), ink)
        tagline = _pick(rng, _TAGLINES)
        _text(d, (nx, y0 + 0.62 * bh), tagline, _fit(d, tagline, 0.12 * bh, room), ink)
        contact = f"Tel. 555-{int(rng.integers(1000, 10000))}  www.{name.split()[0].lower()}.example"
        cy = y0 + bh + 0.08 * h if y0 + bh < 0.8 * h else y0 - 0.12 * h  # on the page, below or above the band
        page_ink = (40, 40, 44) if sum(page) > 400 else (210, 210, 210)
        _text(d, (rng.uniform(0.03, 0.3) * w, cy), contact, _fit(d, contact, 0.06 * h, 0.65 * w), page_ink)
    else:  # logo card: shield logo above the name, framed
        cx, s = rng.uniform(0.35, 0.65) * w, rng.uniform(0.3, 0.45) * h
        top = rng.uniform(0.05, 0.25) * h
        shield = [(cx - s / 2, top), (cx + s / 2, top), (cx + s / 2, top + 0.6 * s), (cx, top + s)]
        d.polygon([*shield, (cx - s / 2, top + 0.6 * s)], fill=a, outline=b)
        _centred(d, (cx, top + 0.4 * s), name[:2], 0.35 * s, 0.8 * s, _WHITE if sum(a) < 450 else _BLACK)
        ink = _BLACK if sum(page) > 400 else _WHITE
        px = _fit(d, name, 0.12 * h, 0.9 * w)
        tw = d.textlength(name, font=_font(_em(px)))
        x = min(max(0.05 * w, cx - tw / 2), 0.95 * w - tw)  # centred under the logo, inside the frame
        _text(d, (x, top + 1.1 * s), name, px, ink)
        d.rectangle((0.03 * w, 0.03 * h, 0.97 * w, 0.97 * h), outline=b, width=max(1, round(0.015 * h)))
    return im


def _energy_label(rng: np.random.Generator, size: Size) -> Image.Image:
    """EU-style energy label taped to a window or lying on a desk: header, bars A-G, the car's class arrow."""
    w, h = size
    backdrop = _pick(rng, ((50, 60, 72), (120, 120, 124), (150, 120, 90), (220, 220, 216)))  # glass, plastic, desk
    im = _surface(rng, size, jitter(backdrop, rng, 14))
    lh = rng.uniform(0.75, 1.1) * h
    lw = 0.7 * lh
    label = Image.new("RGB", (round(lw), round(lh)), _WHITE)
    d = ImageDraw.Draw(label)
    d.rectangle((0, 0, lw, 0.12 * lh), fill=jitter((0, 80, 160), rng, 20))  # header band
    _text(d, (0.06 * lw, 0.03 * lh), _pick(rng, ("ENERGY", "CO2", "EFFICIENCY")), 0.06 * lh, _WHITE)
    bar_h, top = 0.075 * lh, 0.17 * lh
    grade = int(rng.integers(0, 7))
    for k, col in enumerate(_ENERGY):
        y = top + k * 1.15 * bar_h
        end = (0.32 + 0.06 * k) * lw
        tip = (end + 0.5 * bar_h, y + bar_h / 2)  # bars are arrows pointing right
        d.polygon([(0.05 * lw, y), (end, y), tip, (end, y + bar_h), (0.05 * lw, y + bar_h)], fill=col)
        _text(d, (0.08 * lw, y + 0.15 * bar_h), "ABCDEFG"[k], 0.65 * bar_h, _WHITE)
        if k == grade:  # black arrow at the right pointing at the car's class
            ax = 0.72 * lw
            y0, y1, x1 = y - 0.1 * bar_h, y + 1.1 * bar_h, ax + 0.6 * bar_h
            d.polygon([(ax, y + bar_h / 2), (x1, y0), (0.97 * lw, y0), (0.97 * lw, y1), (x1, y1)], fill=_BLACK)
            _text(d, (ax + 0.7 * bar_h, y + 0.1 * bar_h), "ABCDEFG"[k], 0.75 * bar_h, _WHITE)
    y = top + 7 * 1.15 * bar_h + 0.03 * lh
    for line in (f"CO2 {int(rng.integers(90, 260))} g/km", f"{rng.uniform(3.5, 11):.1f} l/100 km"):
        _text(d, (0.06 * lw, y), line, 0.04 * lh, _BLACK)
        y += 0.07 * lh
    d.rectangle((0, 0, lw - 1, lh - 1), outline=(120, 120, 120))
    im.paste(label, (round(rng.uniform(-0.1, 1.0) * (w - lw)), round(rng.uniform(-0.15, 0.3) * h)))
    return im


def _page(rng: np.random.Generator, pw: int, ph: int) -> Image.Image:
    """A document page: title, emblem, lines of text or a table, a stamp and a signature."""
    paper = jitter(_pick(rng, (_WHITE, (238, 234, 220), (214, 234, 214), (240, 224, 226))), rng, 6)
    page = Image.new("RGB", (pw, ph), paper)
    d = ImageDraw.Draw(page)
    ink = jitter((40, 40, 46), rng, 10)
    px = pw * rng.uniform(0.035, 0.05)  # body text cap height
    m = rng.uniform(0.06, 0.12) * pw  # margin
    y = rng.uniform(0.04, 0.1) * ph
    if rng.random() < 0.5:  # coloured emblem next to the title
        d.rectangle((m, y, m + 2 * px, y + 2 * px), fill=jitter((30, 80, 150), rng, 40))
    title, tx = _pick(rng, _DOC_TITLES), m + (2.6 * px if rng.random() < 0.5 else 0)
    _text(d, (tx, y), title, _fit(d, title, 1.3 * px, pw - m - tx), ink)
    y += 3 * px
    while y < ph - 3 * px:
        if rng.random() < 0.3:  # a table: ruled rows and columns of short entries
            rows, cols = int(rng.integers(3, 7)), int(rng.integers(2, 5))
            rh = 1.9 * px
            for r in range(rows + 1):
                d.line((m, y + r * rh, pw - m, y + r * rh), fill=ink, width=1)
            for c in range(cols + 1):
                x = m + c * (pw - 2 * m) / cols
                d.line((x, y, x, y + rows * rh), fill=ink, width=1)
            cell = (pw - 2 * m) / cols
            for r in range(rows):
                for c in range(cols):
                    word, xy = _pick(rng, _DOC_WORDS), (m + c * cell + 0.4 * px, y + r * rh + 0.4 * px)
                    _text(d, xy, word, _fit(d, word, 0.8 * px, cell - px), ink)
            y += (rows + 1) * rh
        else:  # a paragraph of random words, ragged right
            for _ in range(int(rng.integers(2, 6))):
                _text(d, (m, y), _words(rng, d, px, rng.uniform(0.4, 1.0) * (pw - 2 * m)), px, ink)
                y += 1.8 * px
            y += rng.uniform(0.5, 2) * px
    if rng.random() < 0.6:  # ink stamp
        sx, sy, sr = rng.uniform(0.4, 0.8) * pw, rng.uniform(0.5, 0.85) * ph, rng.uniform(0.06, 0.1) * pw
        d.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), outline=_pick(rng, ((40, 70, 170), (180, 40, 50))), width=2)
    sx, sy = rng.uniform(0.1, 0.5) * pw, rng.uniform(0.8, 0.92) * ph  # signature
    d.line([(sx + k * 0.02 * pw, sy + rng.uniform(-0.02, 0.02) * ph) for k in range(12)], fill=(30, 40, 120), width=1)
    return page


def _document(rng: np.random.Generator, size: Size) -> Image.Image:
    """A registration document or a service book: the page filling the frame, or lying on a desk."""
    w, h = size
    if rng.random() < 0.25:
        return _page(rng, w, h)
    desk = _pick(rng, ((120, 84, 52), (88, 88, 92), (30, 40, 60), (190, 186, 176)))  # wood, grey, navy, white
    im = _surface(rng, size, jitter(desk, rng, 14))
    pw = round(rng.uniform(0.5, 0.9) * w)
    ph = round(pw * (1.414 if rng.random() < 0.6 else 0.707))  # A-series page, portrait or landscape
    page = _page(rng, pw, ph).convert("RGBA").rotate(rng.uniform(-12, 12), Image.Resampling.BILINEAR, expand=True)
    im.paste(page, (round(rng.uniform(-0.1, 1.0) * (w - pw)), round(rng.uniform(-0.2, 0.6) * h)), page)
    return im


# Kind -> (drawing, hand-held?). Hand-held scenes are drawn larger and framed by _handheld; adverts and banners
# are digital pictures, shown as drawn.
_NON_CAR: dict[str, tuple[Scene, bool]] = {
    "interior": (_interior, True),
    "dashboard": (_dashboard, True),
    "seats": (_seats, True),
    "wheel": (_wheel, True),
    "engine_bay": (_engine_bay, True),
    "open_boot": (_open_boot, True),
    "ad": (_ad, False),
    "banner": (_banner, False),
    "energy_label": (_energy_label, True),
    "document": (_document, True),
}
NON_CAR_KINDS: tuple[str, ...] = tuple(_NON_CAR)


def non_car_photo(rng: np.random.Generator, size: Size, kind: str) -> Image.Image:
    """An RGB photo of `size` px of one of NON_CAR_KINDS."""
    scene, handheld = _NON_CAR[kind]
    return _handheld(rng, scene, size) if handheld else scene(rng, size)


def jpeg(im: Image.Image, quality: int = JPEG_QUALITY, exif: bytes | None = None) -> bytes:
    """Encode to JPEG bytes (baseline, no optimisation, so the bytes are reproducible)."""
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    im.save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def exif_bytes(orientation: int) -> bytes:
    """EXIF block holding only the Orientation tag (0x0112)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()
