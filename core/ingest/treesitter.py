"""Functions and methods, with their docstring or leading comment, via tree-sitter.

Uses the per-language grammar packages (tree_sitter_python, ...), which work offline.
Traversal stops at a function (nested functions stay inside their parent), descends
into classes and everything else, and qualifies methods with their class name.
"""
from __future__ import annotations

import importlib
import inspect
import re
import threading
from dataclasses import dataclass, field
from functools import cache

import tree_sitter as ts


@dataclass(frozen=True)
class LangSpec:
    module: str                              # grammar package
    entry: str                               # function returning the language pointer
    functions: frozenset[str]                # node types that are functions/methods
    comments: frozenset[str]
    wrappers: frozenset[str] = frozenset()   # nodes whose span belongs to the function inside
    classes: dict = field(default_factory=dict)  # class-like node type -> field with its name
    var_functions: bool = False              # JS/TS: `const f = () => {...}` is a function


_JS_FUNCS = frozenset({"function_declaration", "generator_function_declaration", "method_definition"})
_JS_CLASSES = {"class_declaration": "name", "class": "name", "abstract_class_declaration": "name"}

SPECS: dict[str, LangSpec] = {
    "python": LangSpec("tree_sitter_python", "language", frozenset({"function_definition"}),
                       frozenset({"comment"}), frozenset({"decorated_definition"}),
                       {"class_definition": "name"}),
    "java": LangSpec("tree_sitter_java", "language",
                     frozenset({"method_declaration", "constructor_declaration"}),
                     frozenset({"block_comment", "line_comment"}), frozenset(),
                     {"class_declaration": "name", "interface_declaration": "name",
                      "enum_declaration": "name", "record_declaration": "name"}),
    "javascript": LangSpec("tree_sitter_javascript", "language", _JS_FUNCS, frozenset({"comment"}),
                           frozenset({"export_statement"}), _JS_CLASSES, var_functions=True),
    "typescript": LangSpec("tree_sitter_typescript", "language_typescript", _JS_FUNCS,
                           frozenset({"comment"}), frozenset({"export_statement"}), _JS_CLASSES,
                           var_functions=True),
    "tsx": LangSpec("tree_sitter_typescript", "language_tsx", _JS_FUNCS, frozenset({"comment"}),
                    frozenset({"export_statement"}), _JS_CLASSES, var_functions=True),
    "go": LangSpec("tree_sitter_go", "language", frozenset({"function_declaration", "method_declaration"}),
                   frozenset({"comment"})),
    "php": LangSpec("tree_sitter_php", "language_php", frozenset({"function_definition", "method_declaration"}),
                    frozenset({"comment"}), frozenset(),
                    {"class_declaration": "name", "interface_declaration": "name",
                     "trait_declaration": "name", "enum_declaration": "name"}),
    "ruby": LangSpec("tree_sitter_ruby", "language", frozenset({"method", "singleton_method"}),
                     frozenset({"comment"}), frozenset(), {"class": "name", "module": "name"}),
    "rust": LangSpec("tree_sitter_rust", "language", frozenset({"function_item"}),
                     frozenset({"line_comment", "block_comment"}), frozenset(),
                     {"impl_item": "type", "trait_item": "name"}),
    "cpp": LangSpec("tree_sitter_cpp", "language", frozenset({"function_definition"}),
                    frozenset({"comment"}), frozenset({"template_declaration"}),
                    {"class_specifier": "name", "struct_specifier": "name"}),
}

# Languages whose function nodes must have a body to count (abstract/interface declarations do not).
_NEEDS_BODY = {"java", "php"}


@dataclass
class Function:
    name: str | None
    code: str                 # with the first line's original indentation restored
    docstring: str | None
    start_line: int           # 1-based, inclusive (decorators/templates/export included)
    end_line: int


@dataclass
class Extraction:
    functions: list[Function]
    error_line: int | None = None    # first syntax error (1-based) if the file did not parse cleanly
    error_text: str = ""


class GrammarMissing(Exception):
    pass


@cache
def get_language(name: str) -> ts.Language:
    spec = SPECS[name]
    try:
        mod = importlib.import_module(spec.module)
    except ImportError as exc:
        raise GrammarMissing(f"tree-sitter grammar package {spec.module!r} is not installed") from exc
    return ts.Language(getattr(mod, spec.entry)())


_parsers = threading.local()


def _parser(name: str) -> ts.Parser:
    cache = getattr(_parsers, "by_lang", None)
    if cache is None:
        cache = _parsers.by_lang = {}
    if name not in cache:
        cache[name] = ts.Parser(get_language(name))
    return cache[name]


def grammar_for(language: str, path: str | None = None) -> str | None:
    """The grammar key for a canonical language (TSX files get the tsx grammar)."""
    if language == "typescript" and path and str(path).lower().endswith(".tsx"):
        return "tsx"
    return language if language in SPECS else None


# --------------------------------------------------------------------------- comments

_PY_STRING = re.compile(r"^[rRuUbBfF]{0,2}(\"\"\"|'''|\"|')(.*)\1$", re.S)
_COMMENT_PREFIX = re.compile(r"^\s*(/\*\*|/\*|\*/|///|//!|//|#|\*)")


def _node_text(node: ts.Node) -> str:
    """A node's source text (None only for a tree parsed without its bytes, which ours never are)."""
    return (node.text or b"").decode("utf-8", "replace")


def _clean_python_string(text: str) -> str | None:
    m = _PY_STRING.match(text.strip())
    if not m:
        return None
    return inspect.cleandoc(m.group(2)) or None


def _clean_comment(text: str) -> str:
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if line.endswith("*/"):
            line = line[:-2]
        line = _COMMENT_PREFIX.sub("", line, count=1)
        out.append(line.strip())
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _leading_comment(node: ts.Node, comment_types: frozenset[str]) -> str | None:
    """Comments directly above `node` (no blank line between, not trailing another statement)."""
    parts: list[ts.Node] = []
    next_row = node.start_point.row
    sib = node.prev_sibling
    while sib is not None and sib.type in comment_types and sib.end_point.row >= next_row - 1:
        before = sib.prev_sibling
        if before is not None and before.type not in comment_types and before.end_point.row == sib.start_point.row:
            break  # a trailing comment of the previous statement
        parts.append(sib)
        next_row = sib.start_point.row
        sib = before
    if not parts:
        return None
    text = "\n".join(_clean_comment(_node_text(p)) for p in reversed(parts))
    return text.strip() or None


def _python_docstring(fn: ts.Node) -> str | None:
    body = fn.child_by_field_name("body")
    if body is None:
        return None
    for child in body.named_children:
        if child.type == "comment":
            continue
        node = child
        if node.type == "expression_statement" and node.named_child_count == 1:
            node = node.named_children[0]
        if node.type in ("string", "concatenated_string"):
            return _clean_python_string(_node_text(node))
        return None
    return None


# --------------------------------------------------------------------------- names

def _cpp_declarator(node: ts.Node) -> ts.Node | None:
    """The `declarator` field, or (reference/pointer declarators) the declarator child."""
    inner = node.child_by_field_name("declarator")
    if inner is None:
        inner = next((c for c in node.named_children if c.type.endswith("declarator")), None)
    return inner


def _cpp_name(fn: ts.Node) -> str | None:
    node = _cpp_declarator(fn)
    for _ in range(10):
        if node is None:
            return None
        if node.type == "function_declarator":
            inner = node.child_by_field_name("declarator")
            return _node_text(inner) if inner is not None else None
        node = _cpp_declarator(node)
    return None


def _go_receiver(fn: ts.Node) -> str | None:
    recv = fn.child_by_field_name("receiver")
    if recv is None:
        return None
    names = re.findall(r"[A-Za-z_]\w*", _node_text(recv))
    return names[-1] if names else None


def _function_name(lang: str, fn: ts.Node) -> str | None:
    if lang == "cpp":
        return _cpp_name(fn)
    node = fn.child_by_field_name("name")
    name = _node_text(node) if node is not None else None
    if lang == "go" and fn.type == "method_declaration" and name:
        recv = _go_receiver(fn)
        return f"{recv}.{name}" if recv else name
    return name


def _class_name(spec: LangSpec, node: ts.Node) -> str | None:
    name_field = spec.classes.get(node.type)
    if not name_field:
        return None
    n = node.child_by_field_name(name_field)
    return _node_text(n) if n is not None else None


# --------------------------------------------------------------------------- extraction

def _first_error(node: ts.Node) -> ts.Node | None:
    """The first ERROR or MISSING node under `node` (only descends into subtrees with errors)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "ERROR" or n.is_missing:
            return n
        stack.extend(c for c in reversed(n.children) if c.has_error or c.is_missing)
    return None


def _var_function(node: ts.Node) -> tuple[str, ts.Node] | None:
    """`const name = () => {...}` / `var name = function () {...}`: (name, value) if so."""
    if node.type not in ("lexical_declaration", "variable_declaration"):
        return None
    decls = [c for c in node.named_children if c.type == "variable_declarator"]
    if len(decls) != 1:
        return None
    value = decls[0].child_by_field_name("value")
    name = decls[0].child_by_field_name("name")
    if value is None or name is None or value.type not in ("arrow_function", "function_expression", "function"):
        return None
    return _node_text(name), value


def extract_functions(source: bytes, language: str, path: str | None = None) -> Extraction:
    """Parse `source` and return its functions/methods. `language` is canonical (see model.py).

    Raises GrammarMissing if the grammar package is not installed, KeyError for other languages.
    """
    grammar = grammar_for(language, path)
    if grammar is None:
        raise KeyError(language)
    spec = SPECS[grammar]
    tree = _parser(grammar).parse(source)
    root = tree.root_node
    result = Extraction(functions=[])
    if root.has_error:
        err = _first_error(root)
        if err is not None:
            result.error_line = err.start_point.row + 1
            result.error_text = (err.text or b"")[:60].decode("utf-8", "replace")
        else:
            result.error_line = root.start_point.row + 1

    def emit(fn: ts.Node, outer: ts.Node, classes: list[str], name: str | None = None) -> None:
        if fn.has_error or outer.has_error:
            return
        if language in _NEEDS_BODY and fn.child_by_field_name("body") is None:
            return
        name = name or _function_name(grammar, fn)
        if name and classes:
            name = ".".join(classes + [name])
        line_start = source.rfind(b"\n", 0, outer.start_byte) + 1
        prefix = source[line_start:outer.start_byte]
        start = line_start if not prefix.strip() else outer.start_byte
        code = source[start:outer.end_byte].decode("utf-8", "replace")
        doc = _python_docstring(fn) if grammar == "python" else None
        if doc is None:
            doc = _leading_comment(outer, spec.comments)
        result.functions.append(Function(name=name, code=code, docstring=doc,
                                          start_line=outer.start_point.row + 1,
                                          end_line=outer.end_point.row + 1))

    # Iterative walk (deeply nested code must not hit Python's recursion limit), in source order.
    stack: list[tuple[ts.Node, list[str]]] = [(root, [])]
    while stack:
        node, classes = stack.pop()
        pending = []
        for child in node.children:
            t = child.type
            if t in spec.functions:
                emit(child, child, classes)
            elif t in spec.wrappers:
                inner = next((c for c in child.named_children if c.type in spec.functions), None)
                var = None
                if inner is None and spec.var_functions:
                    var = next((v for v in map(_var_function, child.named_children) if v), None)
                if inner is not None:
                    emit(inner, child, classes)
                elif var is not None:
                    emit(var[1], child, classes, name=var[0])
                else:
                    pending.append((child, classes))
            elif spec.var_functions and (var := _var_function(child)) is not None:
                emit(var[1], child, classes, name=var[0])
            elif t in spec.classes:
                cname = _class_name(spec, child)
                pending.append((child, classes + [cname] if cname else classes))
            elif child.child_count:
                pending.append((child, classes))
        stack.extend(reversed(pending))
    result.functions.sort(key=lambda f: f.start_line)
    return result
