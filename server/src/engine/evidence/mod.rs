//! Evidence first: before the model's first turn the engine runs a cheap search for the
//! question's names and words in the REPL, and the model starts from its output instead of from
//! nothing. The cell is plain Python over the REPL's helpers, shown to the model with its output,
//! so its variables (`defs`, `calls`, `impls`, `found`, ...) can be reused.
//!
//! What is searched depends on the recipe chosen for the question (`recipes.rs`): a "who calls"
//! question gets `callers(name)`, a "which types implement" question `implementations(name)`,
//! and every question the best-matching pieces of code (`search`).

mod ranking;

pub use ranking::{Ranking, ranking};

use super::{EngineError, Run, recipes, subcalls::SubCaller};
use crate::repl::Repl;

impl Run<'_> {
    /// Runs the engine's first search in the REPL (recorded as turn 0); what the first message
    /// shows, or `None` when it could not run (no index, a failure): the run then starts
    /// without it.
    pub(super) async fn evidence(
        &mut self,
        repl: &mut Repl,
        sub: &SubCaller<'_>,
    ) -> Result<Option<String>, EngineError> {
        // The helpers it calls need the code index, whole: a search of half of it misleads.
        let Some(index) = &self.index else {
            return Ok(None);
        };
        let waited = std::time::Instant::now();
        while !index.wait_complete(std::time::Duration::ZERO) {
            if waited.elapsed() > INDEX_WAIT {
                tracing::info!(
                    "the index is still being built; the first search covers part of it"
                );
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let recipe = recipes::select(&self.question, 1).first().map(|r| r.name);
        let code = cell(&self.question, recipe);
        sub.set_iteration(0);
        let out = repl.exec(&code, sub, self.index.as_deref()).await?;
        self.record_cell(0, 0, &code, &out);
        if out.error.is_some() || out.timed_out || out.worker_died.is_some() {
            tracing::debug!("the first search failed: {:?}", out.error);
            return Ok(None);
        }
        // A rename's edits, computed here: the plan's if the model proposes none of its own.
        self.provisional = out
            .edits
            .iter()
            .filter(|op| !matches!(op, crate::repl::EditOp::Clear))
            .cloned()
            .collect();
        if recipe == Some("most_by_dir") {
            self.ranking = ranking(&out.stdout);
        }
        let view = self.describe_cell(&out, false, 0);
        // A model that copies this cell is told it already ran, with its output.
        self.seen.record(&code, 0, view.clone(), &out);
        self.last_view = view.clone();
        Ok(Some(shown(&code, &view, self.answer_holds())))
    }
}

/// How long the first search waits for the index to cover every file.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// At most this many names from the question are looked up.
const MAX_NAMES: usize = 2;

/// Words that start a sentence or are common in questions, never taken for code names when
/// merely capitalized.
const PLAIN: &[&str] = &[
    "answer",
    "consider",
    "return",
    "returns",
    "count",
    "use",
    "names",
    "what",
    "which",
    "where",
    "who",
    "whom",
    "how",
    "why",
    "when",
    "is",
    "are",
    "does",
    "do",
    "find",
    "list",
    "show",
    "name",
    "explain",
    "describe",
    "count",
    "give",
    "tell",
    "in",
    "the",
    "a",
    "an",
    "if",
    "and",
    "or",
    "of",
    "for",
    "to",
    "i",
    "it",
    "its",
    "this",
    "that",
    "there",
    "rust",
    "python",
    "java",
    "go",
    "typescript",
    "javascript",
    "ruby",
    "php",
    "c",
    "cpp",
];

/// Names in `question` that look like code: backticked spans first, then identifiers written
/// as code (`snake_case`, `CamelCase`, `UPPER_CASE`, `a::b`, `a.b`), then capitalized words
/// that are not ordinary sentence words. For `a::b` and `a.b` the last part is kept.
pub fn names_in(question: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        let name = name
            .rsplit("::")
            .next()
            .unwrap_or(name)
            .rsplit('.')
            .next()
            .unwrap_or(name)
            .trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
        let ident = !name.is_empty()
            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if ident && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    };
    let mut rest = question;
    let mut spans = Vec::new();
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        spans.push(after[..close].trim().trim_end_matches("()").to_string());
        rest = &after[close + 1..];
    }
    for s in &spans {
        push(s);
    }
    let words: Vec<&str> = question
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | ':' | '.')))
        .map(|w| w.trim_matches(|c: char| c == '.' || c == ':'))
        .filter(|w| !w.is_empty())
        .collect();
    for w in &words {
        let inner_upper =
            w.chars().skip(1).any(|c| c.is_uppercase()) && w.chars().any(|c| c.is_lowercase());
        let code_like = w.contains('_') || w.contains("::") || inner_upper;
        if code_like {
            push(w);
        }
    }
    for (i, w) in words.iter().enumerate() {
        let capitalized = w.starts_with(|c: char| c.is_uppercase());
        if capitalized && i > 0 && !PLAIN.contains(&w.to_lowercase().as_str()) && w.len() > 2 {
            push(w);
        }
    }
    out.truncate(MAX_NAMES);
    out
}

/// A Python string literal for `s` (JSON's escapes are Python's).
fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A Python literal of the regex matching `name` as a whole word.
fn py_word(name: &str) -> String {
    py_str(&format!(r"\b{}\b", regex_syntax::escape(name)))
}

/// The cell the engine runs before the first turn, for a question whose closest recipe is
/// `recipe` (a name from `recipes.rs`).
pub fn cell(question: &str, recipe: Option<&str>) -> String {
    // The first paragraph is the question; what follows is format (a refactor's edit rules).
    let question = question.split("\n\n").next().unwrap_or(question);
    let names = names_in(question);
    let mut code =
        String::from("# The engine's first search for the names and words of the question.\n");
    let first = names.first().map(|n| py_str(n));
    // Whether the structural helpers answered its shape; else a word search follows.
    let mut structural = true;
    match (recipe, &first) {
        (Some("callers" | "impact"), Some(n)) => {
            code.push_str(&format!(
                "calls = callers({n})\nprint(\"files:\", calls.files)\nprint(calls)\n"
            ));
        }
        (Some("rename"), Some(_)) if rename_pair(question).is_some() => {
            // "Rename X to Y": the edits computed in code, for the model to check or discard
            // (nothing is written; the plan is checked like any other).
            let (old, new) = rename_pair(question).unwrap_or_default();
            let (old, new) = (py_str(&old), py_str(&new));
            code.push_str(&format!(
                "print(definitions({old}))\nedits = rename_symbol({old}, {new})\nprint(edits)\nprint(proposed_edits())\n"
            ));
        }
        (Some("implementations"), Some(n)) => {
            // "Which types implement both A and B?": the answer line, then the impls of those
            // types only (each list whole is a longer answer to copy by mistake; both stay in
            // `impls` and `impls2`).
            let both = question.to_lowercase().contains("both");
            match names.get(1).filter(|_| both).map(|n| py_str(n)) {
                Some(other) => code.push_str(&format!(
                    "impls = implementations({n})\nimpls2 = implementations({other})\n\
                     both = sorted(set(impls.types) & set(impls2.types))\n\
                     print(len(both), \"types implement both\", {n}, \"and\", {other} + \":\", \", \".join(both) or \"none\")\n\
                     for i in list(impls) + list(impls2):\n    \
                     if i.type_name in both:\n        \
                     print(f\"{{i.path}}:{{i.start_line}}: {{i.signature}}\")\n"
                )),
                None => code.push_str(&format!("impls = implementations({n})\nprint(impls)\n")),
            }
        }
        (Some("count"), Some(n)) if asks_about_calls(question) => {
            // "How many files call X": call sites, not every mention (the definition's file
            // would be counted too).
            code.push_str(&format!(
                "calls = callers({n})\nprint(len(calls.files), \"files call\", {n}, \"(its definition apart)\")\nprint(calls)\n"
            ));
        }
        (Some("count"), Some(_)) => {
            let w = py_word(&names[0]);
            code.push_str(&format!(
                "files = files_matching({w})\nprint(len(files), \"files\")\nprint(files)\n"
            ));
        }
        (Some("most_by_dir"), _) if asks_for_a_file(question) => match counted(question, &names) {
            Some(items) => code.push_str(&format!(
                "per_file = count_by_file({items})\nprint(per_file)\n"
            )),
            None => structural = false,
        },
        (Some("most_by_dir"), _) => match counted(question, &names) {
            Some(items) => code.push_str(&format!(
                "per_dir = count_by_dir({items}, depth={})\nprint(per_dir)\n",
                depth(question)
            )),
            None => structural = false,
        },
        (Some("count_definitions"), _) => match definitions_counted(question) {
            Some(filter) => code.push_str(&filter),
            None => structural = false,
        },
        // "Which function contains the note that ...": text inside a function, found by words;
        // the word search prints each line with the function it is in.
        (Some("behaviour"), _) if asks_what_holds_text(question) => {
            word_search(&mut code, question, true);
        }
        (Some("behaviour"), _) => {
            // Candidates by structure and words, each read by the sub model, which is asked
            // about the behaviour alone ("computes X"), not the whole question.
            let said = py_str(&behaviour_of(question));
            code.push_str(&format!(
                "found = find_function({said}, k=6)\nprint(found)\n"
            ));
        }
        _ => {
            structural = false;
            for n in &names {
                let n = py_str(n);
                code.push_str(&format!(
                    "print(definitions({n}))\nrefs = references({n})\nprint(refs.total, \"references in\", refs.files, \"files\")\n"
                ));
            }
        }
    }
    if !structural {
        word_search(&mut code, question, false);
    }
    code
}

/// The behaviour a "which function does X?" question describes: "does X", without the words
/// that ask for a function or say where, and without the sentences after the question (what
/// form the answer takes). The question itself when little is left.
pub fn behaviour_of(question: &str) -> String {
    const LEADING: &[&str] = &[
        "which",
        "what",
        "where is",
        "where's",
        "find",
        "show me",
        "locate",
        "is there",
        "the",
        "a",
        "an",
        "function",
        "functions",
        "method",
        "methods",
        "code",
        "routine",
        "helper",
        "procedure",
        "in this codebase",
        "in the codebase",
        "in this workspace",
        "in the workspace",
        "in this project",
        "in the project",
        "in this repository",
        "that",
        "which",
    ];
    // "Which function does this describe? \"<a doc comment>\" Facts about it: ...": the quoted
    // passage and what follows it (but not the answer's format) is the description.
    if let Some(quoted) = quoted_passage(question) {
        let after = question
            .split_once(quoted)
            .map(|(_, rest)| rest.trim_start_matches(['"', '\u{201d}', ' ']))
            .unwrap_or("");
        let facts: Vec<&str> = after
            .split(". ")
            .filter(|s| !s.trim_start().starts_with("Answer") && !s.trim().is_empty())
            .collect();
        let mut out = quoted.trim().trim_end_matches('.').to_string();
        if !facts.is_empty() {
            out.push_str(". ");
            out.push_str(facts.join(". ").trim_end_matches('.'));
        }
        return out;
    }
    let asked = match question.find('?') {
        Some(end) => &question[..end],
        None => question.split(". ").next().unwrap_or(question),
    };
    let mut rest = asked.trim();
    'strip: loop {
        let lower = rest.to_lowercase();
        for lead in LEADING {
            let boundary = lower
                .get(lead.len()..)
                .is_some_and(|after| after.is_empty() || after.starts_with([' ', ',']));
            if lower.starts_with(lead) && boundary && rest.is_char_boundary(lead.len()) {
                rest = rest[lead.len()..].trim_start_matches([' ', ',']);
                continue 'strip;
            }
        }
        break;
    }
    let rest = rest.trim_end_matches(['.', ' ']);
    if rest.split_whitespace().count() >= 3 {
        rest.to_string()
    } else {
        asked.trim().to_string()
    }
}

/// The first passage of at least four words between double quotes (straight or curly).
fn quoted_passage(question: &str) -> Option<&str> {
    let start = question.find(['"', '\u{201c}'])?;
    let open_len = question[start..].chars().next()?.len_utf8();
    let body = &question[start + open_len..];
    let end = body.find(['"', '\u{201d}'])?;
    let passage = &body[..end];
    (passage.split_whitespace().count() >= 4).then_some(passage)
}

/// The old and new names of "rename [the method] X [of T] to Y": the first name before the
/// " to " that follows "rename", and the first after it.
fn rename_pair(question: &str) -> Option<(String, String)> {
    let lower = question.to_lowercase();
    let from = lower.find("rename")?;
    let to = from + lower[from..].find(" to ")?;
    let old = names_in(&question[from + 6..to]).into_iter().next()?;
    let new = names_in(&question[to + 4..]).into_iter().next()?;
    (old != new).then_some((old, new))
}

/// Whether a "which has the most" question asks for a file rather than a directory.
fn asks_for_a_file(question: &str) -> bool {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    words.contains(&"file")
        && !words.iter().any(|w| {
            matches!(
                *w,
                "directory"
                    | "directories"
                    | "folder"
                    | "folders"
                    | "module"
                    | "modules"
                    | "package"
            )
        })
}

/// Whether a "which function" question asks where some text is (a note, a comment, a message)
/// rather than what the function does.
fn asks_what_holds_text(question: &str) -> bool {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    let holds = words.iter().any(|w| {
        matches!(
            *w,
            "contains" | "contain" | "containing" | "holds" | "mentions" | "mentioning"
        )
    });
    let text = words.iter().any(|w| {
        matches!(
            *w,
            "note"
                | "comment"
                | "comments"
                | "string"
                | "message"
                | "text"
                | "todo"
                | "fixme"
                | "literal"
                | "log"
                | "line"
        )
    });
    holds && text
}

/// Whether a question is about calls ("how many files call X", "... invoke X").
fn asks_about_calls(question: &str) -> bool {
    question
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| {
            matches!(
                w,
                "call" | "calls" | "called" | "calling" | "invoke" | "invokes"
            )
        })
}

/// A word search for the question: the lines of the best pieces that hold most of its words
/// (often the answer itself), each with the definition it is in, then the pieces. With
/// `holder_first` each line starts with that definition (the answer to "which function
/// contains ...").
fn word_search(code: &mut String, question: &str, holder_first: bool) {
    code.push_str(&format!("found = search({}, k=5)\n", py_str(question)));
    let words = key_words(question);
    if !words.is_empty() {
        let list = words
            .iter()
            .map(|w| py_str(w))
            .collect::<Vec<_>>()
            .join(", ");
        code.push_str(&format!("words = [{list}]\n"));
        code.push_str("lines = []\n");
        code.push_str("for c in found[:5]:\n");
        code.push_str("    for n, l in enumerate(c.text.splitlines(), c.start_line):\n");
        code.push_str("        hits = sum(w in l.lower() for w in words)\n");
        code.push_str("        if hits:\n");
        code.push_str("            where = f\" (in {c.kind} {c.name})\" if c.name else \"\"\n");
        code.push_str("            lines.append((-hits, c.path, n, where, l.strip()[:160]))\n");
        // Only the lines with (nearly) the most of the words: one clear hit, not a list of noise.
        code.push_str("best = -min(lines)[0] if lines else 0\n");
        code.push_str("for h, path, n, where, l in sorted(lines)[:6]:\n");
        code.push_str("    if -h >= max(1, best - 1):\n");
        if holder_first {
            // `where` is " (in KIND NAME)".
            code.push_str(
                "        print(f\"{where[5:-1] if where else 'top level'} at {path}:{n}: {l}\")\n",
            );
        } else {
            code.push_str("        print(f\"{path}:{n}{where}: {l}\")\n");
        }
    }
    code.push_str("print(found)\n");
}

/// Kinds of definition as questions name them, and the index's kinds.
const KINDS: &[(&[&str], &[&str])] = &[
    (&["struct", "structs"], &["struct"]),
    (
        &["function", "functions", "fn", "fns"],
        &["function", "method"],
    ),
    (&["method", "methods"], &["method"]),
    (&["class", "classes"], &["class"]),
    (
        &["trait", "traits", "interface", "interfaces"],
        &["interface"],
    ),
    (&["enum", "enums"], &["enum"]),
    (&["constant", "constants", "const"], &["constant"]),
];

/// The index's kinds a question counts ("how many public functions", "the most structs").
fn kinds_in(question: &str) -> Option<&'static [&'static str]> {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .collect();
    KINDS
        .iter()
        .find(|(said, _)| words.iter().any(|w| said.contains(&w.as_str())))
        .map(|(_, kinds)| *kinds)
}

/// A Python expression of what a "which directory has the most X" question counts: a code span
/// (`unsafe { ... }` as a regex), test functions, definitions of a kind, or the question's name.
fn counted(question: &str, names: &[String]) -> Option<String> {
    let lower = question.to_lowercase();
    // A code span after "most" says what is counted (one before it is more often a form, as
    // in "directories of the form `a/b`").
    let after_most = lower.find("most").map_or(question, |at| &question[at..]);
    if let Some(span) = code_spans(after_most)
        .into_iter()
        .find(|s| !is_identifier(s))
    {
        return Some(py_str(&literal_regex(&span)));
    }
    if lower.contains("unsafe") {
        return Some(py_str(r"\bunsafe\s*\{"));
    }
    if lower.contains("test") {
        return Some(py_str(
            r"#\[test\]|\bdef test_|\bfunc Test|@Test\b|\bit\(|\btest\(",
        ));
    }
    if let Some(kinds) = kinds_in(question) {
        return Some(
            kinds
                .iter()
                .map(|k| format!("symbols(kind=\"{k}\", max_results=None)"))
                .collect::<Vec<_>>()
                .join(" + "),
        );
    }
    names.first().map(|n| py_word(n))
}

/// The directory depth a question asks for: "top-level" is 1, "N levels below" is N.
fn depth(question: &str) -> usize {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if words.get(i + 1).is_some_and(|n| n.starts_with("level")) {
            let n = match *w {
                "one" => Some(1),
                "two" => Some(2),
                "three" => Some(3),
                "four" => Some(4),
                w => w.parse().ok(),
            };
            if let Some(n) = n {
                return n;
            }
        }
    }
    1
}

/// Counting code for "how many public functions return a `Result`": definitions of the kind,
/// `pub` ones when asked, whose return type has the named outer type.
fn definitions_counted(question: &str) -> Option<String> {
    let kinds = kinds_in(question)?;
    let lower = question.to_lowercase();
    let mut code = format!(
        "defs = {}\n",
        kinds
            .iter()
            .map(|k| format!("symbols(kind=\"{k}\", max_results=None)"))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let mut conditions: Vec<String> = Vec::new();
    if lower.contains("public") || lower.contains("`pub") {
        conditions.push("d.signature.lstrip().startswith(\"pub \")".into());
    }
    let returned = lower.find("return").and_then(|at| {
        code_spans(&question[at..])
            .into_iter()
            .find(|s| is_identifier(s))
    });
    if let Some(t) = returned {
        code.push_str("import re\n");
        conditions.push(format!(
            "re.search({}, d.signature)",
            py_str(&format!(
                r"->\s*(?:[\w:]+::)?{}\b",
                regex_syntax::escape(&t)
            ))
        ));
    }
    let filter = if conditions.is_empty() {
        "True".to_string()
    } else {
        conditions.join(" and ")
    };
    code.push_str(&format!(
        "counted = [d for d in defs if {filter}]\nprint(len(counted), \"of\", len(defs), \"definitions match\")\nfor d in counted[:5]:\n    print(f\"{{d.path}}:{{d.start_line}}: {{d.signature}}\")\n"
    ));
    Some(code)
}

/// The backticked spans of a text.
fn code_spans(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        out.push(after[..close].trim().to_string());
        rest = &after[close + 1..];
    }
    out
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A regex for a code span as a question writes it: `...` stands for anything, spaces for
/// any spacing (`unsafe { ... }` matches `unsafe {` and `unsafe{ x }`).
fn literal_regex(span: &str) -> String {
    let parts: Vec<String> = span
        .split("...")
        .map(|p| {
            p.split_whitespace()
                .map(regex_syntax::escape)
                .collect::<Vec<_>>()
                .join(r"\s*")
        })
        .collect();
    let body = parts.join(".*?");
    let body = body.trim_end_matches(".*?").to_string();
    // Up to the first closing part: `unsafe { ... }` spans lines, so match its opening.
    match body.split_once(".*?") {
        Some((head, _)) if !head.is_empty() => head.to_string(),
        _ => body,
    }
}

/// Words of a question that say what it is about (lowercase, not question words), for picking
/// lines out of the best-matching code.
fn key_words(question: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "what",
        "which",
        "where",
        "who",
        "how",
        "why",
        "when",
        "the",
        "and",
        "for",
        "are",
        "does",
        "this",
        "that",
        "with",
        "from",
        "into",
        "its",
        "there",
        "name",
        "file",
        "files",
        "function",
        "functions",
        "code",
        "find",
        "many",
        "most",
        "has",
        "have",
        "use",
        "uses",
        "used",
        "value",
        "defined",
        "define",
        "type",
        "types",
        "all",
        "every",
        "each",
        "any",
        "list",
        "show",
        "give",
        "their",
        "them",
        "than",
        "then",
        "does",
        "did",
        "will",
        "would",
        "should",
        "can",
        "could",
        "about",
        "workspace",
        "project",
        "crate",
        "repository",
        "implement",
        "implements",
        "calls",
        "call",
        "called",
    ];
    let mut out: Vec<String> = Vec::new();
    for w in question.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let w = w.to_lowercase();
        if w.len() >= 3 && !STOP.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
    }
    out.truncate(6);
    out
}

/// The evidence as the first message shows it.
pub fn shown(code: &str, output: &str, holds: &str) -> String {
    format!(
        "The engine already ran this first search in the REPL (its variables are there):\n\
         ```repl\n{code}```\nOutput:\n{output}\n\
         If this output answers the question, reply now with FINAL(...) holding {holds}. \
         Otherwise write the next ```repl block."
    )
}

#[cfg(test)]
mod tests;
