"""Tests for label text (carvision.readers.labels): make/model splitting, years, viewpoints, spelling merges."""

from __future__ import annotations

import unicodedata

import pytest

from carvision.readers.labels import (
    merge_case_variants,
    normalise_text,
    normalise_viewpoint,
    parse_year,
    split_class_name,
    split_make_model,
)

# One class name per Stanford Cars make (all 49), as cars_meta.mat spells them.
STANFORD = {
    "AM General Hummer SUV 2000": "AM General",
    "Acura RL Sedan 2012": "Acura",
    "Aston Martin V8 Vantage Convertible 2012": "Aston Martin",
    "Audi RS 4 Convertible 2008": "Audi",
    "BMW ActiveHybrid 5 Sedan 2012": "BMW",
    "Bentley Continental GT Coupe 2012": "Bentley",
    "Bugatti Veyron 16.4 Convertible 2009": "Bugatti",
    "Buick Regal GS 2012": "Buick",
    "Cadillac CTS-V Sedan 2012": "Cadillac",
    "Chevrolet Silverado 1500 Hybrid Crew Cab 2012": "Chevrolet",
    "Chrysler 300 SRT-8 2010": "Chrysler",
    "Daewoo Nubira Wagon 2002": "Daewoo",
    "Dodge Caliber Wagon 2012": "Dodge",
    "Eagle Talon Hatchback 1998": "Eagle",
    "FIAT 500 Abarth 2012": "FIAT",
    "Ferrari FF Coupe 2012": "Ferrari",
    "Fisker Karma Sedan 2012": "Fisker",
    "Ford F-450 Super Duty Crew Cab 2012": "Ford",
    "GMC Terrain SUV 2012": "GMC",
    "Geo Metro Convertible 1993": "Geo",
    "HUMMER H3T Crew Cab 2010": "HUMMER",
    "Honda Odyssey Minivan 2012": "Honda",
    "Hyundai Veloster Hatchback 2012": "Hyundai",
    "Infiniti G Coupe IPL 2012": "Infiniti",
    "Isuzu Ascender SUV 2008": "Isuzu",
    "Jaguar XK XKR 2012": "Jaguar",
    "Jeep Wrangler SUV 2012": "Jeep",
    "Lamborghini Reventon Coupe 2008": "Lamborghini",
    "Land Rover Range Rover SUV 2012": "Land Rover",
    "Lincoln Town Car Sedan 2011": "Lincoln",
    "MINI Cooper Roadster Convertible 2012": "MINI",
    "Maybach Landaulet Convertible 2012": "Maybach",
    "Mazda Tribute SUV 2011": "Mazda",
    "McLaren MP4-12C Coupe 2012": "McLaren",
    "Mercedes-Benz SL-Class Coupe 2009": "Mercedes-Benz",
    "Mitsubishi Lancer Sedan 2012": "Mitsubishi",
    "Nissan Leaf Hatchback 2012": "Nissan",
    "Plymouth Neon Coupe 1999": "Plymouth",
    "Porsche Panamera Sedan 2012": "Porsche",
    "Ram C/V Cargo Van Minivan 2012": "Ram",
    "Rolls-Royce Phantom Drophead Coupe Convertible 2012": "Rolls-Royce",
    "Scion xD Hatchback 2012": "Scion",
    "Spyker C8 Coupe 2009": "Spyker",
    "Suzuki Kizashi Sedan 2012": "Suzuki",
    "Tesla Model S Sedan 2012": "Tesla",
    "Toyota Camry Sedan 2012": "Toyota",
    "Volkswagen Golf Hatchback 2012": "Volkswagen",
    "Volvo 240 Sedan 1993": "Volvo",
    "smart fortwo Convertible 2012": "smart",
}


def test_every_stanford_make_is_split_off_and_the_last_token_is_the_year():
    assert len(set(STANFORD.values())) == 49
    for name, make in STANFORD.items():
        got_make, model, year = split_class_name(name)
        assert got_make == make, name
        assert f"{make} {model} {year}" == name
        assert year == name.rsplit(" ", 1)[1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Alfa Romeo Giulia", ("Alfa Romeo", "Giulia")),
        ("alfa  romeo giulia", ("alfa romeo", "giulia")),  # case kept; the spelling merge handles it later
        ("Lynk & Co 01", ("Lynk & Co", "01")),
        ("Great Wall Haval H6", ("Great Wall", "Haval H6")),
        ("Land Rover", ("Land Rover", "")),
        ("Land", ("Land", "")),
        ("Rolls Royce Ghost", ("Rolls Royce", "Ghost")),
        ("Toyota Corolla Cross", ("Toyota", "Corolla Cross")),
        ("", ("", "")),
    ],
)
def test_split_make_model(name: str, expected: tuple[str, str]):
    assert split_make_model(name) == expected


def test_a_year_needs_a_model_before_it():
    assert split_class_name("Peugeot 2008") == ("Peugeot", "2008", "")
    assert split_class_name("Peugeot 2008 2016") == ("Peugeot", "2008", "2016")
    assert split_class_name("Tesla") == ("Tesla", "", "")


@pytest.mark.parametrize(
    ("text", "year"), [("2015", "2015"), (" 1998 ", "1998"), ("'15", ""), ("2015.0", ""), ("", "")]
)
def test_parse_year(text: str, year: str):
    assert parse_year(text) == year


def test_normalise_text_composes_and_collapses_whitespace():
    nfd = unicodedata.normalize("NFD", "Škoda")
    assert nfd != "Škoda"
    assert normalise_text(f"  {nfd}\u00a0\tOctavia  ") == "Škoda Octavia"


@pytest.mark.parametrize(
    ("raw", "viewpoint"),
    [
        ("Front", "front"),
        (" front-side ", "front-side"),
        ("Front Side", "front-side"),
        ("back_side", "back-side"),
        ("Rear", "back"),
        ("", ""),
        ("  ", ""),
        ("upside-down", None),
    ],
)
def test_normalise_viewpoint(raw: str, viewpoint: str | None):
    assert normalise_viewpoint(raw) == viewpoint


def test_case_variants_merge_into_the_most_frequent_spelling():
    mapping, merged = merge_case_variants(["Toyota", "toyota", "Toyota", "TOYOTA", "Kia", ""])
    assert mapping == {"toyota": "Toyota", "TOYOTA": "Toyota"}
    assert sorted(merged, key=lambda m: m["from"]) == [
        {"from": "TOYOTA", "into": "Toyota", "rows": 1},
        {"from": "toyota", "into": "Toyota", "rows": 1},
    ]


def test_case_variant_ties_go_to_the_first_in_sorted_order():
    mapping, _ = merge_case_variants(["bmw", "BMW", "Bmw"])
    assert mapping == {"Bmw": "BMW", "bmw": "BMW"}
    assert merge_case_variants(["Kia", "Fiat"]) == ({}, [])
