"""python -m carvision.sample OUT_DIR [--seed N] [--listings N]

Writes the synthetic raw scrape to OUT_DIR and prints its summary as JSON.
"""

from __future__ import annotations

from carvision.sample.scrape import main

if __name__ == "__main__":
    main()
