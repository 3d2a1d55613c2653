"""Convert MyST-notebook lessons/labs to .ipynb files in one folder (for nbval and downloads).

    python tools/to_ipynb.py OUTDIR lessons/*.md labs/*.md
"""
import sys
from pathlib import Path

import jupytext


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[2:]:
        source = Path(name)
        notebook = jupytext.read(source)
        jupytext.write(notebook, out / source.with_suffix(".ipynb").name, fmt="ipynb")
    print(f"converted {len(sys.argv) - 2} notebook(s) into {out}")


if __name__ == "__main__":
    main()
