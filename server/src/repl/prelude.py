"""rlm-lsp REPL prelude: the helpers model code sees, and the cell runner.

Loaded once per worker (server/src/repl/worker/) as module `_rlm_prelude`. The Rust module
`_rlm` provides `Context` (the read-only workspace mapping), `CapturedOutput` (a cell's bounded
stdout/stderr), `subcall` (sub-model calls answered by the parent process), `Tools` (grep, read, match
counts and call sites over the mapped workspace; symbols, outline, definitions, enclosing
functions, implementations and search asked of the parent's index) and `Chunks`. The structural
helpers (definitions, references, callers, implementations, files_matching, count_by_dir,
count_by_file, search) each do one whole job in one call and print compact, citable results.
Model code runs in the namespace of `__main__`.
"""

import ast
import builtins
import collections.abc
import faulthandler
import io
import linecache
import operator
import re
import reprlib
import json
import sys
import traceback
import types

import _rlm
import _rlm_edits
import _rlm_find

collections.abc.Mapping.register(_rlm.Context)
collections.abc.Sequence.register(_rlm.Chunks)

_MAX_FRAMES = 8
_MAX_ERROR_CHARS = 8000
_MISSING = object()

_ns = sys.modules["__main__"].__dict__
_state = {"cell": 0, "final": None}
_io = {}
_HELPERS = {}
_tools = None  # _rlm.Tools, set by setup()


class _FinalSignal(BaseException):
    """Stops the cell after FINAL/FINAL_VAR. A BaseException, so that `except Exception` in model
    code does not swallow it; run_cell catches it."""


def _as_prompt(prompt):
    return prompt if isinstance(prompt, str) else str(prompt)


def _answer(ok, text):
    if ok or text.startswith("Error: "):
        return text
    return "Error: " + text


def llm_query(prompt):
    """Ask a sub-model. Returns its answer as a str, or a str starting with "Error: " when the
    call failed."""
    ((ok, text),) = _rlm.subcall([_as_prompt(prompt)])
    return _answer(ok, text)


def llm_query_batched(prompts):
    """Ask a sub-model several prompts at once (in parallel). Returns a list of answers in the
    same order; a failed call gives a str starting with "Error: " in its slot."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError(
            "llm_query_batched takes a list of prompts; for a single prompt use llm_query(prompt)"
        )
    prompts = [_as_prompt(p) for p in prompts]
    if not prompts:
        return []
    return [_answer(ok, text) for ok, text in _rlm.subcall(prompts)]


def _context_spec(context):
    """The JSON spec of a child run's context: None (the parent's workspace), a str, a dict of
    path -> text, or a list of texts."""
    if context is None:
        return None
    if isinstance(context, str):
        return json.dumps({"text": context})
    if isinstance(context, dict) or hasattr(context, "items"):
        return json.dumps({"files": {str(k): str(v) for k, v in context.items()}})
    if isinstance(context, (list, tuple)):
        return json.dumps({"files": {f"part_{i:03d}.txt": str(v) for i, v in enumerate(context)}})
    raise TypeError(
        "rlm_query's context must be None, a str, a dict of path -> text or a list of str, "
        f"not a {type(context).__name__}"
    )


def rlm_query(prompt, context=None):
    """Ask a child RLM: a model with its own REPL over `context` (a str, a dict of path -> text,
    a list of str; None: this workspace). Returns its final answer as a str, or a str starting
    with "Error: ". Past the configured depth it is a plain llm_query on the prompt."""
    ((ok, text),) = _rlm.subcall([_as_prompt(prompt)], [_context_spec(context)])
    return _answer(ok, text)


def rlm_query_batched(prompts, contexts=None):
    """rlm_query for several prompts at once (in parallel), with one context per prompt (or None
    for all). Returns the answers in order; a failed run gives a str starting with "Error: "."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError("rlm_query_batched takes a list of prompts; for one use rlm_query(prompt)")
    prompts = [_as_prompt(p) for p in prompts]
    if contexts is None:
        contexts = [None] * len(prompts)
    contexts = list(contexts)
    if len(contexts) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(contexts)} contexts")
    if not prompts:
        return []
    specs = [_context_spec(c) for c in contexts]
    return [_answer(ok, text) for ok, text in _rlm.subcall(prompts, specs)]


def FINAL(answer):
    """End the run with `answer` (converted with str) as the final answer. The cell stops here."""
    _state["final"] = str(answer)
    raise _FinalSignal()


def FINAL_VAR(name, *more):
    """End the run with the value of the variable named `name` (a str, e.g. FINAL_VAR("answer"))
    as the final answer. The cell stops here."""
    if more or (isinstance(name, str) and not name.strip().isidentifier()):
        # Small models pass the answer itself: FINAL_VAR("parse", "src/lib.rs:12").
        FINAL(", ".join(str(a) for a in (name, *more)))
    if not isinstance(name, str):
        raise TypeError(
            "FINAL_VAR takes the name of a variable as a string, e.g. FINAL_VAR(\"answer\"), "
            f"not a {type(name).__name__}; to answer with a value use FINAL(value)"
        )
    key = name.strip()
    value = sys._getframe(1).f_locals.get(key, _MISSING)
    if value is _MISSING:
        value = _ns.get(key, _MISSING)
    if value is _MISSING:
        hint = f"assign it first ({key} = ...) or answer with FINAL(value)"
        raise NameError(f"FINAL_VAR({_short.repr(name)}): there is no variable named {_short.repr(key)}; {hint}")
    _state["final"] = str(value)
    raise _FinalSignal()


class _Shown(str):
    """A str shown as itself: a bare `read(...)` or `outline(...)` ending a cell prints lines,
    not a quoted string."""

    __slots__ = ()

    def __repr__(self):
        return str(self)


class _Hits(list):
    """grep() results: a list of (path, line, text) tuples, shown one `path:line: text` a line
    (slices too, so that `print(hits[:30])` reads well)."""

    def __getitem__(self, key):
        got = list.__getitem__(self, key)
        return _Hits(got) if isinstance(key, slice) else got

    def __repr__(self):
        if not self:
            return "[] (no matches)"
        try:
            return "\n".join(f"{p}:{n}: {str(t).strip()}" for p, n, t in self)
        except (TypeError, ValueError):  # the model put other things in the list
            return list.__repr__(self)


class _Defs(list):
    """symbols() results, shown one definition a line."""

    def __repr__(self):
        if not self:
            return "[] (no definitions found)"
        return "\n".join(repr(d) for d in self)


def _limit(max_results):
    if max_results is None:
        return sys.maxsize
    n = operator.index(max_results)
    if n < 0:
        raise ValueError(f"max_results must be >= 0 or None, not {n}")
    return n


def grep(pattern, paths=None, ignore_case=False, max_results=1000):
    """Search the workspace for a regular expression, line by line (fast, done in Rust).

    Returns a list of (path, line, text) tuples in path order, then line order: `line` is
    1-based, `text` is the matching line (long lines are cut to 300 characters around the match).
    - pattern: a regular expression (Rust `regex` syntax: like Python's `re` without look-around
      or backreferences); `^`/`$` match at line starts/ends; a match never spans lines. A compiled
      `re` pattern works too (its IGNORECASE flag is honored).
    - paths: only search these: a file path ("src/main.rs"), a directory ("src" or "src/"), or a
      glob ("*.py", "src/**/test_*.rs"; `*` stops at "/", and a glob without "/" matches file
      names in any directory); or a list of them.
    - ignore_case: case-insensitive (Unicode) matching.
    - max_results: the most matches returned (None: all); when more match, a note says how many.
    Example: for path, line, text in grep(r"fn \w+_config", paths="src/"): print(path, line, text)
    """
    if hasattr(pattern, "pattern") and hasattr(pattern, "flags"):  # re.compile(...)
        ignore_case = ignore_case or bool(pattern.flags & re.IGNORECASE)
        pattern = pattern.pattern
    if isinstance(pattern, bytes):
        pattern = pattern.decode("utf-8", "replace")
    if not isinstance(pattern, str):
        raise TypeError(f"grep() pattern must be a str (a regular expression), not {type(pattern).__name__}")
    if paths is not None:
        paths = [paths] if isinstance(paths, str) else [str(p) for p in paths]
    hits, total = _tools.grep(pattern, paths, bool(ignore_case), _limit(max_results))
    if total > len(hits):
        print(
            f"[grep: {total} lines match in all; only the first {len(hits)} are returned. "
            "Use a narrower pattern or paths=..., or pass max_results=...]"
        )
    return _Hits(hits)


def read(path, start_line=None, end_line=None):
    """Lines of one file, numbered for citing: "  12| text" (lines are 1-based, inclusive).

    read(path) gives the first 1000 lines; read(path, 40, 60) lines 40 to 60; read(path, 40) from
    line 40 on. "src/a.rs:40" or "src/a.rs:40-60" (as grep and citations write them) work too.
    An end_line past the end stops at the last line.
    """
    if not isinstance(path, str):
        raise TypeError(f"read() path must be a str such as 'src/main.rs', not {type(path).__name__}")
    return _Shown(_tools.read(path, start_line, end_line))


def symbols(name=None, kind=None, path=None, max_results=1000):
    """Definitions from the code index (functions, methods, classes, structs, enums,
    interfaces/traits, impls, modules, constants, types).

    Each has .name .kind .path .start_line .end_line .parent .signature .language and .text
    (its source). Filters (all optional, combined):
    - name: exact name first; if none, case-insensitive; then names starting with it.
      "Parser.parse" or "Parser::parse" also matches the parent.
    - kind: "function", "method", "class", "struct", "enum", "interface", "impl", "module",
      "constant" or "type".
    - path: a file, a directory ("src/") or a glob ("*.py").
    Example: for d in symbols("parse_args"): print(d, d.signature)
    """
    defs, total = _tools.symbols(
        None if name is None else str(name),
        None if kind is None else str(kind),
        None if path is None else str(path),
        _limit(max_results),
    )
    if total > len(defs):
        print(
            f"[symbols: {total} definitions match in all; only the first {len(defs)} are "
            "returned. Narrow with name=, kind= or path=, or pass max_results=...]"
        )
    return _Defs(defs)


def outline(path):
    """The definitions of one file, one a line with its line range, indented by nesting."""
    if not isinstance(path, str):
        raise TypeError(f"outline() path must be a str such as 'src/main.rs', not {type(path).__name__}")
    return _Shown(_tools.outline(path))


# ---------------------------------------------------------------------------------------------
# Structural helpers: one call does the whole job and prints compact `path:line` results.

_META = set("\\.+*?()|[]{}^$#&-~")


def _rx_escape(text):
    """`text` as a literal in the grep (Rust regex) syntax."""
    return "".join("\\" + c if c in _META else c for c in text)


def _is_word_char(c):
    return c.isalnum() or c == "_"


def _word_pattern(word):
    """The grep pattern of `word` as a whole word."""
    p = _rx_escape(word)
    if word and _is_word_char(word[0]):
        p = r"\b" + p
    if word and _is_word_char(word[-1]):
        p = p + r"\b"
    return p


def _last_part(name):
    """`Parser::parse` and `Parser.parse` -> `parse`."""
    for sep in ("::", "."):
        head, _, tail = name.rpartition(sep)
        if head and tail:
            name = tail
    return name


def _paths_arg(paths):
    if paths is None:
        return None
    return [paths] if isinstance(paths, str) else [str(p) for p in paths]


def _pattern_arg(pattern, ignore_case, who):
    if hasattr(pattern, "pattern") and hasattr(pattern, "flags"):  # re.compile(...)
        ignore_case = ignore_case or bool(pattern.flags & re.IGNORECASE)
        pattern = pattern.pattern
    if isinstance(pattern, bytes):
        pattern = pattern.decode("utf-8", "replace")
    if not isinstance(pattern, str):
        raise TypeError(f"{who}() pattern must be a str (a regular expression), not {type(pattern).__name__}")
    return pattern, bool(ignore_case)


class _Definitions(list):
    """definitions() results: Definition objects, shown `path:line: signature` one a line."""

    name = ""

    def __getitem__(self, key):
        got = list.__getitem__(self, key)
        if isinstance(key, slice):
            out = _Definitions(got)
            out.name = self.name
            return out
        return got

    def __repr__(self):
        if not self:
            return f"[] (no definition of {self.name})"
        try:
            return "\n".join(f"{d.path}:{d.start_line}: {d.signature}" for d in self)
        except AttributeError:  # the model put other things in the list
            return list.__repr__(self)


def definitions(name):
    """Where `name` is defined: the definitions whose name is exactly `name` (case-sensitive; if
    there are none, ignoring case). "Parser.parse" or "Parser::parse" keeps those whose parent
    is Parser. Instant: one index query.

    Returns a list of Definition objects (.name .kind .path .start_line .end_line .parent
    .signature .language .text), shown one `path:line: signature` a line.
    Example: definitions("parse_args")  ->  src/cli.rs:9: pub fn parse_args() -> Args {
    """
    name = str(name).strip()
    out = _Definitions(_tools.definitions(name))
    out.name = name
    return out


def _definitions_or_none(name):
    """definitions(name), or an empty list when there is no index (grep-only helpers go on)."""
    try:
        return definitions(name)
    except RuntimeError:
        out = _Definitions()
        out.name = name
        return out


def _definition_lines(defs, word):
    """{(path, line)} of the line naming `word` in each definition called `word`: its signature
    line (the first line of the definition that mentions the word; a decorated function's
    `def` line, not its decorator)."""
    ctx = _HELPERS["context"]
    found = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)")
    lines_of = {}
    out = set()
    for d in defs:
        if d.name != word:
            continue
        line = d.start_line
        if d.path not in lines_of:
            text = ctx.get(d.path)
            lines_of[d.path] = text.split("\n") if text is not None else []
        lines = lines_of[d.path]
        last = min(d.end_line, d.start_line + 50, len(lines))
        for n in range(d.start_line, last + 1):
            if found.search(lines[n - 1]):
                line = n
                break
        out.add((d.path, line))
    return out


class _References(list):
    """references() results: (path, [lines]) per file, most mentions first."""

    name = ""
    total = 0
    files = 0
    definitions = ()
    excluded = 0

    def __repr__(self):
        try:
            head = (
                f"{self.total} references to {self.name} in {self.files} files "
                f"({self.excluded} definition lines not counted):"
            )
            rows = [head]
            for path, lines in self[:40]:
                shown = ", ".join(str(n) for n in lines[:12])
                if len(lines) > 12:
                    shown += ", ..."
                rows.append(f"{path}: {len(lines)} (lines {shown})")
            if len(self) > 40:
                rows.append(f"... and {len(self) - 40} more files")
            return "\n".join(rows)
        except (TypeError, ValueError):
            return list.__repr__(self)


def references(name, paths=None):
    """Every line that mentions `name` as a whole word (case-sensitive), grouped by file, most
    mentions first, without the lines that define it. One scan of every file (or of `paths`: a
    file, a directory, a glob, or a list of them) plus one index query.

    Returns a list of (path, [line numbers]) with .total (lines counted), .files (number of
    files) and .definitions (definitions(name)). A qualified name ("Parser.parse") is searched
    by its last part. Shown as:
        7 references to parse_args in 3 files (1 definition lines not counted):
        src/main.rs: 4 (lines 10, 22, 40, 41)
    """
    name = str(name).strip()
    word = _last_part(name)
    if not word:
        raise ValueError("references() needs a name, e.g. references('parse_args')")
    hits, _ = _tools.grep(_word_pattern(word), _paths_arg(paths), False, sys.maxsize)
    defs = _definitions_or_none(name)
    skip = _definition_lines(defs, word)
    by_file = {}
    excluded = 0
    for path, line, _text in hits:
        if (path, line) in skip:
            excluded += 1
            continue
        by_file.setdefault(path, []).append(line)
    out = _References(sorted(by_file.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    out.name = name
    out.total = sum(len(v) for v in by_file.values())
    out.files = len(by_file)
    out.definitions = defs
    out.excluded = excluded
    return out


def _display_name(d):
    """`Parent::name` for a method whose parent is known, else the name."""
    if d is None:
        return None
    if d.kind == "method" and d.parent:
        return f"{d.parent}::{d.name}"
    return d.name


class _Callers(list):
    """callers() results: (path, line, caller) per call site."""

    name = ""
    files = ()
    functions = ()
    _texts = None

    def __repr__(self):
        try:
            rows = [
                f"{len(self)} calls to {self.name} in {len(self.files)} files, "
                f"from {len(self.functions)} functions:"
            ]
            texts = self._texts or {}
            for path, line, caller in self[:40]:
                text = texts.get((path, line), "").strip()
                if len(text) > 120:
                    text = text[:120]
                where = caller if caller is not None else "<top level>"
                rows.append(f"{path}:{line}: in {where}: {text}")
            if len(self) > 40:
                rows.append(f"... and {len(self) - 40} more")
            return "\n".join(rows)
        except (TypeError, ValueError):
            return list.__repr__(self)


def callers(name, paths=None):
    """The call sites of function or method `name`: lines where the whole word is followed by
    `(` (or `::<T>(`; a Rust macro `name!(` is not a call), without the lines that define it.
    For each, the innermost function or method around it. One scan of every file (or of
    `paths`) plus two index queries.

    Returns a list of (path, line, caller) with caller "Parent::name" for a method, "name" for
    a function, None at top level; .files (sorted paths) and .functions (sorted caller names).
    A qualified name ("Parser.parse") is searched by its last part. Shown as:
        2 calls to parse_args in 1 files, from 1 functions:
        src/main.rs:12: in main: let args = Args::parse_args();
    """
    name = str(name).strip()
    word = _last_part(name)
    if not word:
        raise ValueError("callers() needs a function name, e.g. callers('parse_args')")
    hits = _tools.calls(word, _paths_arg(paths))
    skip = _definition_lines(_definitions_or_none(name), word)
    hits = [h for h in hits if (h[0], h[1]) not in skip]
    try:
        around = _tools.enclosing([(p, n) for p, n, _ in hits])
    except RuntimeError:
        around = [None] * len(hits)
    out = _Callers((p, n, _display_name(d)) for (p, n, _), d in zip(hits, around))
    out.name = name
    out.files = sorted({p for p, _, _ in out})
    out.functions = sorted({c for _, _, c in out if c is not None})
    out._texts = {(p, n): t for p, n, t in hits}
    return out


class _Implementation:
    """One type implementing or extending a name (implementations())."""

    __slots__ = ("type_name", "kind", "language", "path", "start_line", "end_line", "signature")

    def __init__(self, type_name, kind, language, path, start_line, end_line, signature):
        self.type_name = type_name
        self.kind = kind
        self.language = language
        self.path = path
        self.start_line = start_line
        self.end_line = end_line
        self.signature = signature

    def __repr__(self):
        return f"{self.path}:{self.start_line}: {self.signature}"


class _Implementations(list):
    """implementations() results."""

    name = ""

    @property
    def types(self):
        """The implementing types' names (not the traits or interfaces that extend it), sorted,
        once each."""
        return sorted({i.type_name for i in self if i.kind != "interface"})

    @property
    def extending(self):
        """The traits or interfaces that extend it (a supertrait, `interface B extends A`)."""
        return sorted({i.type_name for i in self if i.kind == "interface"})

    def __repr__(self):
        if not self:
            return f"[] (nothing implements or extends {self.name})"
        try:
            types = [i for i in self if i.kind != "interface"]
            traits = [i for i in self if i.kind == "interface"]
            # The names first: the answer is usually that list.
            rows = [f"{len(self.types)} types implement {self.name}: {', '.join(self.types)}"]
            rows += [f"{i.path}:{i.start_line}: {i.type_name}: {i.signature}" for i in types]
            if traits:
                rows.append(f"{len(self.extending)} traits or interfaces extend {self.name}: {', '.join(self.extending)}")
                rows += [f"{i.path}:{i.start_line}: {i.type_name}: {i.signature}" for i in traits]
            return "\n".join(rows)
        except AttributeError:
            return list.__repr__(self)


def implementations(name):
    """The types that implement or extend trait/interface/class `name`, in every language of the
    index: Rust `impl Name for Type` (and traits with `Name` as supertrait), Python
    `class X(Name)`, Java/C#/TypeScript/JavaScript/PHP `extends`/`implements`/`: Name`, C++
    `class X : public Name`, Ruby `class X < Name`, Go structs whose methods cover interface
    `Name`'s methods (best effort; embedded interfaces' methods are not required). Instant: one
    index query.

    Returns a list of entries with .type_name .kind .language .path .start_line .end_line
    .signature, and .types (sorted unique type names); a trait implemented twice for one type
    appears twice. Shown as:
        2 types implement Shape:
        src/shapes.rs:10: impl Shape for Circle {
    """
    name = str(name).strip()
    out = _Implementations(_Implementation(*row) for row in _tools.implementations(name))
    out.name = name
    return out


class _FileCounts(list):
    """files_matching() results: (path, matching lines) per file, in path order."""

    pattern = ""
    total_lines = 0

    def __repr__(self):
        try:
            rows = [f"{len(self)} files match {self.pattern!r} ({self.total_lines} matching lines):"]
            rows += [f"{path} ({count})" for path, count in self[:50]]
            if len(self) > 50:
                rows.append(f"... and {len(self) - 50} more files")
            return "\n".join(rows)
        except (TypeError, ValueError):
            return list.__repr__(self)


def files_matching(pattern, paths=None, ignore_case=False):
    """The files with at least one line matching regular expression `pattern` (grep's syntax),
    with how many lines match in each. One scan of every file (or of `paths`).

    Returns a list of (path, count) in path order, with .total_lines. Shown as:
        2 files match 'unsafe' (5 matching lines):
        src/a.rs (4)
        src/b.rs (1)
    """
    pattern, ignore_case = _pattern_arg(pattern, ignore_case, "files_matching")
    counts, total = _tools.count(pattern, _paths_arg(paths), ignore_case)
    out = _FileCounts(counts)
    out.pattern = pattern
    out.total_lines = total
    return out


class _DirCounts(list):
    """count_by_dir() and count_by_file() results: (directory or path, count), largest first."""

    depth = 1
    above = 0
    noun = "directories"

    def __repr__(self):
        try:
            rows = [f"{d}: {n}" for d, n in self[:30]]
            if self:
                # The answer to "which has the most", on a line of its own.
                top = [d for d, n in self if n == self[0][1]]
                lead = "most (tied)" if len(top) > 1 else "most"
                rows.insert(0, f"{lead}: {', '.join(top[:5])} ({self[0][1]})")
            if len(self) > 30:
                rows.append(f"... and {len(self) - 30} more {self.noun}")
            if self.above:
                rows.append(
                    f"({self.above} more in files above depth {self.depth}, "
                    f"in no directory {self.depth} deep)"
                )
            return "\n".join(rows) if rows else "[] (nothing to count)"
        except (TypeError, ValueError):
            return list.__repr__(self)


def _path_and_count(item, fn="count_by_dir"):
    if isinstance(item, str):
        return item, 1
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], str):
        if len(item) == 2:
            second = item[1]
            if isinstance(second, int) and not isinstance(second, bool):
                return item[0], second
            if isinstance(second, (list, tuple, set, frozenset)):  # references(): lines
                return item[0], len(second)
        return item[0], 1  # grep hits (path, line, text), callers (path, line, caller)
    path = getattr(item, "path", None)
    if isinstance(path, str):
        return path, 1
    raise TypeError(
        f"{fn}() counts paths, (path, count) pairs, grep hits, or objects with .path "
        f"(definitions, chunks); got a {type(item).__name__}"
    )


def _counted_items(items, fn):
    """(path, count) pairs of count_by_dir()/count_by_file()'s `items` argument."""
    if isinstance(items, (str, bytes)) or (hasattr(items, "pattern") and hasattr(items, "flags")):
        pattern, ignore_case = _pattern_arg(items, False, fn)
        items, _ = _tools.count(pattern, None, ignore_case)
    elif isinstance(items, collections.abc.Mapping):
        items = list(items.items())
    return [_path_and_count(item, fn) for item in items]


def count_by_dir(items, depth=1):
    """Counts grouped by directory, `depth` path components deep ("src/" at depth 1,
    "src/parser/" at depth 2), each directory with everything under it. At depth 1 a file at
    the top counts for "./"; deeper, a file above `depth` is in no such directory and is left
    out (the result says how much was).

    `items`: a regular expression (str: counts matching lines, one scan of every file); the
    result of files_matching() or references(), or any (path, count) pairs (counts add up); a
    list of paths, grep() hits, callers(), definitions, symbols or chunks (each counts 1).
    Returns a list of (directory, count), largest first, with .above (the count left out).
    Shown one `dir: count` a line.
    """
    depth = operator.index(depth)
    if depth < 1:
        raise ValueError(f"depth must be >= 1, not {depth}")
    counts = {}
    above = 0
    for path, n in _counted_items(items, "count_by_dir"):
        parts = path.strip("/").split("/")[:-1]
        if depth > 1 and len(parts) < depth:
            above += n
            continue
        parts = parts[:depth]
        key = "/".join(parts) + "/" if parts else "./"
        counts[key] = counts.get(key, 0) + n
    out = _DirCounts(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    out.depth = depth
    out.above = above
    return out


def count_by_file(items):
    """Counts per file, largest first: which file has the most of something. `items` as for
    count_by_dir() (a regular expression counts matching lines; one scan of every file).
    Returns a list of (path, count). Shown one `path: count` a line.
    """
    counts = {}
    for path, n in _counted_items(items, "count_by_file"):
        counts[path] = counts.get(path, 0) + n
    out = _DirCounts(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    out.noun = "files"
    return out


class _SearchResults(list):
    """search() results, best first."""

    query = ""

    def __repr__(self):
        if not self:
            return f"[] (no chunk matches {self.query!r})"
        try:
            return "\n".join(f"{i}. {r!r}" for i, r in enumerate(self, 1))
        except (TypeError, ValueError):
            return list.__repr__(self)


def search(query, k=10):
    """The `k` pieces of code (index chunks) that best match `query` by BM25 over their path,
    name and text; identifiers are split into words (parseHTTPRequest -> parse, http, request).
    Best first. The first search of a workspace builds the ranking index (seconds on a large
    one); later ones take milliseconds. One index query.

    Each result has .path .start_line .end_line .kind .name .score and .text (its source).
    Shown as:
        1. src/cli.rs:9-12 method parse_args (7.3)
    """
    k = operator.index(k)
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    out = _SearchResults(_tools.search(str(query), k))
    out.query = str(query)
    return out


_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxdict = 5


def SHOW_VARS():
    """Print the variables you defined, with their type and a short repr."""
    rows = []
    for name, value in list(_ns.items()):
        if name.startswith("_") or name in _HELPERS or isinstance(value, types.ModuleType):
            continue
        try:
            shown = _short.repr(value)
        except Exception as e:  # a broken __repr__ must not break SHOW_VARS
            shown = f"<repr failed: {type(e).__name__}>"
        kind = type(value).__name__
        try:
            if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
                kind += f", len {len(value)}"
        except Exception:
            pass
        rows.append(f"{name}: {kind} = {shown}")
    if rows:
        print("\n".join(rows))
    else:
        print("No variables defined yet (helpers such as context and llm_query are not listed).")


def setup(context, tools, chunks, out, err):
    """Called once by the worker before any model code runs."""
    global _tools
    _tools = tools
    _io["out"], _io["err"] = out, err
    _HELPERS.update(
        context=context,
        llm_query=llm_query,
        llm_query_batched=llm_query_batched,
        rlm_query=rlm_query,
        rlm_query_batched=rlm_query_batched,
        FINAL=FINAL,
        FINAL_VAR=FINAL_VAR,
        SHOW_VARS=SHOW_VARS,
        grep=grep,
        read=read,
        symbols=symbols,
        outline=outline,
        chunks=chunks,
        definitions=definitions,
        references=references,
        callers=callers,
        implementations=implementations,
        files_matching=files_matching,
        count_by_dir=count_by_dir,
        count_by_file=count_by_file,
        search=search,
    )
    _rlm_edits.install(context, files_matching, _tools.non_code, definitions)
    _HELPERS.update(_rlm_edits.HELPERS)
    _rlm_find.install(llm_query, llm_query_batched, search, symbols, context)
    _HELPERS.update(_rlm_find.HELPERS)
    _ns.update(_HELPERS)
    if not getattr(sys, "argv", None):
        sys.argv = ["rlm-repl"]
    # On a crash (segfault...) the parent shows the end of the worker's stderr: make it useful.
    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO()


def _without_prelude_frames(te, seen):
    """Keeps the model's frames (its cells, the libraries it called): the last _MAX_FRAMES."""
    if te is None or id(te) in seen:
        return
    seen.add(id(te))
    frames = [f for f in te.stack if f.filename != _PRELUDE_FILE]
    te.stack = traceback.StackSummary.from_list(frames[-_MAX_FRAMES:])
    _without_prelude_frames(te.__cause__, seen)
    _without_prelude_frames(te.__context__, seen)


def _format_error(e):
    if isinstance(e, SyntaxError):
        text = "".join(traceback.format_exception_only(type(e), e))
    else:
        te = traceback.TracebackException(type(e), e, e.__traceback__, compact=True)
        _without_prelude_frames(te, set())
        text = "".join(te.format())
    if len(text) > _MAX_ERROR_CHARS:
        head = _MAX_ERROR_CHARS // 4
        text = (
            text[:head]
            + f"\n[... {len(text) - _MAX_ERROR_CHARS} characters of traceback dropped ...]\n"
            + text[-(_MAX_ERROR_CHARS - head):]
        )
    return text


def _restore():
    restored = []
    for name, obj in _HELPERS.items():
        if _ns.get(name, _MISSING) is not obj:
            _ns[name] = obj
            restored.append(name)
    for attr, key in (("stdout", "out"), ("stderr", "err")):
        if getattr(sys, attr, None) is not _io[key]:
            restored.append("sys." + attr)
            setattr(sys, attr, _io[key])
    if getattr(sys, "stdin", None) is not _io["in"]:
        restored.append("sys.stdin")
    return restored


_MASK64 = (1 << 64) - 1


def _fingerprint(value):
    """A stable u64 for a value: its type name, identity and length (when it has one)."""
    try:
        n = len(value)
        if not isinstance(n, int):
            n = None
    except BaseException:
        n = None
    try:
        return hash((type(value).__name__, id(value), n)) & _MASK64
    except BaseException:
        return id(value) & _MASK64


def _is_user_var(name, value):
    return not (
        name.startswith("_") or name in _HELPERS or isinstance(value, types.ModuleType)
    )


def _stores(stmt):
    """Names a top-level statement binds in the module namespace."""
    out = set()
    todo = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            out.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                out.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
        todo.extend(ast.iter_child_nodes(node))
    return out


def _reads(tree):
    """(name, fingerprint now) of the user variables the cell reads before assigning them."""
    user = {k for k, v in list(_ns.items()) if _is_user_var(k, v)}
    if not user:
        return []
    stored = set()
    out = []
    seen = set()
    for stmt in tree.body:
        loads = []
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                loads.append(node)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                loads.append(node.target)  # x += 1 reads x
        loads.sort(key=lambda n: (n.lineno, n.col_offset))
        for node in loads:
            name = node.id
            if name in user and name not in stored and name not in seen:
                seen.add(name)
                out.append((name, _fingerprint(_ns[name])))
        stored |= _stores(stmt)
    return out


def _namespace():
    """(name, fingerprint) of every user variable, sorted by name."""
    return sorted(
        (k, _fingerprint(v)) for k, v in list(_ns.items()) if _is_user_var(k, v)
    )


def run_cell(code):
    """Run one cell in the model's namespace: (final_answer, error, restored_helpers, reads,
    namespace, edits); see CellDone in protocol.rs for the last three (edits as JSON)."""
    _state["cell"] += 1
    _state["final"] = None
    filename = f"<cell {_state['cell']}>"
    out = _io["out"]
    _io["in"] = io.StringIO()
    sys.stdout, sys.stderr, sys.stdin = out, _io["err"], _io["in"]
    error = None
    reads = []
    try:
        # Tracebacks (also of functions defined here and called later) show the cell's lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        try:
            reads = _reads(tree)
        except Exception:  # never let the bookkeeping fail a cell
            reads = []
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), _ns)
        if last is not None:
            value = eval(compile(last, filename, "eval"), _ns)
            if value is not None:
                out.write(repr(value) + "\n")
    except _FinalSignal:
        pass
    except BaseException as e:  # KeyboardInterrupt and SystemExit too: the worker survives
        error = _format_error(e)
        del e
    restored = _restore()
    try:
        namespace = _namespace()
    except Exception:
        namespace = []
    return _state["final"], error, restored, reads, namespace, json.dumps(_rlm_edits.take_new())


def get_var(name):
    """str() of a variable of the model's namespace, or None if there is none."""
    value = _ns.get(name.strip(), _MISSING)
    if value is _MISSING:
        return None
    try:
        return str(value)
    except BaseException as e:
        return f"<str() of {name} failed: {type(e).__name__}: {e}>"


_PRELUDE_FILE = run_cell.__code__.co_filename
