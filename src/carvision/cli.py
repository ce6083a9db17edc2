"""carvision COMMAND ...   (installed as a console script; `carvision predict --help`)

Commands:
  predict   the car filter, make/model top-5 and viewpoint of photos
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "predict":
        from carvision.predict import main as predict

        return predict(rest)
    print(f"carvision: unknown command '{command}'\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
