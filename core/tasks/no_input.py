"""The one definition of "no input": what a generator writes when an example needs no extra input.

The pre-filter normalizes every such value to NO_INPUT, export turns it into an empty input,
and the Review page shows it as plain text rather than as code.
"""
from __future__ import annotations

NO_INPUT = "no input"

# Values meaning "nothing here", compared after lower-casing and trimming trailing punctuation and quotes.
PLACEHOLDERS = frozenset({
    "", "none", "no", "n/a", "na", "nil", "null", "nothing", "-", "--", "empty", "not applicable",
    "no input", "no inputs", "no input required", "no input needed", "no additional input",
    "no additional input required", "no additional information", "no additional information is required",
    "no additional information required", "no information", "no extra information", "no extra input",
    "not required", "no information needed", "none required", "none needed",
    "<noinput>",   # Alpaca's spelling
})


def is_no_input(value: object) -> bool:
    """True when `value` says there is no input (None, blank, or a placeholder such as "N/A.")."""
    if value is None:
        return True
    text = str(value).strip().lower()
    end = len(text)   # drop trailing whitespace and .!:; (a scan from the end: inputs can be long code)
    while end and (text[end - 1].isspace() or text[end - 1] in ".!:;"):
        end -= 1
    return text[:end].strip("\"'` ") in PLACEHOLDERS
