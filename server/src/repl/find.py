"""rlm-lsp REPL: find_function(description), the code that does what words describe.

Loaded by the worker as module `_rlm_find` before the prelude (server/src/repl/worker/). When
a function's name and comments do not say what it does, words find nothing: candidates are
narrowed by structure instead (a signature the sub model guesses for the description, compared
with every function's; short functions first), joined with what a word search finds. The sub
model reads each candidate and says what it does, without seeing the description (a small model
shown it says yes to anything); the candidates are ranked by how many of the description's words
that and their code share, and the sub model checks the closest few: yes or no.
"""

import re

_deps = {}  # llm_query, llm_query_batched, search, symbols: set by install()

# Words of signatures that say nothing about what a function takes or returns.
_NOISE = frozenset(
    "fn def func function pub public private protected static async const mut let self this "
    "return returns where impl for in var val override virtual final inline extern unsafe "
    "crate super".split()
)


def install(llm_query, llm_query_batched, search, symbols, context=None):
    _deps.update(
        llm_query=llm_query,
        llm_query_batched=llm_query_batched,
        search=search,
        symbols=symbols,
        context=context,
    )


# A line of a doc comment, a comment or an attribute just above a definition.
_ABOVE = re.compile(r"\s*(?:///|//!|//|/\*|\*|#\[|#!\[|@\w|#(?!include|define|if|endif))")


def _with_doc(d, cap=1500):
    """The definition's text with the comments and attributes right above it (its doc comment,
    which the index keeps apart from the item), at most `cap` characters."""
    doc = _doc_of(d)
    return ((doc + "\n" if doc else "") + d.text)[:cap]


_DOCSTRING = re.compile(r"\A[^\n]*:\s*\n\s*(\"\"\"|\'\'\')(.*?)\1", re.S)


def _doc_of(d):
    """The comment and attribute lines right above a definition, or a Python docstring."""
    m = _DOCSTRING.match(d.text or "")
    if m:
        return m.group(2)
    context = _deps.get("context")
    try:
        lines = context[d.path].split("\n") if context is not None else []
    except Exception:
        lines = []
    above = []
    i = d.start_line - 2
    while i >= 0 and len(above) < 30 and lines[i].strip() and _ABOVE.match(lines[i]):
        above.append(lines[i])
        i -= 1
    return "\n".join(reversed(above))


# Families of types, so that a guessed `u32` meets a real `u64`: each type word also counts as
# its family.
_FAMILIES = (
    ("#int", re.compile(r"[ui](?:8|16|32|64|128|size)|int|uint|long|short|integer|number|bigint")),
    ("#float", re.compile(r"f32|f64|float|double|decimal")),
    ("#str", re.compile(r"str|string|char")),
    ("#bytes", re.compile(r"u8|bytes|bytearray|byte")),
)


def _tokens(signature):
    """The type and parameter words of a signature, lowercased, with their families: `fn f(a:
    &[u8]) -> u32` gives u8, #int, #bytes, u32 (and the names a, f)."""
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|\[\]|\*", signature)
    out = []
    for w in words:
        w = w.lower()
        if w in _NOISE:
            continue
        out.append(w)
        out += [family for family, rx in _FAMILIES if rx.fullmatch(w)]
    return out


# Rust's `pub(crate)`, `pub(super)`, `pub(in path)`: parentheses that are not the parameters.
_VISIBILITY = re.compile(r"\bpub\s*\([^)]*\)")


def _params(signature):
    """How many parameters a signature has (commas at the first parenthesis level)."""
    signature = _VISIBILITY.sub("pub", signature).replace("->", "  ")
    start = signature.find("(")
    if start < 0:
        return 0
    depth, count, seen = 0, 0, False
    for c in signature[start:]:
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
            if depth == 0:
                break
        elif c == "," and depth == 1:
            count += 1
        elif depth == 1 and not c.isspace():
            seen = True
    return count + 1 if seen else 0


def _signature_line(reply):
    """The signature in a sub model's reply: the first line that looks like one, past fences
    and prose (models answer "```rust\nfn gcd(a: u64, b: u64) -> u64\n```")."""
    lines = [l.strip().strip("`").strip() for l in (reply or "").splitlines()]
    lines = [l for l in lines if l and not re.fullmatch(r"[A-Za-z+#]*", l)]
    return next((l for l in lines if "(" in l), lines[0] if lines else "")


_COUNTS = {"no": 0, "zero": 0, "one": 1, "a single": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_SELF = re.compile(r"^\s*(?:&\s*(?:'\w+\s+)?(?:mut\s+)?)?(?:mut\s+)?(?:self|this|cls)\b")


def _has_receiver(signature):
    """Whether a signature's first parameter is the receiver (`self`, `&mut self`, `this`)."""
    signature = _VISIBILITY.sub("pub", signature)
    start = signature.find("(")
    return start >= 0 and bool(_SELF.match(signature[start + 1 :]))


def _own_params(signature):
    """The parameters of a signature after the receiver (`self`, `&mut self`, `this`, `cls`)."""
    signature = _VISIBILITY.sub("pub", signature)
    start = signature.find("(")
    if start < 0:
        return 0
    n = _params(signature)
    return n - 1 if n and _SELF.match(signature[start + 1 :]) else n


def _returns(signature):
    """Whether a signature returns a value: True or False, None when it does not say (an
    untyped Python, JavaScript or Go function)."""
    arrow = re.search(r"\)\s*(?:->|:)\s*([^{]+?)\s*(?:\bwhere\b|\{|$)", signature)
    if arrow:
        return arrow.group(1).strip().rstrip(":").strip() not in ("()", "None", "void", "Unit", "!")
    if re.search(r"\bfn\b", signature) or re.match(r"\s*(?:\w+\s+)*void\b", signature):
        return False
    return None


def _public(signature):
    """Whether a signature is public as its language says it: Rust's `pub` (not `pub(crate)`),
    no `private` or `protected` elsewhere, no leading `_` in Python."""
    if re.search(r"\bfn\b", signature):
        return bool(re.match(r"\s*pub\s+(?!\()", signature))
    if re.search(r"\b(?:private|protected)\b", signature):
        return False
    return not re.match(r"\s*(?:async\s+)?def\s+_", signature)


def _returns_bool(signature):
    """Whether a signature returns a boolean; None when it does not say its return type."""
    if re.search(r"(?:->|\)\s*:)\s*(?:bool|boolean|Boolean)\b|\b(?:bool|boolean)\s+\w+\s*\(", signature):
        return True
    return None if _returns(signature) is None else False


def _what_and_facts(description):
    """The behaviour a description gives, and checks of the facts about its form it states:
    "a free function" / "a method", "takes N (other) parameters", "returns nothing" / "returns
    a value", "public", "unsafe". Sentences of facts (and everything after "Facts about it:")
    leave the behaviour."""
    lower = description.lower()
    cut = re.split(r"\bfacts about it\s*:", description, flags=re.I)
    what = cut[0].strip().rstrip(".").strip() or description
    checks = []
    if re.search(r"\bfree function\b|\bnot a method\b", lower):
        checks.append(lambda d: d.kind == "function")
    elif re.search(r"\bis a method\b|\btakes self\b", lower):
        checks.append(lambda d: d.kind == "method")
    m = re.search(
        r"\btakes (no|zero|one|a single|two|three|four|five|\d+) (?:other )?(?:parameters?|arguments?)",
        lower,
    )
    if m:
        n = _COUNTS.get(m.group(1))
        n = int(m.group(1)) if n is None else n
        checks.append(lambda d, n=n: _own_params(d.signature) == n)
    if re.search(r"\breturns nothing\b|\breturns no value\b|\bdoes not return\b", lower):
        checks.append(lambda d: _returns(d.signature) is not True)
    elif re.search(r"\breturns (?:true or false|a bool(?:ean)?)\b", lower):
        checks.append(lambda d: _returns_bool(d.signature) is not False)
    elif re.search(r"\breturns (?:a|an|the|some) ", lower):
        checks.append(lambda d: _returns(d.signature) is not False)
    if re.search(r"\bit is public\b|\ba public\b", lower):
        checks.append(lambda d: _public(d.signature))
    if re.search(r"\bunsafe\b", lower):
        checks.append(lambda d: "unsafe" in d.signature)
    return what, checks


_PATHS = re.compile(
    r"[`'\"]?[\w./-]*\.(?:rs|py|pyi|js|jsx|ts|tsx|go|java|c|h|cc|cpp|hpp|rb|cs|php|sh)\b[`'\"]?"
)


class Candidate:
    """A function find_function() looked at: the definition, what the sub model said it does,
    how many of the description's words that (and its code) share, and, for the closest few,
    whether the sub model says it does what was described."""

    __slots__ = ("definition", "said", "match", "verdict", "says_yes")

    def __init__(self, definition, said, match):
        self.definition = definition
        self.said = " ".join((said or "").split())
        self.match = match
        self.verdict = ""
        self.says_yes = False

    def __getattr__(self, name):
        return getattr(self.definition, name)

    def __repr__(self):
        d = self.definition
        # The sub model saw one function, not the workspace: a path it names is invented, and
        # an answer copied from this line must not cite it.
        said = _PATHS.sub("(a file)", self.said)[:110]
        mark = " [yes]" if self.says_yes else (" [no]" if self.verdict else "")
        return f"{d.path}:{d.start_line}: {d.name}{mark}: {said}"


class Found(list):
    """find_function() results, best first: those the sub model said yes to, then the rest, each
    group in order of how well what it does matches the description's words."""

    description = ""

    @property
    def best(self):
        """The first candidate the sub model said yes to, else the closest match, or None."""
        return next((c for c in self if c.says_yes), self[0] if self else None)

    def __repr__(self):
        if not self:
            return f"[] (no function to look at for {self.description!r})"
        b = self.best
        yes = [c for c in self if c.says_yes]
        if yes:
            head = (
                f"best: {b.name} at {b.path}:{b.start_line} (the sub model says it does it; "
                f"{len(self)} candidates, ranked by how well what they do matches the description)"
            )
        else:
            head = (
                f"closest: {b.name} at {b.path}:{b.start_line} (the sub model said yes to none of "
                f"{len(self)} candidates; ranked by how well what they do matches the description)"
            )
        return "\n".join([head] + [repr(c) for c in self])


# Words that say nothing about what a function does.
_STOP = frozenset(
    "a an the of by and or it its for each to in on from with this that is are does do what which "
    "function method returns return given new one two into as at be if not no whether than then "
    "all any every other there their them they when where how".split()
)


def _stem(word):
    for suffix in ("ing", "ies", "es", "ed", "ly", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    return word[:5]


def _words(text):
    """The stems of the content words of a text, identifiers split (`is_ascii_digit`,
    `parseInt`)."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text or "")
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1}


def _match(wanted, *texts):
    """The share of `wanted` (stems) found in the texts."""
    if not wanted:
        return 0.0
    have = set().union(*(_words(t) for t in texts))
    return len(wanted & have) / len(wanted)


# How many of the closest candidates the sub model is asked about, yes or no.
_CHECKED = 3


def find_function(description, k=6):
    """The functions that do what `description` says, when their names and comments may not
    say it. Candidates: functions whose signature is closest to one the sub model guesses for
    the description (short ones first), and the best word matches (search), narrowed by the
    facts the description states about their form (a method, N parameters, returns nothing,
    public, unsafe). The sub model says in one sentence what each does (one batch of sub-calls);
    they are ranked by how many of the description's words that sentence, the doc comment and
    the name hold (and, a quarter as much, the body), and the closest three are checked: does it
    do what was described, yes or no (one more batch). Returns them best first, each with .said, .match, .verdict, .says_yes and the
    definition's .name .path .start_line .text; .best is the first yes, else the closest.
    Example:
        found = find_function("computes a checksum of a byte slice")
        print(found)
    """
    description = " ".join(str(description).split())
    symbols, search = _deps["symbols"], _deps["search"]
    # Facts about its form ("a free function", "takes 2 parameters", "returns nothing") are
    # checked on signatures; what it does is left for words and the sub model.
    what, facts = _what_and_facts(description)
    every = [
        d
        for kind in ("function", "method")
        for d in symbols(kind=kind, max_results=None)
    ]
    defs = [d for d in every if all(f(d) for f in facts)] or every
    languages = {}
    for d in defs:
        languages[d.language] = languages.get(d.language, 0) + 1
    language = max(languages, key=languages.get) if languages else "the codebase's language"
    guess = _deps["llm_query"](
        f"A {language} function does this: {what}\n"
        "Reply with only the one line of its most likely signature (parameter and return types), "
        "for example `fn f(data: &[u8]) -> u32`. No explanation."
    )
    line = _signature_line(guess)
    guessed = set(_tokens(line))
    guessed_params = _own_params(line)
    guessed_self = _has_receiver(line)

    def score(d):
        sig = _tokens(d.signature)
        overlap = len(guessed & set(sig)) / (len(guessed) or 1)
        # The same number of parameters besides the receiver, and a receiver on both or neither.
        params = 1.0 if line and _own_params(d.signature) == guessed_params else 0.0
        receiver = 1.0 if line and _has_receiver(d.signature) == guessed_self else 0.0
        lines = d.end_line - d.start_line + 1
        return overlap + 0.3 * params + 0.2 * receiver - min(lines, 200) / 1000.0

    by_shape = sorted(defs, key=score, reverse=True)[:k]
    wanted = _words(what)
    by_path = {}
    for d in every:
        by_path.setdefault(d.path, []).append(d)
    # Search results are chunks: a function's chunk stands for its definition; an impl's or a
    # class's for its methods that share the most words with the description.
    worded = []
    for r in search(what, k=4 * k):
        inside = [d for d in by_path.get(r.path, []) if r.start_line <= d.start_line <= r.end_line]
        if r.kind in ("function", "method"):
            group = [d for d in inside if d.name == r.name][:1]
        else:
            fits = [d for d in inside if all(f(d) for f in facts)] or inside
            group = sorted(fits, key=lambda d: -_match(wanted, d.name, _with_doc(d)))[:2]
        worded += [d for d in group if d not in worded]
    by_words = ([d for d in worded if all(f(d) for f in facts)] or worded)[: max(2, k // 2)]
    # Interleaved, so the best of each kind are read: a function whose code holds the
    # description's words, and one whose signature fits it.
    order = []
    for i in range(max(len(by_shape), len(by_words))):
        order += list(by_words[i : i + 1]) + list(by_shape[i : i + 1])
    seen, cands = set(), []
    for d in order:
        key = (d.path, d.start_line)
        if key not in seen:
            seen.add(key)
            cands.append(d)
    # What each does, in the sub model's words, asked without the description (a small model
    # shown it repeats it back as a yes).
    texts = [_with_doc(d) for d in cands]
    said = _deps["llm_query_batched"](
        ["In one sentence, what does this function do?\n```\n" + t + "\n```" for t in texts]
    ) if cands else []
    # Matched on prose (the sentence, the doc comment) and the name, and a quarter on the body:
    # a long function's code holds many of any description's words.
    found = Found(
        Candidate(d, a, _match(wanted, a, d.name, _doc_of(d)) + 0.25 * _match(wanted, t))
        for d, a, t in zip(cands, said, texts)
    )
    found.description = description
    found.sort(key=lambda c: -c.match)
    checked = found[:_CHECKED]
    verdicts = _deps["llm_query_batched"](
        [
            f"Does this function {what}?\nAnswer yes or no first, then one short reason.\n```\n"
            f"{_with_doc(c.definition)}\n```"
            for c in checked
        ]
    ) if checked else []
    for c, v in zip(checked, verdicts):
        c.verdict = " ".join((v or "").split())
        c.says_yes = c.verdict.lower().lstrip("*`'\" ").startswith("yes")
    found.sort(key=lambda c: (not c.says_yes, -c.match))
    return found


HELPERS = {"find_function": find_function}
