//! Task generators with ground truth computed from tree-sitter facts (`facts.rs`), over any set
//! of Rust files. Each generator is deterministic: candidates are ordered by preference, then by
//! a stable hash of their key, and the first `n` are taken.

use crate::facts::{self, FileFacts, FnFact};
use crate::task::{Scorer, Task, Truth, WorkspaceSpec};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

pub const KINDS: [&str; 5] = [
    "needle_function",
    "call_sites",
    "implementors",
    "aggregate",
    "pairs",
];

/// Facts of every Rust file of a workspace.
pub struct Corpus {
    pub files: Vec<FileFacts>,
    /// Every path in the workspace (Rust or not), for answer parsing.
    pub paths: Vec<String>,
    texts: BTreeMap<String, String>,
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
                texts.insert(p.to_string(), t.to_string());
            }
        }
        Corpus {
            files: out,
            paths: files.iter().map(|(p, _)| p.as_ref().to_string()).collect(),
            texts,
            size_tokens: chars / 4,
        }
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

/// FNV-1a: a hash that is the same on every machine and every run.
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
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

/// Up to `per_kind` tasks of each kind in `kinds`.
pub fn generate(
    spec: &WorkspaceSpec,
    corpus: &Corpus,
    kinds: &[&str],
    per_kind: usize,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for kind in kinds {
        let made = match *kind {
            "needle_function" => needle(corpus, per_kind),
            "call_sites" => call_sites(corpus, per_kind),
            "implementors" => implementors(corpus, per_kind),
            "aggregate" => aggregate(corpus, per_kind),
            "pairs" => pairs(corpus, per_kind),
            _ => Vec::new(),
        };
        for (i, (question, truth, scorer, names)) in made.into_iter().enumerate() {
            tasks.push(Task {
                id: format!("{kind}-{}-{i}", slug(spec)),
                kind: kind.to_string(),
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
            .filter(|(_, t)| re.is_match(t))
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
        WorkspaceSpec {
            roots: vec![RootRef::Dir("ws".into())],
        }
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
}
