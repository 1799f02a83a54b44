"""Replace one ``## `` section of a Markdown page, leaving every other section as it is.

Every benchmark writes its own section of ``docs/benchmarks.md`` through :func:`replace_section`
(run as ``python bench/NAME.py``, the ``bench`` folder is on the import path).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["replace_section"]


def replace_section(path, heading: str, section: str) -> None:
    """Put ``section`` (which starts with the line ``heading``) in place of the page's section of
    that heading, up to the next ``## `` heading; append it when the page has none."""
    path = Path(path)
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    section = section.rstrip("\n") + "\n"
    pat = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pat.search(text):
        text = pat.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
