"""book/_ext/progress_bars.py: stream text shown as a terminal would have left it."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("progress_bars",
                                              ROOT / "book" / "_ext" / "progress_bars.py")
progress_bars = importlib.util.module_from_spec(spec)
sys.modules["progress_bars"] = progress_bars
spec.loader.exec_module(progress_bars)


def bar(desc, n, total):
    filled = "#" * (10 * n // total)
    return f"{desc}: {100 * n // total:3d}%|{filled:<10}| {n}/{total} [00:01<00:02, 3.0it/s]"


def test_refreshes_collapse_to_the_final_state():
    # myst-nb's merged stream: every refresh on its own line, then a blank after the closed bar
    lines = [bar("train", n, 40) for n in (0, 10, 20, 40)] + ["", "loss 4.1",
             "no total: 0it [00:00, ?it/s]", "no total: 7it [00:01, 6.1it/s]"]
    assert progress_bars.collapse("\n".join(lines)).split("\n") == [
        bar("train", 40, 40), "loss 4.1", "no total: 7it [00:01, 6.1it/s]"]


def test_a_bar_that_starts_again_is_a_new_bar():
    lines = [bar("eval", 5, 10), bar("eval", 10, 10), bar("eval", 0, 10), bar("eval", 10, 10)]
    assert progress_bars.superseded(lines) == [0, 2]
    assert progress_bars.collapse("\n".join(lines)).split("\n") == [bar("eval", 10, 10)] * 2


def test_carriage_returns_overwrite_like_a_terminal():
    raw = f"{bar('a', 1, 4)}\r{bar('a', 4, 4)}\nplain line\rPLAIN"
    assert progress_bars.collapse(raw) == f"{bar('a', 4, 4)}\nPLAIN line"


def test_text_without_bars_is_untouched():
    text = "epoch 1: loss 3.2\n\n100% sure\nstep 5/10 done"
    assert progress_bars.collapse(text) == text
    assert progress_bars.superseded(text.split("\n")) == []
