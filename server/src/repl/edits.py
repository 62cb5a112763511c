"""rlm-lsp REPL edits: model code proposes changes to the workspace; nothing is ever written.

Loaded by the worker as module `_rlm_edits` before the prelude (server/src/repl/worker/). Each
helper checks what it can at once (the text is there, exactly once) and records an operation
against the workspace as `context` holds it; the parent collects them with each cell's result
(`CellDone.edits`) and checks the whole plan (no overlaps, writable roots, the edited files still
parse, and the user's check command when one is set) before anyone sees it.
"""

import re

_new = []  # operations recorded by the running cell, sent with its result
_all = []  # every operation so far, for proposed_edits()
_seen = set()  # keys of the operations in _all
_deps = {}  # context, files_matching, non_code, definitions: set by install()


def install(context, files_matching, non_code=None, definitions=None):
    _deps["context"] = context
    _deps["files_matching"] = files_matching
    _deps["non_code"] = non_code
    _deps["definitions"] = definitions


def take_new():
    """The operations recorded since the last call (one cell's), as dicts."""
    out = list(_new)
    _new.clear()
    return out


def _record(op):
    # The parent dedupes the plan; proposed_edits() lists an edit proposed twice (the engine's
    # first search and the model's copy of it) once.
    _new.append(op)
    if op["op"] == "clear":
        _seen.clear()
        _all.append(op)
        return
    key = tuple(sorted((k, str(v)) for k, v in op.items()))
    if key not in _seen:
        _seen.add(key)
        _all.append(op)


def _text(path, who):
    if not isinstance(path, str):
        raise TypeError(f"{who}: the path must be a str such as 'src/main.rs', not {type(path).__name__}")
    try:
        return _deps["context"][path]
    except KeyError:
        raise KeyError(
            f"{who}: {path!r} is not a file of the workspace (paths are as grep() shows them)"
        ) from None


def _byte(text, i):
    return len(text[:i].encode("utf-8"))


class EditSummary(dict):
    """Edits per file, shown as `3 edits in 2 files: a.rs (2), b.rs (1)`."""

    def __repr__(self):
        if not self:
            return "0 edits (nothing matched)"
        n = sum(self.values())
        files = ", ".join(f"{p} ({c})" for p, c in sorted(self.items()))
        return f"{n} edit{'s' if n != 1 else ''} in {len(self)} file{'s' if len(self) != 1 else ''}: {files}"


def edit_replace(path, old, new):
    """Propose replacing the exact text `old` in file `path` with `new`. `old` must occur exactly
    once (include a line more to make it unique). Nothing is written: the edit goes into the plan.
    Example: edit_replace("src/lib.rs", "fn parse(s: &str)", "fn parse(s: &str, strict: bool)")
    """
    text = _text(path, "edit_replace")
    if not isinstance(old, str) or not isinstance(new, str):
        raise TypeError("edit_replace(path, old, new) takes str old and new texts")
    if not old:
        raise ValueError("edit_replace: the old text is empty; to add text, replace a line with itself plus the new line")
    n = text.count(old)
    if n == 0:
        raise ValueError(f"edit_replace: {old[:80]!r} is not in {path}; copy it exactly from read()")
    if n > 1:
        raise ValueError(
            f"edit_replace: {old[:80]!r} occurs {n} times in {path}; include more of the "
            "surrounding lines to make it unique, or use edit_regex()"
        )
    i = text.find(old)
    _record({"op": "replace", "path": path, "start": _byte(text, i), "end": _byte(text, i + len(old)), "text": new})
    return EditSummary({path: 1})


def _paths(pattern, paths):
    """The files to look at: those with a line matching `pattern` (a fast scan), else all."""
    try:
        return [p for p, _ in _deps["files_matching"](pattern, paths)]
    except Exception:  # a pattern only Python's re understands: look at every file
        if paths is None:
            return list(_deps["context"])
        return [p for p in ([paths] if isinstance(paths, str) else paths) if p in _deps["context"]]


def edit_regex(pattern, replacement, paths=None):
    """Propose replacing every match of the regular expression `pattern` with `replacement`
    (Python re.sub syntax: \\1 for a group) in `paths` (a file, a directory, a glob or a list;
    default: every file). Returns the edits per file. Nothing is written.
    Example: edit_regex(r"\\bold_name\\b", "new_name", paths="src/")
    """
    if not isinstance(pattern, str) or not isinstance(replacement, str):
        raise TypeError("edit_regex(pattern, replacement, paths=None) takes str pattern and replacement")
    rx = re.compile(pattern, re.MULTILINE)
    done = EditSummary()
    for path in _paths(pattern, paths):
        text = _deps["context"][path]
        for m in rx.finditer(text):
            if m.end() == m.start():
                continue
            new = m.expand(replacement)
            if new == m.group(0):
                continue
            _record({"op": "replace", "path": path, "start": _byte(text, m.start()), "end": _byte(text, m.end()), "text": new})
            done[path] = done.get(path, 0) + 1
    return done


def _spans(path):
    """The comments and strings of `path` as byte ranges, or None (an unknown language)."""
    non_code = _deps.get("non_code")
    try:
        return non_code(path) if non_code else None
    except Exception:
        return None


def _inside(spans, offset):
    lo, hi = 0, len(spans)
    while lo < hi:
        mid = (lo + hi) // 2
        if spans[mid][1] <= offset:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(spans) and spans[lo][0] <= offset


def _callable_only(old):
    """Whether every definition of `old` the index has is a function or method (so a field or a
    key of the same name is another thing)."""
    definitions = _deps.get("definitions")
    try:
        kinds = {d.kind for d in definitions(old)} if definitions else set()
    except Exception:
        return False
    return bool(kinds) and kinds <= {"function", "method"}


# After a name: a field access or a field/key (`.name` not called, `name:` but not `name::`).
_FIELD_AFTER = re.compile(r"\s*:(?!:)")
_CALL_AFTER = re.compile(r"\s*(?:\(|::\s*<)")


def _in_code_span(text, i):
    """Whether position `i` of a comment is inside a `code span` (an odd number of backticks
    before it on its line)."""
    line_start = text.rfind("\n", 0, i) + 1
    return text.count("`", line_start, i) % 2 == 1


def rename_symbol(old, new, paths=None):
    """Propose renaming the identifier `old` to `new` wherever it occurs as a whole word in the
    code of `paths` (default: every file): the definition, uses and imports, and mentions in
    comments written as code (`old`, [`Type::old`]). Prose, strings, and files that are not
    source code (a LICENSE, a README) are left alone (edit_regex() changes those too). In Rust,
    when `old` is only a function or method, fields of the same name are left alone too
    (`x.old` not called, `old: value`). Returns the edits per file; check them with
    proposed_edits(). Nothing is written.
    Example: rename_symbol("parse_config", "load_config")
    """
    if not (isinstance(old, str) and old.isidentifier() and isinstance(new, str) and new.isidentifier()):
        raise ValueError(f"rename_symbol(old, new) takes two identifiers, not {old!r} and {new!r}")
    pattern = r"\b" + re.escape(old) + r"\b"
    rx = re.compile(pattern)
    callable_only = _callable_only(old)
    done = EditSummary()
    for path in _paths(pattern, paths):
        spans = _spans(path)
        if spans is None:
            continue  # not source code the lexer knows: prose, manifests, licenses
        text = _deps["context"][path]
        rust = path.endswith(".rs")
        for m in rx.finditer(text):
            start = _byte(text, m.start())
            if _inside(spans, start):
                # In a comment (or a string): only a mention written as code.
                if not _in_code_span(text, m.start()):
                    continue
            elif callable_only and rust:
                dot = text[max(0, m.start() - 40) : m.start()].rstrip().endswith(".")
                if (dot and not _CALL_AFTER.match(text, m.end())) or _FIELD_AFTER.match(text, m.end()):
                    continue
            _record({"op": "replace", "path": path, "start": start, "end": start + len(old.encode("utf-8")), "text": new})
            done[path] = done.get(path, 0) + 1
    return done


def create_file(path, text):
    """Propose a new file `path` (relative, under a writable root) holding `text`."""
    if not isinstance(path, str) or not isinstance(text, str):
        raise TypeError("create_file(path, text) takes a str path and a str text")
    if path in _deps["context"]:
        raise ValueError(f"create_file: {path} already exists; use edit_replace to change it")
    _record({"op": "create", "path": path, "text": text})
    return EditSummary({path: 1})


def rename_file(old, new):
    """Propose moving file `old` to `new` (text edits of the file use its old path)."""
    _text(old, "rename_file")
    if not isinstance(new, str) or new in _deps["context"]:
        raise ValueError(f"rename_file: {new!r} is taken or not a path")
    _record({"op": "rename", "from": old, "to": new})
    return EditSummary({old: 1})


class _Proposed(list):
    def __repr__(self):
        if not self:
            return "No edits proposed yet."
        rows = []
        for op in self:
            if op["op"] == "replace":
                text = _deps["context"][op["path"]]
                raw = text.encode("utf-8")
                before = raw[: op["start"]].decode("utf-8", "replace")
                line = before.count("\n") + 1
                old = raw[op["start"] : op["end"]].decode("utf-8", "replace")
                rows.append(f"{op['path']}:{line}: {old[:60]!r} -> {op['text'][:60]!r}")
            elif op["op"] == "create":
                rows.append(f"create {op['path']} ({len(op['text'])} characters)")
            elif op["op"] == "rename":
                rows.append(f"rename {op['from']} -> {op['to']}")
        shown = rows[:40]
        if len(rows) > 40:
            shown.append(f"... and {len(rows) - 40} more")
        return f"{len(rows)} proposed edits:\n" + "\n".join(shown)


def proposed_edits():
    """The edits proposed so far, one a line (`path:line: old -> new`)."""
    current = []
    for op in _all:
        if op["op"] == "clear":
            current.clear()
        else:
            current.append(op)
    return _Proposed(current)


def discard_edits():
    """Forget every edit proposed so far (to start the plan again)."""
    _record({"op": "clear"})
    return "All proposed edits were discarded."


HELPERS = {
    "edit_replace": edit_replace,
    "edit_regex": edit_regex,
    "rename_symbol": rename_symbol,
    "create_file": create_file,
    "rename_file": rename_file,
    "proposed_edits": proposed_edits,
    "discard_edits": discard_edits,
}
