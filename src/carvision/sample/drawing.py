"""Car drawings: a class's side profile and front/rear face, combined into one of the five viewpoints."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from carvision.sample.catalogue import DESIGNS, RGB, Design, Pts

_Mapper = Callable[[Pts], list[tuple[float, float]]]  # design units -> canvas px
_Mirror = Callable[[Pts], tuple[Pts, Pts]]  # a shape and its mirror image about the centre line


def jitter(col: RGB, rng: np.random.Generator, amount: int) -> RGB:
    """Colour with a small uniform jitter of +-amount per channel."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in col)  # type: ignore[return-value]


def shade(col: RGB, f: float) -> RGB:
    """Colour scaled by f (f < 1 darker, f > 1 lighter), clipped to 0..255."""
    return tuple(int(min(255, max(0, round(c * f)))) for c in col)  # type: ignore[return-value]


def _chaikin(pts: Pts, n: int) -> Pts:
    """Round a closed polygon's corners with n Chaikin iterations (rounder body for city car / fastback)."""
    out = list(pts)
    for _ in range(n):
        new: list[tuple[float, float]] = []
        for i, (x0, y0) in enumerate(out):
            x1, y1 = out[(i + 1) % len(out)]
            new += [(0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1), (0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1)]
        out = new
    return tuple(out)


_GLASS: RGB = (44, 54, 70)
_GLASS_HI: RGB = (112, 126, 142)
_TYRE: RGB = (24, 24, 27)
_TRIM: RGB = (30, 30, 33)
_CHROME: RGB = (186, 188, 192)
_HEAD: RGB = (244, 240, 206)
_TAIL: RGB = (204, 24, 30)
_THREE_QUARTER_X = 0.62  # horizontal compression of the profile in a 3/4 view
_THREE_QUARTER_FACE = 0.8  # foreshortening of the attached face in a 3/4 view


def _roof(des: Design) -> float:
    """Highest point of the silhouette (= car height / length)."""
    return max(v for _, v in des.body)


def _draw_profile(d: ImageDraw.ImageDraw, des: Design, col: RGB, ox: float, gy: float, L: float, cx: float) -> None:
    """Side view, front at the left; x compressed by cx for a 3/4 view. ox, gy, L are px on the canvas."""

    def P(pts: Pts) -> list[tuple[float, float]]:
        return [(ox + u * L * cx, gy - v * L) for u, v in pts]

    lw = max(1, round(L * 0.006))
    dark = shade(col, 0.55)
    if des.extra == "jeep":  # spare wheel hangs behind the tailgate
        sx, sy, sr = 1.0, 0.30, 0.10
        d.ellipse(
            (ox + (sx - sr * 0.5) * L * cx, gy - (sy + sr) * L, ox + (sx + sr * 0.5) * L * cx, gy - (sy - sr) * L),
            fill=_TYRE,
        )
    d.polygon(P(_chaikin(des.body, des.smooth)), fill=col, outline=dark, width=lw)
    # Darker rocker panel: gives the body some volume and a class-independent lower edge.
    y0 = min(v for _, v in des.body)
    d.polygon(P(((0.02, y0), (0.02, y0 + 0.025), (0.98, y0 + 0.025), (0.98, y0))), fill=shade(col, 0.8))
    win_bottom = min(v for w in des.windows for _, v in w)
    d.line(P(((0.03, win_bottom - 0.02), (0.97, win_bottom - 0.02))), fill=shade(col, 0.75), width=lw)
    for w in des.windows:
        d.polygon(P(_chaikin(w, min(des.smooth, 1))), fill=_GLASS, outline=_TRIM, width=lw)
        (u0, v0), (u1, v1) = w[0], w[1]
        d.line(P(((u0 + 0.02, v0 + 0.01), (u1 + 0.02, v1 - 0.01))), fill=_GLASS_HI, width=lw)  # reflection
    for w in des.windows[:2]:  # door seam and handle below each side window
        u = w[-1][0]
        d.line(P(((u, win_bottom), (u, y0 + 0.03))), fill=dark, width=lw)
        d.rectangle(_box(P(((u - 0.05, win_bottom - 0.035), (u - 0.02, win_bottom - 0.045)))), fill=dark)
    if des.extra == "pickup":  # bed rail and tailgate seam
        d.line(P(((0.57, 0.30), (0.99, 0.30))), fill=_TRIM, width=2 * lw)
        d.line(P(((0.56, 0.31), (0.56, 0.12))), fill=dark, width=lw)
    mirror_u = des.windows[0][0][0]
    d.polygon(
        P(
            (
                (mirror_u, win_bottom),
                (mirror_u + 0.04, win_bottom + 0.005),
                (mirror_u + 0.04, win_bottom + 0.03),
                (mirror_u + 0.01, win_bottom + 0.03),
            )
        ),
        fill=shade(col, 0.9),
        outline=dark,
    )
    d.polygon(P(des.head), fill=_HEAD, outline=_TRIM)
    d.polygon(P(des.tail), fill=_TAIL, outline=_TRIM)
    r = des.wheel_r
    for wx in des.wheels:
        ar = r * 1.14
        arch_col = _TRIM if des.extra == "jeep" else shade(col, 0.3)  # Jeep: black fender flares
        if des.extra == "jeep":
            d.pieslice(_box(P(((wx - ar * 1.2, r + ar * 1.2), (wx + ar * 1.2, r - ar * 1.2)))), 180, 360, fill=_TRIM)
        d.ellipse(_box(P(((wx - ar, r + ar), (wx + ar, r - ar)))), fill=arch_col)
        d.ellipse(_box(P(((wx - r, 2 * r), (wx + r, 0)))), fill=_TYRE)
        rr = r * des.rim
        d.ellipse(_box(P(((wx - rr, r + rr), (wx + rr, r - rr)))), fill=_CHROME, outline=(120, 122, 126))
        for k in range(5):  # spokes
            a = 2 * math.pi * k / 5
            d.line(
                P(((wx, r), (wx + rr * 0.9 * math.cos(a), r + rr * 0.9 * math.sin(a)))), fill=(96, 98, 102), width=lw
            )
        hr = rr * 0.25
        d.ellipse(_box(P(((wx - hr, r + hr), (wx + hr, r - hr)))), fill=(70, 72, 76))


def _box(pts: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of two or more points, ordered as ImageDraw wants."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def _draw_face(
    d: ImageDraw.ImageDraw, des: Design, col: RGB, ox: float, gy: float, W: float, H: float, front: bool
) -> None:
    """Front (front=True) or rear face, symmetric, in a W x H px rectangle whose bottom-left is (ox, gy)."""

    def P(pts: Pts) -> list[tuple[float, float]]:
        return [(ox + u * W, gy - v * H) for u, v in pts]

    def sym(pts: Pts) -> tuple[Pts, Pts]:  # the shape and its mirror image about u = 0.5
        return pts, tuple((1 - u, v) for u, v in pts)

    lw = max(1, round(W * 0.008))
    dark = shade(col, 0.55)
    b, rw = des.belt, des.roof_w
    for t in sym(((0.07, 0.0), (0.22, 0.0), (0.22, 0.2), (0.07, 0.2))):  # tyres
        d.rectangle(_box(P(t)), fill=_TYRE)
    body = ((0.03, 0.08), (0.97, 0.08), (0.98, b - 0.05), (0.94, b), (0.06, b), (0.02, b - 0.05))
    d.polygon(P(body), fill=col, outline=dark, width=lw)
    green = (
        (0.09, b),
        (0.91, b),
        (0.5 + rw / 2, 0.97),
        (0.5 + rw / 2 - 0.03, 1.0),
        (0.5 - rw / 2 + 0.03, 1.0),
        (0.5 - rw / 2, 0.97),
    )
    d.polygon(P(green), fill=col, outline=dark, width=lw)
    glass = ((0.14, b + 0.03), (0.86, b + 0.03), (0.5 + rw / 2 - 0.05, 0.93), (0.5 - rw / 2 + 0.05, 0.93))
    d.polygon(P(glass), fill=_GLASS, outline=_TRIM, width=lw)
    d.line(P(((0.5 - rw / 2 + 0.08, 0.9), (0.3, b + 0.06))), fill=_GLASS_HI, width=lw)  # reflection
    d.rectangle(_box(P(((0.04, 0.08), (0.96, 0.15)))), fill=shade(col, 0.7) if front else _TRIM)  # bumper
    if front:
        for m in sym(((0.0, b), (0.08, b), (0.08, b + 0.07), (0.01, b + 0.07))):  # mirrors
            d.polygon(P(m), fill=col, outline=dark)
        _front_details(d, des, P, sym, b, lw)
    else:
        _rear_details(d, des, P, sym, b, lw)


def _front_details(d: ImageDraw.ImageDraw, des: Design, P: _Mapper, sym: _Mirror, b: float, lw: int) -> None:
    """Headlights and grille, the most class-specific part of a front view."""
    top, bot = b - 0.06, b - 0.18
    for h in sym(((0.07, bot), (0.28, bot + 0.02), (0.28, top), (0.07, top))):
        if des.headlight == "round":
            cx, cy = (h[0][0] + h[1][0]) / 2, (top + bot) / 2
            d.ellipse(_box(P(((cx - 0.08, cy - 0.07), (cx + 0.08, cy + 0.07)))), fill=_HEAD, outline=_CHROME, width=lw)
        elif des.headlight == "slim":
            d.polygon(
                P(((h[0][0], top - 0.02), (h[1][0], top - 0.04), (h[1][0], top), (h[0][0], top + 0.01))),
                fill=_HEAD,
                outline=_TRIM,
            )
        elif des.headlight == "swept":
            d.polygon(
                P(((h[0][0], bot + 0.03), (h[1][0], top - 0.03), (h[1][0], top), (h[0][0], top))),
                fill=_HEAD,
                outline=_TRIM,
            )
        else:
            d.polygon(P(h), fill=_HEAD, outline=_TRIM, width=lw)
    g = des.grille
    if g == "trapezoid":  # Toyota: big lower mouth, thin upper grille with a badge
        d.polygon(P(((0.3, 0.17), (0.7, 0.17), (0.64, 0.3), (0.36, 0.3))), fill=_TRIM)
        d.rectangle(_box(P(((0.36, top - 0.06), (0.64, top - 0.02)))), fill=_TRIM)
        d.ellipse(_box(P(((0.47, top - 0.07), (0.53, top - 0.01)))), fill=_CHROME)
    elif g == "mouth":  # Civic: wide hexagonal lower grille
        d.polygon(
            P(((0.26, 0.2), (0.32, 0.16), (0.68, 0.16), (0.74, 0.2), (0.68, top - 0.02), (0.32, top - 0.02))),
            fill=_TRIM,
        )
    elif g == "wide":  # F-150: huge grille with chrome bars between the lights
        d.rectangle(_box(P(((0.29, 0.18), (0.71, top + 0.02)))), fill=_TRIM, outline=_CHROME, width=2 * lw)
        for k in range(3):
            v = 0.18 + (top - 0.16) * (k + 1) / 4
            d.line(P(((0.29, v), (0.71, v))), fill=_CHROME, width=2 * lw)
    elif g == "kidney":  # BMW: twin kidneys
        for u in (0.385, 0.51):
            d.rounded_rectangle(
                _box(P(((u, bot - 0.02), (u + 0.105, top + 0.02)))),
                radius=lw * 3,
                fill=_TRIM,
                outline=_CHROME,
                width=lw,
            )
        d.rectangle(_box(P(((0.3, 0.17), (0.7, 0.21)))), fill=_TRIM)
    elif g == "bar":  # Golf: thin dark band joining the lights, lower intake
        d.rectangle(_box(P(((0.28, top - 0.05), (0.72, top - 0.01)))), fill=_TRIM)
        d.rectangle(_box(P(((0.3, 0.17), (0.7, 0.24)))), fill=_TRIM)
    elif g == "none":  # Tesla: smooth nose, only a slit intake
        d.rectangle(_box(P(((0.36, 0.17), (0.64, 0.2)))), fill=_TRIM)
    elif g == "slots":  # Jeep: seven vertical slots between round lights
        for k in range(7):
            u = 0.3 + k * 0.06
            d.rectangle(_box(P(((u, bot), (u + 0.03, top + 0.05)))), fill=_TRIM)
    elif g == "whiskers":  # Fiat: chrome whiskers, round DRLs above the lights, small intake
        d.line(P(((0.36, top), (0.5, top - 0.03), (0.64, top))), fill=_CHROME, width=2 * lw)
        for u in (0.175, 0.825):
            d.ellipse(_box(P(((u - 0.035, top + 0.05), (u + 0.035, top + 0.11)))), fill=_HEAD, outline=_TRIM)
        d.rounded_rectangle(_box(P(((0.38, 0.17), (0.62, 0.25)))), radius=lw * 2, fill=_TRIM)
    d.rectangle(_box(P(((0.41, 0.1), (0.59, 0.15)))), fill=(236, 236, 232), outline=_TRIM)  # plate


def _rear_details(d: ImageDraw.ImageDraw, des: Design, P: _Mapper, sym: _Mirror, b: float, lw: int) -> None:
    """Tail lights, plate and class-specific tailgate details of a rear view."""
    top, bot = b - 0.03, b - 0.15
    for t in sym(((0.05, bot), (0.25, bot), (0.25, top), (0.05, top))):
        if des.taillight == "round":
            cx, cy = (t[0][0] + t[1][0]) / 2 - 0.01, (top + bot) / 2
            d.ellipse(_box(P(((cx - 0.07, cy - 0.06), (cx + 0.07, cy + 0.06)))), fill=_TAIL, outline=_TRIM, width=lw)
        elif des.taillight == "tall":
            d.rectangle(
                _box(P(((t[0][0], bot - 0.12), (t[0][0] + (0.08 if t[0][0] < 0.5 else -0.08), top)))),
                fill=_TAIL,
                outline=_TRIM,
                width=lw,
            )
        elif des.taillight == "bar":
            d.polygon(
                P(((t[0][0], top - 0.06), (t[1][0], top - 0.04), (t[1][0], top), (t[0][0], top))),
                fill=_TAIL,
                outline=_TRIM,
            )
        else:
            d.polygon(P(t), fill=_TAIL, outline=_TRIM, width=lw)
    if des.taillight == "bar":  # light bar across the whole tail
        d.rectangle(_box(P(((0.25, top - 0.03), (0.75, top - 0.01)))), fill=shade(_TAIL, 0.7))
    d.rectangle(_box(P(((0.38, 0.2), (0.62, 0.29)))), fill=(236, 236, 232), outline=_TRIM)  # plate
    d.line(P(((0.42, 0.245), (0.58, 0.245))), fill=(60, 60, 60), width=lw)
    if des.extra == "pickup":  # tailgate panel
        d.rectangle(_box(P(((0.08, 0.17), (0.92, b - 0.01)))), outline=_TRIM, width=lw)
    if des.extra == "jeep":  # spare wheel on the tailgate
        d.ellipse(_box(P(((0.3, 0.22), (0.7, 0.62)))), fill=_TYRE)
        d.ellipse(_box(P(((0.4, 0.32), (0.6, 0.52)))), fill=_CHROME)


def render_car(rng: np.random.Generator, cls: int, col: RGB, viewpoint: str, nominal_w: float) -> Image.Image:
    """RGBA car drawing cropped to its visible pixels, drawn 2-5x larger than shown so the downscale anti-aliases."""
    des = DESIGNS[cls]
    hp = _roof(des)
    cx, s = _THREE_QUARTER_X, _THREE_QUARTER_FACE
    face_w_per_L = hp / des.face_aspect  # face width in length units when the face is as tall as the roof
    factor = {"side": 1.05, "front": face_w_per_L, "back": face_w_per_L}.get(viewpoint, cx + s * face_w_per_L)
    L = nominal_w / factor
    cw, ch = math.ceil(L * (factor + 0.2)), math.ceil(L * (hp + 0.1))
    im = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    ox, gy = 0.05 * L, ch - 0.05 * L
    H = hp * L
    if viewpoint == "side":
        _draw_profile(d, des, col, ox, gy, L, 1.0)
    elif viewpoint in ("front", "back"):
        _draw_face(d, des, col, ox, gy, H / des.face_aspect, H, front=viewpoint == "front")
    elif viewpoint == "front-side":  # face at the left, compressed profile going back to the right
        fw = s * H / des.face_aspect
        _draw_profile(d, des, col, ox + 0.85 * fw, gy, L, cx)
        _draw_face(d, des, col, ox, gy, fw, H, front=True)
    else:  # back-side: compressed profile, rear face attached at the right
        fw = s * H / des.face_aspect
        _draw_profile(d, des, col, ox, gy, L, cx)
        _draw_face(d, des, col, ox + L * cx - 0.15 * fw, gy, fw, H, front=False)
    im = im.crop(im.getchannel("A").getbbox())
    if rng.random() < 0.5:  # the car may face either way
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im
