"""carvision: from a raw scrape of car photos to a registered, served make/model classifier."""

__version__ = "0.1.0"
