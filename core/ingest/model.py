"""What every reader yields: `Snippet` records, `IngestProblem`s (counted errors and skips) and
`Advance` ticks for progress; plus code normalization, the snippet id and language names."""
from __future__ import annotations

import hashlib
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import PurePath


@dataclass
class Snippet:
    """One candidate row of `snippets` before filtering (code not yet normalized)."""
    code: str
    language: str
    source: str
    source_kind: str                  # codesearchnet | wholefile | dir | stdlib
    kind: str = "function"            # function | seed
    repo: str | None = None
    path: str | None = None
    func_name: str | None = None
    docstring: str | None = None
    url: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    seed_rng: int | None = None
    location: str = ""                # where it came from, for filter messages


@dataclass
class IngestProblem:
    """A counted error or skip: one `ingest_errors` row."""
    location: str
    reason: str                       # short, countable: 'malformed_json', 'too_short', ...
    detail: str = ""
    kind: str = "error"               # error | filtered
    source: str | None = None         # filled in by the orchestrator when None


@dataclass
class Advance:
    """Progress tick: the first `nbytes` bytes of the current input (file or folder) are done."""
    nbytes: int
    note: str = ""


@dataclass
class ReadOptions:
    """Knobs shared by the readers (limits protect memory; seed makes OSS-Instruct seeds reproducible)."""
    seed: int = 0
    max_file_bytes: int = 1_000_000         # source files above this are skipped as 'huge_file'
    max_line_bytes: int = 8_000_000         # JSONL lines above this are skipped as 'line_too_long'
    max_errors_per_file: int = 200          # then the rest of a file is given up as unreadable
    extract_functions: bool = True          # whole-file corpora: also yield tree-sitter functions
    draw_seeds: bool = True                 # whole-file corpora: yield one OSS-Instruct seed per file
    file_seeds: bool = False                # source folders (the stdlib demo): also one seed per file
    keep_tests: bool = False                # source folders: read test code too (skipped as 'test_code' by default)
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- languages

# Canonical language names: the nine tree-sitter languages use these spellings.
TREE_SITTER_LANGUAGES = ("python", "java", "javascript", "typescript", "go", "php", "ruby", "rust", "cpp")
CODESEARCHNET_LANGUAGES = ("go", "java", "javascript", "php", "python", "ruby")

# Other spellings of a language -> its canonical name: the one table of them (ingest's readers and the
# execution check's sandbox both read names through it).
LANGUAGE_ALIASES = {
    "py": "python", "python3": "python", "java": "java", "js": "javascript", "jsx": "javascript",
    "node": "javascript", "nodejs": "javascript", "ts": "typescript", "tsx": "typescript", "golang": "go", "rb": "ruby",
    "rs": "rust", "c++": "cpp", "cxx": "cpp", "cc": "cpp", "c#": "csharp", "cs": "csharp",
    "bash": "shell", "sh": "shell", "zsh": "shell", "objective-c": "objc", "kt": "kotlin",
}

# File extension -> canonical language, for the languages we can parse.
EXTENSIONS = {
    ".py": "python", ".java": "java", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "typescript", ".go": "go", ".php": "php", ".rb": "ruby", ".rs": "rust",
    ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp",
    ".hxx": "cpp", ".h": "cpp",
}

# Source code we recognise but cannot extract functions from ('unsupported_language' in a folder;
# whole-file corpora still draw OSS-Instruct seeds from them).
OTHER_CODE_EXTENSIONS = {
    ".c": "c", ".cs": "csharp", ".swift": "swift", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".sh": "shell", ".bash": "shell", ".lua": "lua", ".pl": "perl", ".pm": "perl", ".r": "r",
    ".m": "objc", ".mm": "objc", ".dart": "dart", ".ex": "elixir", ".exs": "elixir", ".erl": "erlang",
    ".hs": "haskell", ".clj": "clojure", ".jl": "julia", ".zig": "zig", ".f90": "fortran",
    ".cob": "cobol", ".cbl": "cobol", ".pas": "pascal", ".vb": "vb", ".groovy": "groovy", ".sql": "sql",
}


def canonical_language(name: str | None) -> str | None:
    """'Python' -> 'python', 'C++' -> 'cpp'; None/'' -> None."""
    if not name or not isinstance(name, str):
        return None
    key = name.strip().lower()
    return LANGUAGE_ALIASES.get(key, key) or None


def language_of_path(path: str | PurePath | None) -> str | None:
    """Language from a file name's extension, or None if unknown."""
    if not path:
        return None
    suffix = PurePath(str(path)).suffix.lower()
    return EXTENSIONS.get(suffix) or OTHER_CODE_EXTENSIONS.get(suffix)


# --------------------------------------------------------------------------- normalization

_BLOCK_CLOSERS = ("}", "};", "end", "});", "})", ")")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _fix_stripped_first_line(lines: list[str], language: str) -> list[str]:
    """Code cut out of a file often has its first line's indentation stripped but not the others'
    (CodeSearchNet methods). Give the other lines back the same relative indentation."""
    body = [l for l in lines[1:] if l.strip()]
    if not body or _indent(lines[0]) > 0:
        return lines
    shift = min(_indent(l) for l in body)
    if shift == 0:
        return lines
    if language == "python":
        # The body of a def is one level deeper than the def (or, after a decorator line, the def
        # is at the decorator's level): find the shift that parses.
        import ast
        for extra in (0, 4, 2, 8, 1, 3):
            if shift - extra < 0:
                continue
            trial = [lines[0]] + [l[shift - extra:] if l.strip() else "" for l in lines[1:]]
            try:
                ast.parse("\n".join(trial))
                return trial
            except (SyntaxError, ValueError):
                continue
        return lines
    last = body[-1]
    if last.strip() in _BLOCK_CLOSERS and _indent(last) == shift:
        return [lines[0]] + [l[shift:] if l.strip() else "" for l in lines[1:]]
    return lines


def normalize_code(code: str, language: str = "") -> str:
    """The stored form: LF line ends, no trailing spaces, no blank edges, common indent removed."""
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    lines = [l.rstrip() for l in code.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return ""
    lines = _fix_stripped_first_line(lines, language)
    return textwrap.dedent("\n".join(lines))


_WS = re.compile(r"\s+")


def dedup_key(code: str) -> str:
    """What two snippets must share to be exact duplicates: the code with all whitespace runs
    collapsed (so re-indented or re-wrapped copies count as the same)."""
    return _WS.sub(" ", code).strip()


def snippet_id(normalized_code: str) -> str:
    """snippets.id: sha256 (hex, 32 chars) of the dedup key of the normalized code."""
    return hashlib.sha256(dedup_key(normalized_code).encode("utf-8")).hexdigest()[:32]
