"""The class catalogue: the eight make/model classes, the viewpoints, and each class's drawing design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

RGB = tuple[int, int, int]
Pts = tuple[tuple[float, float], ...]


class CarClass(NamedTuple):
    """One make/model class: scraped label, body type, model-year range and its body colour family."""

    make: str
    model: str
    body: str
    years: tuple[int, int]  # inclusive model-year range
    colours: tuple[RGB, ...]  # related base colours; each listing picks one and jitters it


# Order = popularity: the first class gets the most listings (Zipf rank 1), the last the fewest.
CLASSES: tuple[CarClass, ...] = (
    CarClass("Toyota", "Corolla", "sedan", (2008, 2024), ((196, 28, 36), (168, 22, 34), (222, 58, 48))),
    CarClass("Honda", "Civic", "hatchback", (2006, 2024), ((32, 72, 182), (52, 102, 204), (24, 50, 142))),
    CarClass("Ford", "F-150", "pickup", (2009, 2024), ((40, 112, 62), (62, 132, 48), (30, 92, 72))),
    CarClass("BMW", "3 Series", "sedan", (2012, 2024), ((36, 36, 42), (62, 62, 68), (22, 26, 38))),
    CarClass("Volkswagen", "Golf", "hatchback", (2009, 2024), ((232, 200, 40), (240, 178, 32), (212, 210, 70))),
    CarClass("Tesla", "Model 3", "fastback", (2017, 2024), ((236, 236, 236), (202, 206, 212), (222, 226, 232))),
    CarClass("Jeep", "Wrangler", "suv", (2007, 2024), ((236, 112, 26), (212, 132, 52), (192, 142, 82))),
    CarClass("Fiat", "500", "city", (2008, 2023), ((122, 212, 200), (152, 222, 212), (92, 190, 192))),
)

VIEWPOINTS: tuple[str, ...] = ("front", "front-side", "side", "back-side", "back")
# Imbalanced like real scrapes (front-side dominates, back is rare) but every viewpoint keeps >= 3 %.
VIEWPOINT_WEIGHTS: tuple[float, ...] = (0.14, 0.52, 0.18, 0.125, 0.035)


# --------------------------------------------------------------------------------------------------------------
# Car designs. Profile units: x along the car (0 = front bumper, 1 = rear), y up from the ground, both divided
# by the car length. Face units: u across (0..1 of width), v up (0..1 of height).
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """How one class is drawn, in the units above. DESIGNS[i] draws CLASSES[i]."""

    body: Pts  # side silhouette
    smooth: int  # Chaikin iterations on the silhouette
    windows: tuple[Pts, ...]
    wheels: tuple[float, float]  # x of front and rear wheel centre
    wheel_r: float  # wheel radius (length units)
    rim: float  # rim radius / wheel radius (bigger rims on the BMW / Tesla)
    head: Pts  # side-view headlight
    tail: Pts  # side-view tail light
    face_aspect: float  # height / width seen from the front
    roof_w: float  # greenhouse top width / body width seen from the front
    belt: float  # beltline height / total height seen from the front
    headlight: str  # rect | swept | slim | round
    grille: str  # trapezoid | mouth | wide | kidney | bar | none | slots | whiskers
    taillight: str  # rect | bar | tall | round
    extra: str = ""  # pickup | jeep


# One compact block per design reads better than the formatter's one point per line.
# fmt: off
DESIGNS: tuple[Design, ...] = (
    Design(  # Toyota Corolla: three-box sedan
        body=((0, 0.06), (0, 0.16), (0.02, 0.19), (0.3, 0.22), (0.44, 0.31), (0.67, 0.31), (0.82, 0.225),
              (0.985, 0.215), (1, 0.17), (1, 0.06)),
        smooth=2,
        windows=(((0.32, 0.225), (0.445, 0.3), (0.545, 0.3), (0.545, 0.225)),
                 ((0.56, 0.225), (0.56, 0.3), (0.66, 0.3), (0.785, 0.225))),
        wheels=(0.19, 0.8), wheel_r=0.072, rim=0.6,
        head=((0, 0.15), (0.06, 0.16), (0.06, 0.185), (0.01, 0.18)),
        tail=((0.95, 0.17), (1, 0.17), (1, 0.205), (0.96, 0.21)),
        face_aspect=0.8, roof_w=0.62, belt=0.55, headlight="swept", grille="trapezoid",
        taillight="rect",
    ),
    Design(  # Honda Civic: sportback hatch with a long sloping rear
        body=((0, 0.06), (0, 0.16), (0.03, 0.2), (0.28, 0.225), (0.45, 0.325), (0.66, 0.33), (0.9, 0.26),
              (1, 0.22), (1, 0.06)),
        smooth=2,
        windows=(((0.3, 0.228), (0.455, 0.315), (0.56, 0.315), (0.56, 0.228)),
                 ((0.575, 0.228), (0.575, 0.315), (0.655, 0.318), (0.85, 0.245))),
        wheels=(0.18, 0.81), wheel_r=0.074, rim=0.62,
        head=((0, 0.16), (0.07, 0.175), (0.07, 0.19), (0.02, 0.19)),
        tail=((0.93, 0.205), (1, 0.19), (1, 0.215), (0.92, 0.235)),
        face_aspect=0.76, roof_w=0.62, belt=0.55, headlight="slim", grille="mouth",
        taillight="bar",
    ),
    Design(  # Ford F-150: tall cab, open bed, big wheels
        body=((0, 0.09), (0, 0.27), (0.02, 0.3), (0.27, 0.31), (0.31, 0.45), (0.55, 0.455), (0.56, 0.31),
              (1, 0.31), (1, 0.09)),
        smooth=0,
        windows=(((0.315, 0.325), (0.335, 0.43), (0.43, 0.435), (0.43, 0.325)),
                 ((0.445, 0.325), (0.445, 0.435), (0.535, 0.435), (0.535, 0.325))),
        wheels=(0.16, 0.77), wheel_r=0.1, rim=0.55,
        head=((0, 0.24), (0.035, 0.24), (0.035, 0.28), (0, 0.28)),
        tail=((0.98, 0.2), (1, 0.2), (1, 0.29), (0.98, 0.29)),
        face_aspect=0.96, roof_w=0.78, belt=0.6, headlight="rect", grille="wide",
        taillight="tall", extra="pickup",
    ),
    Design(  # BMW 3 Series: long hood, low roof, cabin set back, big rims
        body=((0, 0.06), (0, 0.155), (0.02, 0.185), (0.36, 0.215), (0.49, 0.3), (0.69, 0.3), (0.84, 0.215),
              (0.99, 0.205), (1, 0.16), (1, 0.06)),
        smooth=1,
        windows=(((0.38, 0.22), (0.495, 0.29), (0.59, 0.29), (0.59, 0.22)),
                 ((0.605, 0.22), (0.605, 0.29), (0.685, 0.29), (0.8, 0.22))),
        wheels=(0.17, 0.81), wheel_r=0.078, rim=0.72,
        head=((0, 0.145), (0.07, 0.16), (0.07, 0.175), (0.01, 0.175)),
        tail=((0.94, 0.165), (1, 0.165), (1, 0.195), (0.95, 0.2)),
        face_aspect=0.74, roof_w=0.6, belt=0.55, headlight="swept", grille="kidney",
        taillight="rect",
    ),
    Design(  # Volkswagen Golf: short two-box hatch, near-vertical rear, thick C-pillar
        body=((0, 0.07), (0, 0.18), (0.03, 0.22), (0.25, 0.25), (0.42, 0.37), (0.86, 0.37), (0.97, 0.33),
              (1, 0.24), (1, 0.07)),
        smooth=1,
        windows=(((0.27, 0.255), (0.43, 0.355), (0.6, 0.355), (0.6, 0.255)),
                 ((0.615, 0.255), (0.615, 0.355), (0.78, 0.355), (0.86, 0.26))),
        wheels=(0.17, 0.83), wheel_r=0.08, rim=0.6,
        head=((0, 0.18), (0.07, 0.19), (0.07, 0.21), (0.01, 0.21)),
        tail=((0.96, 0.22), (1, 0.22), (1, 0.26), (0.965, 0.265)),
        face_aspect=0.82, roof_w=0.68, belt=0.55, headlight="rect", grille="bar",
        taillight="rect",
    ),
    Design(  # Tesla Model 3: smooth fastback, one glass canopy, no grille
        body=((0, 0.06), (0, 0.14), (0.04, 0.18), (0.26, 0.215), (0.46, 0.32), (0.6, 0.325), (0.8, 0.27),
              (0.97, 0.22), (1, 0.19), (1, 0.06)),
        smooth=3,
        windows=(((0.29, 0.22), (0.47, 0.31), (0.6, 0.312), (0.78, 0.255), (0.75, 0.222)),),
        wheels=(0.18, 0.8), wheel_r=0.075, rim=0.74,
        head=((0.005, 0.15), (0.08, 0.17), (0.075, 0.18), (0.02, 0.175)),
        tail=((0.93, 0.2), (0.995, 0.19), (0.99, 0.21), (0.93, 0.225)),
        face_aspect=0.74, roof_w=0.58, belt=0.55, headlight="slim", grille="none",
        taillight="bar",
    ),
    Design(  # Jeep Wrangler: box, flat windscreen, black flares, spare wheel on the tailgate
        body=((0, 0.1), (0, 0.3), (0.2, 0.31), (0.24, 0.5), (0.95, 0.5), (0.97, 0.49), (0.97, 0.1)),
        smooth=0,
        windows=(((0.255, 0.33), (0.28, 0.48), (0.45, 0.48), (0.45, 0.33)),
                 ((0.47, 0.33), (0.47, 0.48), (0.68, 0.48), (0.68, 0.33)),
                 ((0.7, 0.33), (0.7, 0.48), (0.93, 0.48), (0.93, 0.33))),
        wheels=(0.17, 0.78), wheel_r=0.11, rim=0.5,
        head=((0, 0.24), (0.02, 0.24), (0.02, 0.29), (0, 0.29)),
        tail=((0.955, 0.2), (0.97, 0.2), (0.97, 0.26), (0.955, 0.26)),
        face_aspect=1, roof_w=0.86, belt=0.55, headlight="round", grille="slots",
        taillight="tall", extra="jeep",
    ),
    Design(  # Fiat 500: short, tall and round
        body=((0, 0.08), (0, 0.24), (0.06, 0.29), (0.25, 0.32), (0.42, 0.52), (0.8, 0.52), (0.95, 0.42),
              (1, 0.28), (1, 0.08)),
        smooth=3,
        windows=(((0.28, 0.33), (0.43, 0.5), (0.62, 0.5), (0.62, 0.33)),
                 ((0.64, 0.33), (0.64, 0.5), (0.78, 0.5), (0.9, 0.38), (0.9, 0.33))),
        wheels=(0.17, 0.83), wheel_r=0.1, rim=0.55,
        head=((0, 0.22), (0.04, 0.22), (0.04, 0.27), (0, 0.27)),
        tail=((0.96, 0.26), (1, 0.26), (1, 0.32), (0.96, 0.32)),
        face_aspect=0.93, roof_w=0.6, belt=0.5, headlight="round", grille="whiskers",
        taillight="round",
    ),
)
# fmt: on
