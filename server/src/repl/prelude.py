"""rlm-lsp REPL prelude: the helpers model code sees, and the cell runner.

Loaded once per worker (server/src/repl/worker.rs) as module `_rlm_prelude`. The Rust module
`_rlm` provides `Context` (the read-only workspace mapping), `CapturedOutput` (a cell's bounded
stdout/stderr), `subcall` (sub-model calls answered by the parent process), `Tools` (grep and
read over the mapped workspace; symbols and outline asked of the parent's index) and `Chunks`.
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
    )
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


def run_cell(code):
    """Run one cell in the model's namespace: (final_answer, error, restored_helpers)."""
    _state["cell"] += 1
    _state["final"] = None
    filename = f"<cell {_state['cell']}>"
    out = _io["out"]
    _io["in"] = io.StringIO()
    sys.stdout, sys.stderr, sys.stdin = out, _io["err"], _io["in"]
    error = None
    try:
        # Tracebacks (also of functions defined here and called later) show the cell's lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
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
    return _state["final"], error, _restore()


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
