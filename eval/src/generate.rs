//! Task generators with ground truth computed from tree-sitter facts (`facts.rs`), over any set
//! of Rust files. Each generator is deterministic: candidates are ordered by preference, then by
//! a stable hash of their key, and the first `n` are taken.

use crate::facts::{self, FileFacts, FnFact};
use crate::plant;
use crate::task::{Overlay, Scorer, Task, Truth, WorkspaceSpec, stable_hash};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

pub const KINDS: [&str; 8] = [
    "needle_function",
    "call_sites",
    "implementors",
    "aggregate",
    "pairs",
    "count_files",
    "top_dir",
    "planted_behaviour",
];

/// Facts of every Rust file of a workspace, and the text of every file.
#[derive(Clone)]
pub struct Corpus {
    pub files: Vec<FileFacts>,
    /// Every path in the workspace (Rust or not), in path order, for answer parsing.
    pub paths: Vec<String>,
    /// Every file's text (Rust or not).
    texts: BTreeMap<String, String>,
    /// Characters (bytes) of every file.
    chars: u64,
    pub size_tokens: u64,
}

impl Corpus {
    /// `files` are `(path, text)` pairs, as a snapshot holds them.
    pub fn new<P: AsRef<str>, T: AsRef<str>>(files: &[(P, T)]) -> Corpus {
        let mut out = Vec::new();
        let mut texts = BTreeMap::new();
        let mut chars = 0u64;
        for (p, t) in files {
            let (p, t) = (p.as_ref(), t.as_ref());
            chars += t.len() as u64;
            if p.ends_with(".rs") {
                out.push(facts::analyze(p, t));
            }
            texts.insert(p.to_string(), t.to_string());
        }
        Corpus {
            files: out,
            paths: files.iter().map(|(p, _)| p.as_ref().to_string()).collect(),
            texts,
            chars,
            size_tokens: chars / 4,
        }
    }

    /// The corpus with `overlays` applied (as `harness::walk` applies them to a snapshot).
    pub fn with_overlays(&self, overlays: &[Overlay]) -> Result<Corpus, String> {
        let mut next = self.clone();
        for o in overlays {
            let text = next
                .texts
                .get(&o.path)
                .ok_or_else(|| format!("overlay on {}: no such file", o.path))?;
            let text = o.apply(text)?;
            next.chars = next.chars - next.texts[&o.path].len() as u64 + text.len() as u64;
            next.size_tokens = next.chars / 4;
            if let Some(f) = next.files.iter_mut().find(|f| f.path == o.path) {
                *f = facts::analyze(&o.path, &text);
            }
            next.texts.insert(o.path.clone(), text);
        }
        Ok(next)
    }

    /// `(path, text)` of every file, in path order.
    pub fn texts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.texts.iter().map(|(p, t)| (p.as_str(), t.as_str()))
    }

    fn fns(&self) -> impl Iterator<Item = &FnFact> {
        self.files.iter().flat_map(|f| f.fns.iter())
    }

    /// Names an answer may list: types and traits defined here, and every implementing type.
    pub fn known_names(&self) -> BTreeSet<String> {
        let mut n = BTreeSet::new();
        for f in &self.files {
            n.extend(f.types.iter().cloned());
            n.extend(f.traits.iter().cloned());
            for i in &f.impls {
                n.insert(i.type_name.clone());
                n.insert(i.trait_name.clone());
            }
        }
        n
    }

    /// Trait name -> implementing type names.
    fn implementors(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &self.files {
            for i in &f.impls {
                m.entry(i.trait_name.clone())
                    .or_default()
                    .insert(i.type_name.clone());
            }
        }
        m
    }

    /// Traits whose name is defined at most once here (a name defined twice is ambiguous).
    fn unambiguous_trait(&self, name: &str) -> bool {
        self.files
            .iter()
            .flat_map(|f| f.traits.iter())
            .filter(|t| *t == name)
            .count()
            <= 1
    }
}

fn slug(spec: &WorkspaceSpec) -> String {
    spec.roots
        .iter()
        .map(|r| {
            r.label()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// Up to `per_kind` tasks of each kind in `kinds` (see [`generate_sized`]).
pub fn generate(
    spec: &WorkspaceSpec,
    corpus: &Corpus,
    kinds: &[&str],
    per_kind: usize,
) -> Vec<Task> {
    generate_sized(spec, corpus, kinds, per_kind, "")
}

/// Up to `per_kind` tasks of each kind in `kinds`, over a workspace of size class `size` (part of
/// the task ids when not empty). With `planted_behaviour` among the kinds, functions are planted
/// first and every task of the workspace (every kind) is asked, and its truth computed, on the
/// planted workspace: one overlaid workspace per size, so a run prepares it once.
pub fn generate_sized(
    spec: &WorkspaceSpec,
    corpus: &Corpus,
    kinds: &[&str],
    per_kind: usize,
    size: &str,
) -> Vec<Task> {
    let mut spec = spec.clone();
    let mut plants = Vec::new();
    let planted;
    let mut corpus = corpus;
    if kinds.contains(&"planted_behaviour") && per_kind > 0 {
        let texts: Vec<(&str, &str)> = corpus.texts().collect();
        plants = plant::choose(&texts, &slug(&spec), per_kind);
        let overlays: Vec<Overlay> = plants.iter().map(|p| p.overlay.clone()).collect();
        match corpus.with_overlays(&overlays) {
            Ok(c) => {
                planted = c;
                corpus = &planted;
                spec.overlays.extend(overlays);
            }
            Err(_) => plants.clear(),
        }
    }
    let corpus = corpus;
    let id_part = if size.is_empty() {
        slug(&spec)
    } else {
        size.to_string()
    };
    let mut tasks = Vec::new();
    for kind in kinds {
        let made = match *kind {
            "needle_function" => needle(corpus, per_kind),
            "call_sites" => call_sites(corpus, per_kind),
            "implementors" => implementors(corpus, per_kind),
            "aggregate" => aggregate(corpus, per_kind),
            "pairs" => pairs(corpus, per_kind),
            "count_files" => count_files(corpus, per_kind),
            "top_dir" => top_dir(corpus, per_kind),
            "planted_behaviour" => planted_tasks(&plants),
            _ => Vec::new(),
        };
        for (i, (question, truth, scorer, names)) in made.into_iter().enumerate() {
            tasks.push(Task {
                id: format!("{kind}-{id_part}-{i}"),
                kind: kind.to_string(),
                size: size.to_string(),
                workspace: spec.clone(),
                size_tokens: corpus.size_tokens,
                question,
                truth,
                scorer,
                question_names: names,
            });
        }
    }
    tasks
}

type Made = (String, Truth, Scorer, Vec<String>);

static BACKTICKS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"`[^`]*`|\[[^\]]*\]\([^)]*\)|\[[^\]]*\]|<[^>]*>").expect("re"));
static STRINGS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#""[^"]*"|'[^']*'"#).expect("re"));
static CODEY: LazyLock<Regex> = LazyLock::new(|| {
    // snake_case, paths, calls, camelCase / CamelCase with an inner capital, ALL_CAPS_WITH_UNDERSCORES.
    Regex::new(
        r"^([A-Za-z0-9]*_[A-Za-z0-9_]*|.*::.*|.*\(.*|.*\).*|[A-Za-z]*[a-z][A-Z][A-Za-z0-9]*)$",
    )
    .expect("re")
});

/// A function's doc comment with identifiers and string literals taken out: backticked spans,
/// links, `"..."`, words that look like code (snake_case, paths, camelCase) and words that are
/// names defined in the workspace (types, traits, functions; compared case-sensitively, plus
/// the function's own name in any case). `None` when fewer than 8 words remain.
pub fn describe(f: &FnFact, defined: &BTreeSet<String>) -> Option<String> {
    // Only the first paragraph-ish part: up to the first example or heading.
    let doc = f
        .doc
        .split("# ")
        .next()
        .unwrap_or_default()
        .split("```")
        .next()
        .unwrap_or_default();
    let doc = BACKTICKS.replace_all(doc, " ");
    let doc = STRINGS.replace_all(&doc, " ");
    let own = f.name.to_ascii_lowercase();
    let mut words = Vec::new();
    for w in doc.split_whitespace() {
        let core = w.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
        if core.is_empty() {
            continue;
        }
        if CODEY.is_match(core)
            || defined.contains(core)
            || core.to_ascii_lowercase() == own
            || w.contains('`')
            || w.contains('#')
        {
            continue;
        }
        words.push(w.to_string());
        if words.len() >= 45 {
            break;
        }
    }
    (words.len() >= 8).then(|| words.join(" "))
}

/// Signature facts in words: kind (method or free function), visibility, parameter count,
/// return shape. No identifiers.
pub fn signature_facts(f: &FnFact) -> String {
    let mut parts = Vec::new();
    parts.push(if f.has_self {
        "it is a method (it takes self)".to_string()
    } else if f.parent.is_some() {
        "it is an associated function without self".to_string()
    } else {
        "it is a free function".to_string()
    });
    if f.is_pub {
        parts.push("it is public".into());
    }
    parts.push(match f.params {
        0 => "it takes no other parameters".into(),
        1 => "it takes one other parameter".into(),
        n => format!("it takes {n} other parameters"),
    });
    let ret = f.ret.as_deref().unwrap_or("");
    let outer = ret
        .split('<')
        .next()
        .unwrap_or_default()
        .rsplit("::")
        .next()
        .unwrap_or_default()
        .trim_start_matches('&')
        .trim();
    parts.push(
        match outer {
            "" | "()" => "it returns nothing",
            "Result" => "it returns a result that may be an error",
            "Option" => "it returns an optional value",
            "bool" => "it returns true or false",
            "usize" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128" | "i8" | "i16" | "i32"
            | "i64" | "i128" | "f32" | "f64" => "it returns a number",
            "str" | "String" | "'static str" => "it returns text",
            "Self" => "it returns a value of its own type",
            _ if ret.starts_with("impl") => "it returns an opaque type",
            _ => "it returns a value",
        }
        .to_string(),
    );
    if f.is_async {
        parts.push("it is async".into());
    }
    if f.is_unsafe {
        parts.push("it is unsafe to call".into());
    }
    parts.join("; ")
}

fn needle(c: &Corpus, n: usize) -> Vec<Made> {
    let mut defined: BTreeSet<String> = c.known_names();
    let mut name_count: BTreeMap<&str, usize> = BTreeMap::new();
    for f in c.fns() {
        *name_count.entry(&f.name).or_default() += 1;
        defined.insert(f.name.clone());
    }
    let mut seen_desc: BTreeMap<String, usize> = BTreeMap::new();
    let mut cands = Vec::new();
    for f in c.fns() {
        // One function of that name in the whole workspace: name and file are unambiguous.
        if name_count.get(f.name.as_str()) != Some(&1) || f.name.len() < 4 {
            continue;
        }
        let Some(desc) = describe(f, &defined) else {
            continue;
        };
        let key = format!("{desc} | {}", signature_facts(f));
        *seen_desc.entry(key.clone()).or_default() += 1;
        cands.push((key, desc, f));
    }
    cands.retain(|(k, _, _)| seen_desc.get(k) == Some(&1));
    cands.sort_by_key(|(k, _, f)| (stable_hash(k), f.name.clone()));
    cands
        .into_iter()
        .take(n)
        .map(|(_, desc, f)| {
            (
                format!(
                    "Which function in this codebase does this describe? \"{desc}\" Facts about it: {}. \
                     Answer with the function's name and the path of the file that defines it.",
                    signature_facts(f)
                ),
                Truth::Function {
                    name: f.name.clone(),
                    file: f.path.clone(),
                },
                Scorer::NameFile,
                Vec::new(),
            )
        })
        .collect()
}

fn call_sites(c: &Corpus, n: usize) -> Vec<Made> {
    let mut calls: BTreeMap<&str, BTreeMap<&str, Vec<u32>>> = BTreeMap::new();
    for f in &c.files {
        for call in &f.calls {
            calls
                .entry(&call.name)
                .or_default()
                .entry(&f.path)
                .or_default()
                .push(call.line);
        }
    }
    let mut defs: BTreeMap<&str, usize> = BTreeMap::new();
    for f in c.fns() {
        *defs.entry(&f.name).or_default() += 1;
    }
    let mut cands = Vec::new();
    for (name, files) in &calls {
        if !(2..=12).contains(&files.len()) || name.len() < 4 || !defs.contains_key(name) {
            continue;
        }
        // Files a bare `\bname\s*\(` grep finds: definitions, comments and strings too.
        let re = Regex::new(&format!(r"\b{}\s*\(", regex::escape(name))).expect("escaped");
        let grep: BTreeSet<&str> = c
            .texts
            .iter()
            .filter(|(p, t)| p.ends_with(".rs") && re.is_match(t))
            .map(|(p, _)| p.as_str())
            .collect();
        let truth: BTreeSet<&str> = files.keys().copied().collect();
        let grep_differs = grep != truth;
        let shared = defs.get(name).copied().unwrap_or(0) >= 2;
        cands.push(((!grep_differs, !shared, stable_hash(name)), *name, files));
    }
    cands.sort_by_key(|(k, name, _)| (*k, name.to_string()));
    cands
        .into_iter()
        .take(n)
        .map(|(_, name, files)| {
            let lines = files
                .iter()
                .flat_map(|(p, ls)| ls.iter().map(|l| (p.to_string(), *l)))
                .collect();
            (
                format!(
                    "List every file that calls a function or method named `{name}`: calls such as `{name}(..)`, \
                     `x.{name}(..)` or `Type::{name}(..)`, also inside macro arguments. Definitions, imports and \
                     mentions in comments or strings do not count. Answer with the file paths."
                ),
                Truth::Files {
                    files: files.keys().map(|s| s.to_string()).collect(),
                    lines,
                },
                Scorer::SetF1Files,
                vec![name.to_string()],
            )
        })
        .collect()
}

fn implementors(c: &Corpus, n: usize) -> Vec<Made> {
    let mut cands: Vec<_> = c
        .implementors()
        .into_iter()
        .filter(|(t, types)| (2..=15).contains(&types.len()) && c.unambiguous_trait(t))
        .collect();
    cands.sort_by_key(|(t, _)| (stable_hash(t), t.clone()));
    cands
        .into_iter()
        .take(n)
        .map(|(t, types)| {
            (
                format!(
                    "Which types implement the trait `{t}` in this codebase (an `impl {t} for Type` block, with any \
                     generic arguments)? List every such type by name."
                ),
                Truth::Names {
                    names: types.into_iter().collect(),
                },
                Scorer::SetF1Names,
                vec![t],
            )
        })
        .collect()
}

/// The outermost type name of a return type: `io::Result<T>` -> `Result`.
fn outer_type(ret: &str) -> &str {
    ret.split('<')
        .next()
        .unwrap_or_default()
        .rsplit("::")
        .next()
        .unwrap_or_default()
        .trim()
}

fn argmax<'a>(per_file: impl Iterator<Item = (&'a str, usize)>) -> (usize, Vec<String>) {
    let mut best = 0;
    let mut files = Vec::new();
    for (p, k) in per_file {
        if k > best {
            best = k;
            files = vec![p.to_string()];
        } else if k == best && k > 0 {
            files.push(p.to_string());
        }
    }
    (best, files)
}

fn aggregate(c: &Corpus, n: usize) -> Vec<Made> {
    let mut out = Vec::new();
    let pub_result = c
        .fns()
        .filter(|f| f.is_pub && f.ret.as_deref().is_some_and(|r| outer_type(r) == "Result"))
        .count();
    out.push((
        "How many public functions (declared exactly `pub fn`, methods included) in this codebase have a return \
         type named `Result` (such as `Result<T, E>`, `io::Result<T>` or `fmt::Result`)? Answer with one number."
            .to_string(),
        Truth::Count {
            count: pub_result as i64,
        },
        Scorer::Count,
        Vec::new(),
    ));
    let (most_unsafe, files) = argmax(c.files.iter().map(|f| (f.path.as_str(), f.unsafe_blocks)));
    if most_unsafe > 0 && files.len() <= 3 {
        out.push((
            "Which file contains the most `unsafe { ... }` blocks (not counting `unsafe fn` or `unsafe impl`)? \
             Answer with the file path."
                .to_string(),
            Truth::OneOfFiles { files },
            Scorer::ExactFile,
            Vec::new(),
        ));
    } else {
        let (_, files) = argmax(c.files.iter().map(|f| (f.path.as_str(), f.fns.len())));
        out.push((
            "Which file defines the most functions (`fn` items, methods and trait method declarations included)? \
             Answer with the file path."
                .to_string(),
            Truth::OneOfFiles { files },
            Scorer::ExactFile,
            Vec::new(),
        ));
    }
    let impls: usize = c.files.iter().map(|f| f.impls.len()).sum();
    out.push((
        "How many trait implementations (`impl Trait for Type` blocks, negative impls excluded) does this codebase \
         contain? Answer with one number."
            .to_string(),
        Truth::Count {
            count: impls as i64,
        },
        Scorer::Count,
        Vec::new(),
    ));
    out.truncate(n);
    out
}

fn pairs(c: &Corpus, n: usize) -> Vec<Made> {
    let imps: Vec<(String, BTreeSet<String>)> = c
        .implementors()
        .into_iter()
        .filter(|(t, types)| types.len() >= 2 && c.unambiguous_trait(t))
        .collect();
    let mut cands = Vec::new();
    for (i, (a, ta)) in imps.iter().enumerate() {
        for (b, tb) in &imps[i + 1..] {
            let both: BTreeSet<String> = ta.intersection(tb).cloned().collect();
            if both.is_empty() || both.len() > 10 {
                continue;
            }
            // A real relation: the answer is neither trait's whole list.
            let proper = both.len() < ta.len() && both.len() < tb.len();
            cands.push(((!proper, stable_hash(&format!("{a}+{b}"))), a, b, both));
        }
    }
    cands.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(y.1)).then(x.2.cmp(y.2)));
    cands
        .into_iter()
        .take(n)
        .map(|(_, a, b, both)| {
            (
                format!(
                    "Which types implement both the trait `{a}` and the trait `{b}` in this codebase (an \
                     `impl ... for Type` block for each)? List every such type by name."
                ),
                Truth::Names {
                    names: both.into_iter().collect(),
                },
                Scorer::SetF1Names,
                vec![a.clone(), b.clone()],
            )
        })
        .collect()
}

/// Rust keywords and other words too common to ask about.
const COMMON_WORDS: [&str; 30] = [
    "self", "Self", "impl", "enum", "type", "loop", "else", "true", "false", "const", "static",
    "crate", "super", "trait", "while", "break", "match", "return", "async", "await", "unsafe",
    "extern", "struct", "where", "continue", "move", "Some", "None", "Option", "Result",
];

/// Whole words: maximal runs of ASCII letters, digits and `_` (any other byte ends a word).
fn words_of(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// Whole-word occurrences of `word` in `text` (as [`words_of`] splits it).
pub fn word_occurrences(text: &str, word: &str) -> usize {
    let b = text.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    text.match_indices(word)
        .filter(|(i, _)| {
            (*i == 0 || !is_word(b[i - 1])) && b.get(i + word.len()).is_none_or(|c| !is_word(*c))
        })
        .count()
}

#[derive(Debug, Clone, Copy, Default)]
struct WordCount {
    files: u32,
    lines: u32,
    occurrences: u32,
}

/// Per word: files, lines and occurrences, over every file of the corpus.
fn word_counts(c: &Corpus) -> HashMap<&str, WordCount> {
    let mut m: HashMap<&str, WordCount> = HashMap::new();
    for t in c.texts.values() {
        let mut in_file: BTreeSet<&str> = BTreeSet::new();
        for line in t.lines() {
            let mut in_line: BTreeSet<&str> = BTreeSet::new();
            for w in words_of(line) {
                if w.len() < 4 || !w.as_bytes()[0].is_ascii_alphabetic() {
                    continue;
                }
                m.entry(w).or_default().occurrences += 1;
                in_line.insert(w);
            }
            for w in in_line {
                m.entry(w).or_default().lines += 1;
                in_file.insert(w);
            }
        }
        for w in in_file {
            m.entry(w).or_default().files += 1;
        }
    }
    m
}

/// "How many files contain the word X?": X is a word (4+ characters, not a keyword) found in
/// 4-40 files, on more lines than files (a count of matching lines is wrong), preferably also
/// inside longer words in other files (a substring count is wrong too).
fn count_files(c: &Corpus, n: usize) -> Vec<Made> {
    let counts = word_counts(c);
    let mut cands: Vec<(&str, WordCount)> = counts
        .iter()
        .filter(|(w, k)| {
            (4..=40).contains(&k.files) && k.lines > k.files && !COMMON_WORDS.contains(w)
        })
        .map(|(w, k)| (*w, *k))
        .collect();
    cands.sort_by_key(|(w, _)| (stable_hash(w), w.to_string()));
    let mut best = Vec::new();
    let mut rest = Vec::new();
    for (w, k) in cands.into_iter().take(300) {
        let substring_files = c.texts.values().filter(|t| t.contains(w)).count();
        if substring_files > k.files as usize {
            best.push((w, k));
        } else {
            rest.push((w, k));
        }
    }
    best.into_iter()
        .chain(rest)
        .take(n)
        .map(|(w, k)| {
            (
                format!(
                    "How many files in this codebase contain the word `{w}`? Count files of every kind (code, \
                     documentation, manifests), each file once however often the word occurs in it; the word \
                     counts only whole and case-sensitive (not inside a longer word such as `{w}_x` or `my_{w}`: \
                     letters, digits and `_` continue a word). Answer with one number."
                ),
                Truth::Count {
                    count: i64::from(k.files),
                },
                Scorer::Count,
                vec![w.to_string()],
            )
        })
        .collect()
}

/// What `top_dir` counts per directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Measure {
    Functions,
    UnsafeBlocks,
    Structs,
    TestFunctions,
    Word(String),
}

impl Measure {
    fn group(&self) -> &'static str {
        match self {
            Measure::Functions => "functions",
            Measure::UnsafeBlocks => "unsafe",
            Measure::Structs => "structs",
            Measure::TestFunctions => "tests",
            Measure::Word(_) => "word",
        }
    }

    fn words(&self) -> String {
        match self {
            Measure::Functions => concat!(
                "functions (`fn` items in Rust files: free functions, methods and trait method ",
                "declarations)"
            )
            .into(),
            Measure::UnsafeBlocks => {
                "`unsafe { ... }` blocks in Rust files (not counting `unsafe fn` or `unsafe impl`)"
                    .into()
            }
            Measure::Structs => "`struct` definitions in Rust files".into(),
            Measure::TestFunctions => concat!(
                "test functions in Rust files (functions with the attribute `#[test]`, or one ",
                "whose path ends in `::test` such as `#[tokio::test]`)"
            )
            .into(),
            Measure::Word(w) => format!(
                "occurrences of the word `{w}` (case-sensitive and whole: not inside a longer word; every \
                 occurrence counts, in files of any kind)"
            ),
        }
    }

    /// The measure in one file.
    fn of_file(&self, c: &Corpus, path: &str, facts: Option<&FileFacts>) -> usize {
        match self {
            Measure::Functions => facts.map_or(0, |f| f.fns.len()),
            Measure::UnsafeBlocks => facts.map_or(0, |f| f.unsafe_blocks),
            Measure::Structs => facts.map_or(0, |f| f.structs),
            Measure::TestFunctions => {
                facts.map_or(0, |f| f.fns.iter().filter(|f| f.is_test).count())
            }
            Measure::Word(w) => c.texts.get(path).map_or(0, |t| word_occurrences(t, w)),
        }
    }
}

/// The directory `depth` components deep that holds `path`, if `path` is that deep.
pub fn dir_at_depth(path: &str, depth: usize) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    (parts.len() > depth).then(|| parts[..depth].join("/"))
}

/// "Which directory `k` levels below the root has the most X?", for depths and measures where
/// there are 3-60 such directories, at least 3 with some X, the top one is unique (ahead of the
/// second by 10% or more) and is not the first directory in path order.
fn top_dir(c: &Corpus, n: usize) -> Vec<Made> {
    let facts: BTreeMap<&str, &FileFacts> = c.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut measures = vec![
        Measure::Functions,
        Measure::UnsafeBlocks,
        Measure::Structs,
        Measure::TestFunctions,
    ];
    let counts = word_counts(c);
    let mut words: Vec<&str> = counts
        .iter()
        .filter(|(w, k)| k.files >= 6 && k.occurrences >= 20 && !COMMON_WORDS.contains(w))
        .map(|(w, _)| *w)
        .collect();
    words.sort_by_key(|w| (stable_hash(&format!("top_dir/{w}")), w.to_string()));
    measures.extend(
        words
            .into_iter()
            .take(30)
            .map(|w| Measure::Word(w.to_string())),
    );
    let mut groups: BTreeMap<(u64, &'static str), Vec<(u64, Made)>> = BTreeMap::new();
    for m in &measures {
        let per_file: Vec<(&str, usize)> = c
            .paths
            .iter()
            .map(|p| (p.as_str(), m.of_file(c, p, facts.get(p.as_str()).copied())))
            .collect();
        for depth in 1..=4 {
            let mut per_dir: BTreeMap<String, usize> = BTreeMap::new();
            for (p, k) in &per_file {
                if let Some(d) = dir_at_depth(p, depth) {
                    *per_dir.entry(d).or_default() += k;
                }
            }
            if !(3..=60).contains(&per_dir.len())
                || per_dir.values().filter(|k| **k > 0).count() < 3
            {
                continue;
            }
            let mut ranked: Vec<(&String, &usize)> = per_dir.iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let (top, top_n) = ranked[0];
            let second = *ranked[1].1;
            let first_in_order = per_dir.keys().next().map(String::as_str);
            if *top_n < 3 || (*top_n as f64) < second as f64 * 1.1 || *top_n == second {
                continue;
            }
            if first_in_order == Some(top.as_str()) {
                continue;
            }
            // A schematic example: a real directory in the question is what a small model echoes.
            let form = ["a", "b", "c", "d"][..depth].join("/");
            let levels = if depth == 1 { "level" } else { "levels" };
            let components = if depth == 1 {
                "component"
            } else {
                "components"
            };
            let question = format!(
                "Consider the directories exactly {depth} {levels} below the workspace root (paths of {depth} \
                 {components}, of the form `{form}`), each with everything under it, its subdirectories \
                 included. Which of them contains the most {}? Answer with the directory's path.",
                m.words()
            );
            let key = stable_hash(&format!("{question}/{depth}"));
            let names = match m {
                Measure::Word(w) => vec![w.clone()],
                _ => Vec::new(),
            };
            groups
                .entry((stable_hash(m.group()), m.group()))
                .or_default()
                .push((
                    key,
                    (
                        question,
                        Truth::Dir { dir: top.clone() },
                        Scorer::ExactDir,
                        names,
                    ),
                ));
        }
    }
    // Round robin over the measures' groups, so two tasks ask about two different things.
    let mut lists: Vec<Vec<(u64, Made)>> = groups
        .into_values()
        .map(|mut v| {
            v.sort_by_key(|(k, _)| *k);
            v.reverse();
            v
        })
        .collect();
    // Each task another directory, while there are candidates for that.
    let mut out: Vec<Made> = Vec::new();
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    let key = |t: &Truth| format!("{t:?}");
    while out.len() < n && lists.iter().any(|l| !l.is_empty()) {
        for l in &mut lists {
            if out.len() >= n {
                break;
            }
            let fresh = l.iter().rposition(|(_, m)| !dirs.contains(&key(&m.1)));
            let pick = match fresh {
                Some(i) => Some(l.remove(i)),
                None => l.pop(),
            };
            if let Some((_, m)) = pick {
                dirs.insert(key(&m.1));
                out.push(m);
            }
        }
    }
    out
}

fn planted_tasks(plants: &[plant::Plant]) -> Vec<Made> {
    plants
        .iter()
        .map(|p| {
            (
                format!(
                    "Which function in this codebase {}? Its name does not say what it does. Answer with the \
                     function's name and the path of the file that defines it.",
                    p.description
                ),
                Truth::Function {
                    name: p.name.clone(),
                    file: p.overlay.path.clone(),
                },
                Scorer::NameFile,
                Vec::new(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::RootRef;

    fn corpus() -> Corpus {
        let files = [
            (
                "src/lib.rs",
                r#"
pub trait Shape { fn area(&self) -> f64; }
pub trait Named { fn name(&self) -> String; }
pub struct Circle; pub struct Square; pub struct Line;
impl Shape for Circle { fn area(&self) -> f64 { compute_total(1) } }
impl Shape for Square { fn area(&self) -> f64 { 2.0 } }
impl Named for Circle { fn name(&self) -> String { String::new() } }
impl Named for Line { fn name(&self) -> String { String::new() } }
impl std::fmt::Debug for Line { fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { Ok(()) } }

/// Walks every registered shape in the drawing and adds up their surface, skipping
/// those that were hidden by the user, as in `Circle::area`.
pub fn compute_total(k: u32) -> f64 { 0.0 }

pub fn load(p: &str) -> Result<(), std::io::Error> { unsafe { x() }; Ok(()) }
"#,
            ),
            (
                "src/util.rs",
                r#"
// compute_total(2) is mentioned in a comment only.
pub fn helper() -> std::io::Result<u8> { let v = crate::compute_total(3); assert!(compute_total(4) > 0.0); Ok(1) }
fn private() -> Result<u8, ()> { unsafe { a() }; unsafe { b() }; Ok(0) }
"#,
            ),
            ("README.md", "compute_total(5)"),
        ];
        Corpus::new(&files)
    }

    fn spec() -> WorkspaceSpec {
        WorkspaceSpec::new(vec![RootRef::Dir("ws".into())])
    }

    #[test]
    fn needle_describes_without_identifiers() {
        let c = corpus();
        let t = generate(&spec(), &c, &["needle_function"], 5);
        assert_eq!(
            t.len(),
            1,
            "only compute_total has a long enough doc: {t:?}"
        );
        assert_eq!(
            t[0].truth,
            Truth::Function {
                name: "compute_total".into(),
                file: "src/lib.rs".into()
            }
        );
        let q = &t[0].question;
        assert!(!q.contains("compute_total") && !q.contains("Circle"), "{q}");
        assert!(
            q.contains("surface") && q.contains("one other parameter"),
            "{q}"
        );
        assert!(
            q.contains("returns a number") && q.contains("free function"),
            "{q}"
        );
    }

    #[test]
    fn call_sites_exclude_comments_definitions_and_non_rust() {
        let c = corpus();
        let t = generate(&spec(), &c, &["call_sites"], 5);
        let cs = t
            .iter()
            .find(|t| t.question.contains("`compute_total`"))
            .expect("compute_total is called in two files");
        match &cs.truth {
            Truth::Files { files, lines } => {
                assert_eq!(files, &vec!["src/lib.rs".to_string(), "src/util.rs".into()]);
                assert_eq!(
                    lines.len(),
                    3,
                    "lib.rs once, util.rs twice (one in assert!)"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn implementors_and_pairs() {
        let c = corpus();
        let t = generate(&spec(), &c, &["implementors", "pairs"], 5);
        let imp: Vec<_> = t.iter().filter(|t| t.kind == "implementors").collect();
        assert!(imp.iter().any(|t| t.truth
            == Truth::Names {
                names: vec!["Circle".into(), "Square".into()]
            }
            && t.question.contains("`Shape`")));
        let pairs: Vec<_> = t.iter().filter(|t| t.kind == "pairs").collect();
        assert_eq!(pairs.len(), 1, "{pairs:?}");
        assert_eq!(
            pairs[0].truth,
            Truth::Names {
                names: vec!["Circle".into()]
            }
        );
        assert_eq!(pairs[0].question_names, vec!["Named", "Shape"]);
    }

    #[test]
    fn aggregates() {
        let c = corpus();
        let t = generate(&spec(), &c, &["aggregate"], 3);
        assert_eq!(t.len(), 3);
        // load and helper: pub with a Result return; private is not pub.
        assert_eq!(t[0].truth, Truth::Count { count: 2 });
        assert_eq!(
            t[1].truth,
            Truth::OneOfFiles {
                files: vec!["src/util.rs".into()]
            }
        );
        assert_eq!(t[2].truth, Truth::Count { count: 5 });
        assert!(c.size_tokens > 0);
    }

    #[test]
    fn count_files_counts_files_not_lines_or_substrings() {
        let files = [
            (
                "a/x.rs",
                "fn main() { widget(); widget(); }\n// widget again\n",
            ),
            ("a/y.rs", "let widgets = 1; // my_widget, widget_x\n"),
            ("b/z.md", "A widget.\n"),
            ("b/w.rs", "widget\nwidget\n"),
            ("c/v.toml", "widget = 1\n"),
        ];
        let c = Corpus::new(&files);
        let t = generate(&spec(), &c, &["count_files"], 10);
        let w = t
            .iter()
            .find(|t| t.question.contains("the word `widget`"))
            .expect("widget: 4 files, 6 lines");
        assert_eq!(w.truth, Truth::Count { count: 4 });
        assert_eq!(w.scorer, Scorer::Count);
        assert_eq!(word_occurrences(files[0].1, "widget"), 3);
        assert_eq!(word_occurrences(files[1].1, "widget"), 0);
    }

    fn fns(n: usize) -> String {
        (0..n).map(|i| format!("fn f{i}() {{}}\n")).collect()
    }

    #[test]
    fn top_dir_is_unique_and_not_first_in_path_order() {
        let files = [
            ("src/a/one.rs".to_string(), fns(1)),
            ("src/b/two.rs".to_string(), fns(3)),
            ("src/b/deep/three.rs".to_string(), fns(2)),
            ("src/c/four.rs".to_string(), fns(2)),
            ("src/lib.rs".to_string(), fns(10)),
        ];
        let c = Corpus::new(&files);
        let t = generate(&spec(), &c, &["top_dir"], 5);
        assert_eq!(t.len(), 1, "{t:#?}");
        assert_eq!(
            t[0].truth,
            Truth::Dir {
                dir: "src/b".into()
            },
            "subdirectories count; src/lib.rs is in no directory two levels deep"
        );
        assert_eq!(t[0].scorer, Scorer::ExactDir);
        let q = &t[0].question;
        assert!(
            q.contains("exactly 2 levels")
                && q.contains("`a/b`")
                && !q.contains("src/a")
                && q.contains("functions"),
            "{q}"
        );
        // The first directory in path order having the most: no task.
        let mut files = files;
        files[0].1 = fns(9);
        assert!(generate(&spec(), &Corpus::new(&files), &["top_dir"], 5).is_empty());
        // A tie at the top: no task.
        files[0].1 = fns(1);
        files[3].1 = fns(5);
        assert!(generate(&spec(), &Corpus::new(&files), &["top_dir"], 5).is_empty());
        assert_eq!(dir_at_depth("a/b/c.rs", 2).as_deref(), Some("a/b"));
        assert_eq!(dir_at_depth("a/c.rs", 2), None);
    }

    #[test]
    fn planted_functions_are_in_every_task_of_the_workspace() {
        let body = "pub struct Holder;\n\nimpl Holder {\n    pub fn get(&self) -> u32 {\n        1\n    }\n}\n\nfn tail() {}\n";
        let files: Vec<(String, String)> = (0..3)
            .map(|i| {
                (
                    format!("src/m{i}.rs"),
                    format!("{body}{}", "// pad\n".repeat(300)),
                )
            })
            .collect();
        let c = Corpus::new(&files);
        let t = generate(&spec(), &c, &["planted_behaviour", "aggregate"], 2);
        let planted: Vec<&Task> = t.iter().filter(|t| t.kind == "planted_behaviour").collect();
        assert_eq!(planted.len(), 2);
        assert!(
            t.iter().all(|t| t.workspace.overlays.len() == 2),
            "one overlaid workspace for all"
        );
        let overlaid = c.with_overlays(&t[0].workspace.overlays).unwrap();
        assert!(t.iter().all(|t| t.size_tokens == overlaid.size_tokens));
        assert!(overlaid.size_tokens > c.size_tokens);
        for p in &planted {
            let Truth::Function { name, file } = &p.truth else {
                panic!("{p:?}")
            };
            let defs: Vec<_> = overlaid.fns().filter(|f| &f.name == name).collect();
            assert_eq!(defs.len(), 1, "{name}");
            assert_eq!(&defs[0].path, file);
            assert!(!p.question.contains(name.as_str()));
            assert!(p.question.contains("Its name does not say what it does"));
            assert!(
                plant::BEHAVIOURS
                    .iter()
                    .any(|(_, d)| p.question.contains(d))
            );
        }
        // The aggregate's truth is the planted workspace's: the file with the most functions is
        // one that received a plant.
        let most = t.iter().find(|t| t.scorer == Scorer::ExactFile).unwrap();
        let Truth::OneOfFiles { files: most } = &most.truth else {
            panic!()
        };
        let planted_files: BTreeSet<&str> = t[0]
            .workspace
            .overlays
            .iter()
            .map(|o| o.path.as_str())
            .collect();
        assert!(
            most.iter().all(|f| planted_files.contains(f.as_str())),
            "{most:?}"
        );
    }
}
