"""carvision COMMAND ...   (installed as a console script; `carvision predict --help`)

Commands:
  predict   the car filter, make/model top-5, viewpoint and car box of photos
  serve     the HTTP API and upload page (127.0.0.1:8000 by default)
  export    a task's model as ONNX (fp32, or int8) for phones and onnxruntime
"""

from __future__ import annotations

import importlib
import sys

# command -> the module whose main(argv) runs it; imported only when asked for (torch takes seconds to import)
COMMANDS = {"predict": "carvision.predict", "serve": "carvision.serve", "export": "carvision.export"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"carvision: unknown command '{command}'\n{__doc__}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
