"""`make fetch`: the course's offline assets into data/ (the logic is llmscratch/fetch.py,
which an installed copy of the package runs as `python -m llmscratch.fetch`)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmscratch.fetch import main  # noqa: E402

if __name__ == "__main__":
    main()
