"""rlm-lsp REPL prelude: the helpers model code sees, and the cell runner.

Loaded once per worker (server/src/repl/worker.rs) as module `_rlm_prelude`. The Rust module
`_rlm` provides `Context` (the read-only workspace mapping), `CapturedOutput` (a cell's bounded
stdout/stderr) and `subcall` (sub-model calls answered by the parent process).
Model code runs in the namespace of `__main__`.
"""

import ast
import builtins
import collections.abc
import faulthandler
import io
import linecache
import reprlib
import sys
import traceback
import types

import _rlm

collections.abc.Mapping.register(_rlm.Context)

_MAX_FRAMES = 8
_MAX_ERROR_CHARS = 8000
_MISSING = object()

_ns = sys.modules["__main__"].__dict__
_state = {"cell": 0, "final": None}
_io = {}
_HELPERS = {}


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


def FINAL(answer):
    """End the run with `answer` (converted with str) as the final answer. The cell stops here."""
    _state["final"] = str(answer)
    raise _FinalSignal()


def FINAL_VAR(name):
    """End the run with the value of the variable named `name` (a str, e.g. FINAL_VAR("answer"))
    as the final answer. The cell stops here."""
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
        if key.isidentifier():
            hint = f"assign it first ({key} = ...) or answer with FINAL(value)"
        else:
            # Probably the value itself was passed: FINAL_VAR(answer) instead of FINAL_VAR("answer").
            hint = "pass the variable's name in quotes, e.g. FINAL_VAR(\"answer\"), or use FINAL(answer)"
        raise NameError(f"FINAL_VAR({_short.repr(name)}): there is no variable named {_short.repr(key)}; {hint}")
    _state["final"] = str(value)
    raise _FinalSignal()


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


def setup(context, out, err):
    """Called once by the worker before any model code runs."""
    _io["out"], _io["err"] = out, err
    _HELPERS.update(
        context=context,
        llm_query=llm_query,
        llm_query_batched=llm_query_batched,
        FINAL=FINAL,
        FINAL_VAR=FINAL_VAR,
        SHOW_VARS=SHOW_VARS,
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
