//! The workspace index: one immutable [`FileIndex`] per file behind an `Arc`, shared between
//! versions. Updating a file builds a new [`WorkspaceIndex`] that shares every other file, so runs
//! holding the previous version keep a consistent view.

use super::chunk::{self, ChunkOptions, ChunkRec, Label, Lines};
use super::lang::{self, language_for_path};
use super::parse::{DefExtra, Extracted, Failure, Previous, Worker};
use super::{Chunk, DefKind, Definition, Language};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tree_sitter::{InputEdit, Point, Tree};

/// How files are indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// Parse and query time allowed per file; past it the file degrades to line chunks.
    pub parse_timeout: Duration,
    /// Files larger than this are not parsed (line chunks only).
    pub max_parse_bytes: usize,
    pub chunks: ChunkOptions,
    /// Keep every file's syntax tree and text (for incremental updates of any file). Off by
    /// default: trees take several times the source's size. A file updated through
    /// [`WorkspaceIndex::update_file`] always keeps its tree and text, so its next update is
    /// incremental.
    pub keep_trees: bool,
    /// Run the definition queries over every node of every tree, instead of only the scopes where
    /// definitions live (module, class and function bodies). About twice as slow; finds
    /// definitions nested in expressions too (a function declared inside a closure argument).
    pub exhaustive: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            parse_timeout: Duration::from_millis(500),
            max_parse_bytes: 4 * 1024 * 1024,
            chunks: ChunkOptions::default(),
            keep_trees: false,
            exhaustive: false,
        }
    }
}

/// Why a file has no definitions and only line chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Degradation {
    /// Larger than [`IndexOptions::max_parse_bytes`].
    TooLarge { bytes: usize, cap: usize },
    /// Parsing did not finish within [`IndexOptions::parse_timeout`].
    ParseTimeout { millis: u64 },
    /// Running the definition query did not finish within the same deadline.
    QueryTimeout { millis: u64 },
    /// The parser failed for another reason.
    ParserFailed { error: String },
}

impl std::fmt::Display for Degradation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Degradation::TooLarge { bytes, cap } => {
                write!(f, "too large to parse ({bytes} bytes > {cap})")
            }
            Degradation::ParseTimeout { millis } => write!(f, "parse took over {millis} ms"),
            Degradation::QueryTimeout { millis } => {
                write!(f, "definition query took over {millis} ms")
            }
            Degradation::ParserFailed { error } => write!(f, "parser failed: {error}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A byte-range edit of a file: `old[start_byte..old_end_byte]` became
/// `new[start_byte..new_end_byte]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextEdit {
    pub start_byte: usize,
    pub old_end_byte: usize,
    pub new_end_byte: usize,
}

/// Text and syntax tree kept for incremental re-parsing.
struct Live {
    text: Arc<str>,
    /// The language the tree was parsed as (a `.h` file may switch between C and C++).
    language: Language,
    tree: Option<Tree>,
    /// Facts about the definitions that an incremental re-extraction needs.
    extra: DefExtra,
}

/// The index of one file. Immutable; shared between index versions.
pub struct FileIndex {
    path: String,
    language: Language,
    bytes: usize,
    lines: u32,
    definitions: Vec<Definition>,
    depths: Vec<u16>,
    chunks: Vec<ChunkRec>,
    /// Markdown heading titles (chunk names refer to them).
    headings: Vec<String>,
    degraded: Option<Degradation>,
    syntax_errors: bool,
    incremental: bool,
    elapsed: Duration,
    live: Option<Live>,
}

impl std::fmt::Debug for FileIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileIndex")
            .field("path", &self.path)
            .field("language", &self.language)
            .field("bytes", &self.bytes)
            .field("definitions", &self.definitions.len())
            .field("chunks", &self.chunks.len())
            .field("degraded", &self.degraded)
            .finish_non_exhaustive()
    }
}

impl FileIndex {
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn language(&self) -> Language {
        self.language
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn line_count(&self) -> u32 {
        self.lines
    }

    /// Definitions ordered by position (start ascending, an outer definition before the ones it
    /// holds).
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }

    /// Definitions ordered by position, each with its nesting depth (0 = top level). Depth counts
    /// enclosing definitions by range: a C++ method defined out of its class is at the depth of
    /// its namespace, though its `parent` names the class.
    pub fn outline(&self) -> Vec<(usize, &Definition)> {
        self.depths
            .iter()
            .map(|&d| d as usize)
            .zip(&self.definitions)
            .collect()
    }

    /// Chunks in line order, covering every line exactly once (built on demand from a compact
    /// form that shares its strings with the definitions).
    pub fn chunks(&self) -> Vec<Chunk> {
        self.iter_chunks().collect()
    }

    /// The same as [`FileIndex::chunks`], without collecting.
    pub fn iter_chunks(&self) -> impl ExactSizeIterator<Item = Chunk> + '_ {
        self.chunks.iter().map(|c| self.chunk(c))
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    fn label(&self, label: Label) -> Option<String> {
        match label {
            Label::None => None,
            Label::DefName(i) => self.definitions.get(i as usize).map(|d| d.name.clone()),
            Label::DefParent(i) => self
                .definitions
                .get(i as usize)
                .and_then(|d| d.parent.clone()),
            Label::Heading(i) => self.headings.get(i as usize).cloned(),
        }
    }

    fn chunk(&self, c: &ChunkRec) -> Chunk {
        Chunk {
            path: self.path.clone(),
            kind: c.kind.as_str().to_owned(),
            name: self.label(c.name),
            parent: self.label(c.parent),
            language: self.language,
            start_byte: c.start_byte,
            end_byte: c.end_byte,
            start_line: c.start_line,
            end_line: c.end_line,
        }
    }

    /// Why the file has only line chunks, if it does.
    pub fn degraded(&self) -> Option<&Degradation> {
        self.degraded.as_ref()
    }

    /// Whether tree-sitter reported syntax errors (definitions are still extracted).
    pub fn has_syntax_errors(&self) -> bool {
        self.syntax_errors
    }

    /// Whether this version came from an incremental re-parse.
    pub fn was_incremental(&self) -> bool {
        self.incremental
    }

    /// Time spent indexing this version of the file.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// The text, for files that came from an update (an editor buffer, a re-read) or when
    /// [`IndexOptions::keep_trees`] is set. Otherwise the snapshot the index was built from has it.
    pub fn text(&self) -> Option<&str> {
        self.live.as_ref().map(|l| &*l.text)
    }

    /// Indexes one file from scratch.
    pub fn new(path: &str, text: &str, options: &IndexOptions) -> FileIndex {
        index_file(
            &mut Worker::new(),
            path,
            text,
            None,
            options,
            options.keep_trees,
        )
    }
}

/// Per-language figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LanguageStats {
    pub files: usize,
    pub bytes: u64,
    pub lines: u64,
    pub definitions: usize,
    pub chunks: usize,
    pub kinds: BTreeMap<DefKind, usize>,
    /// Files degraded to line chunks (see [`IndexStatistics::degraded`] for reasons).
    pub degraded: usize,
    pub syntax_errors: usize,
    /// Summed over files (CPU time across threads, not wall time).
    pub index_millis: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DegradedFile {
    pub path: String,
    pub language: Language,
    pub reason: Degradation,
}

/// Figures for the whole index; `languages` is keyed by language name (`rust`, `tsx`, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexStatistics {
    pub version: u64,
    pub files: usize,
    pub bytes: u64,
    pub lines: u64,
    pub definitions: usize,
    pub chunks: usize,
    pub languages: BTreeMap<Language, LanguageStats>,
    pub degraded: Vec<DegradedFile>,
    /// Wall time of the last full build (0 for an index made only of updates).
    pub build_millis: f64,
    pub threads: usize,
}

/// An immutable index of a set of files. Cheap to clone (a vector of `Arc`s); wrap it in an `Arc`
/// to share it. Every update returns a new version sharing the unchanged files.
#[derive(Debug, Clone)]
pub struct WorkspaceIndex {
    /// Sorted by path, unique.
    files: Vec<Arc<FileIndex>>,
    options: Arc<IndexOptions>,
    version: u64,
    build_time: Duration,
    threads: usize,
}

impl Default for WorkspaceIndex {
    fn default() -> Self {
        WorkspaceIndex::new(IndexOptions::default())
    }
}

/// How a definition's name matched a `symbols()` query, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Match {
    Exact,
    Prefix,
    CaseInsensitiveExact,
    CaseInsensitivePrefix,
    CaseInsensitiveSubstring,
}

fn name_match(name: &str, query: &str) -> Option<Match> {
    if name == query {
        return Some(Match::Exact);
    }
    if name.starts_with(query) {
        return Some(Match::Prefix);
    }
    if query.is_ascii() {
        let (n, q) = (name.as_bytes(), query.as_bytes());
        if n.eq_ignore_ascii_case(q) {
            return Some(Match::CaseInsensitiveExact);
        }
        if n.len() >= q.len() && n[..q.len()].eq_ignore_ascii_case(q) {
            return Some(Match::CaseInsensitivePrefix);
        }
        if !q.is_empty() && n.windows(q.len()).any(|w| w.eq_ignore_ascii_case(q)) {
            return Some(Match::CaseInsensitiveSubstring);
        }
        None
    } else {
        let (n, q) = (name.to_lowercase(), query.to_lowercase());
        if n == q {
            Some(Match::CaseInsensitiveExact)
        } else if n.starts_with(&q) {
            Some(Match::CaseInsensitivePrefix)
        } else if n.contains(&q) {
            Some(Match::CaseInsensitiveSubstring)
        } else {
            None
        }
    }
}

fn path_matches(file: &str, filter: &str) -> bool {
    let filter = filter.trim_end_matches('/');
    filter.is_empty()
        || file == filter
        || (file.len() > filter.len()
            && file.starts_with(filter)
            && file.as_bytes()[filter.len()] == b'/')
}

impl WorkspaceIndex {
    /// An empty index.
    pub fn new(options: IndexOptions) -> WorkspaceIndex {
        WorkspaceIndex {
            files: Vec::new(),
            options: Arc::new(options),
            version: 0,
            build_time: Duration::ZERO,
            threads: rayon::current_num_threads(),
        }
    }

    /// Indexes every file of a snapshot, in parallel on rayon's pool.
    pub fn build(snapshot: &crate::workspace::Snapshot, options: IndexOptions) -> WorkspaceIndex {
        let files: Vec<(&str, &str)> = snapshot
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.text.as_str()))
            .collect();
        WorkspaceIndex::build_files(&files, options)
    }

    /// Indexes `(path, text)` pairs, in parallel on rayon's pool. A path given twice keeps its
    /// last text.
    pub fn build_files<P: AsRef<str> + Sync, T: AsRef<str> + Sync>(
        files: &[(P, T)],
        options: IndexOptions,
    ) -> WorkspaceIndex {
        let start = Instant::now();
        let mut index = WorkspaceIndex::new(options);
        index.files = index_many(files, &index.options);
        index.build_time = start.elapsed();
        index
    }

    /// A new version with these files added or replaced (indexed in parallel). For filling an
    /// index in the background: answer from what is indexed, extend with the rest.
    pub fn extend<P: AsRef<str> + Sync, T: AsRef<str> + Sync>(
        &self,
        files: &[(P, T)],
    ) -> WorkspaceIndex {
        let start = Instant::now();
        let new = index_many(files, &self.options);
        let mut merged = Vec::with_capacity(self.files.len() + new.len());
        let (mut a, mut b) = (self.files.iter().peekable(), new.into_iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match x.path.cmp(&y.path) {
                    std::cmp::Ordering::Less => merged.extend(a.next().cloned()),
                    std::cmp::Ordering::Greater => merged.extend(b.next()),
                    std::cmp::Ordering::Equal => {
                        a.next();
                        merged.extend(b.next());
                    }
                },
                (Some(_), None) => merged.extend(a.next().cloned()),
                (None, Some(_)) => merged.extend(b.next()),
                (None, None) => break,
            }
        }
        WorkspaceIndex {
            files: merged,
            options: self.options.clone(),
            version: self.version + 1,
            build_time: self.build_time + start.elapsed(),
            threads: self.threads,
        }
    }

    /// Increases with every update.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn options(&self) -> &IndexOptions {
        &self.options
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Files, sorted by path.
    pub fn files(&self) -> &[Arc<FileIndex>] {
        &self.files
    }

    pub fn file(&self, path: &str) -> Option<&Arc<FileIndex>> {
        self.position(path).ok().map(|i| &self.files[i])
    }

    fn position(&self, path: &str) -> Result<usize, usize> {
        self.files.binary_search_by(|f| f.path.as_str().cmp(path))
    }

    /// Every definition, by path then position.
    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.files.iter().flat_map(|f| f.definitions.iter())
    }

    /// Definitions matching a name, a kind and a path (each optional).
    ///
    /// `path` keeps one file or everything under a directory (`src` or `src/`). `name` matching
    /// goes in tiers and returns the first tier that matches anything:
    /// 1. exact (case-sensitive) names;
    /// 2. names starting with `name`;
    /// 3. ASCII-case-insensitive matches, ranked: equal, then prefix, then substring;
    /// 4. a qualified `name` (`Type::method`, `Type.method`, `Type#method`) matches definitions named
    ///    after its last segment (tiers 1-3) whose parent equals the rest's last segment (ignoring
    ///    case).
    ///
    /// Within a tier (and rank) results are ordered by path, then position.
    pub fn symbols(
        &self,
        name: Option<&str>,
        kind: Option<DefKind>,
        path: Option<&str>,
    ) -> Vec<&Definition> {
        let candidates = || {
            self.files
                .iter()
                .filter(move |f| path.is_none_or(|p| path_matches(&f.path, p)))
                .flat_map(|f| f.definitions.iter())
                .filter(move |d| kind.is_none_or(|k| d.kind == k))
        };
        let Some(query) = name else {
            return candidates().collect();
        };
        let found = ranked(candidates(), query, |_| true);
        if !found.is_empty() {
            return found;
        }
        let split = ["::", ".", "#"]
            .iter()
            .filter_map(|sep| query.rfind(sep).map(|i| (i, sep.len())))
            .max_by_key(|(i, _)| *i);
        if let Some((i, sep_len)) = split {
            let (scope, member) = (&query[..i], &query[i + sep_len..]);
            let scope = scope.rsplit(['.', ':', '#']).next().unwrap_or(scope);
            if !scope.is_empty() && !member.is_empty() {
                return ranked(candidates(), member, |d| {
                    d.parent
                        .as_deref()
                        .is_some_and(|p| p.eq_ignore_ascii_case(scope))
                });
            }
        }
        Vec::new()
    }

    /// The definitions of one file with their nesting depth, by position (empty for an unknown path).
    pub fn outline(&self, path: &str) -> Vec<(usize, &Definition)> {
        self.file(path).map(|f| f.outline()).unwrap_or_default()
    }

    /// Every chunk, by path then line (built on demand).
    pub fn chunks(&self) -> impl Iterator<Item = Chunk> + '_ {
        self.files.iter().flat_map(|f| f.iter_chunks())
    }

    /// The chunks of one file, in line order (empty for an unknown path).
    pub fn chunks_for(&self, path: &str) -> Vec<Chunk> {
        self.file(path).map(|f| f.chunks()).unwrap_or_default()
    }

    /// Number of chunks in all files.
    pub fn chunk_count(&self) -> usize {
        self.files.iter().map(|f| f.chunks.len()).sum()
    }

    /// Figures per language, with the degraded files and their reasons.
    pub fn statistics(&self) -> IndexStatistics {
        let mut s = IndexStatistics {
            version: self.version,
            build_millis: self.build_time.as_secs_f64() * 1e3,
            threads: self.threads,
            ..IndexStatistics::default()
        };
        for f in &self.files {
            s.files += 1;
            s.bytes += f.bytes as u64;
            s.lines += u64::from(f.lines);
            s.definitions += f.definitions.len();
            s.chunks += f.chunks.len();
            let l = s.languages.entry(f.language).or_default();
            l.files += 1;
            l.bytes += f.bytes as u64;
            l.lines += u64::from(f.lines);
            l.definitions += f.definitions.len();
            l.chunks += f.chunks.len();
            for d in &f.definitions {
                *l.kinds.entry(d.kind).or_default() += 1;
            }
            l.syntax_errors += usize::from(f.syntax_errors);
            l.index_millis += f.elapsed.as_secs_f64() * 1e3;
            if let Some(reason) = &f.degraded {
                l.degraded += 1;
                s.degraded.push(DegradedFile {
                    path: f.path.clone(),
                    language: f.language,
                    reason: reason.clone(),
                });
            }
        }
        s
    }

    /// A new version where `path` has `text` (an editor's unsaved buffer, or a new file).
    ///
    /// When the previous version of the file kept its tree (it came from an update, or
    /// [`IndexOptions::keep_trees`]), the file is re-parsed incrementally: with `edit` when given
    /// and consistent with both texts, else with the span that differs (common prefix and
    /// suffix). Only this file's definitions and chunks are rebuilt; the new version keeps the
    /// file's tree and text for the next update.
    pub fn update_file(&self, path: &str, text: &str, edit: Option<TextEdit>) -> WorkspaceIndex {
        let old = self.file(path);
        if let Some(live) = old.and_then(|f| f.live.as_ref())
            && *live.text == *text
        {
            return self.clone();
        }
        let previous = old.map(|f| (&**f, edit));
        let file = index_file(
            &mut Worker::new(),
            path,
            text,
            previous,
            &self.options,
            true,
        );
        self.with_file(Arc::new(file))
    }

    /// A new version with `path` re-read from `disk_path` (invalid UTF-8 is replaced with U+FFFD);
    /// a file that no longer exists is removed.
    pub fn reload_file(&self, path: &str, disk_path: &Path) -> Result<WorkspaceIndex, IndexError> {
        match std::fs::read(disk_path) {
            Ok(bytes) => {
                let text = match String::from_utf8(bytes) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                Ok(self.update_file(path, &text, None))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.remove_file(path)),
            Err(source) => Err(IndexError::Io {
                path: disk_path.to_owned(),
                source,
            }),
        }
    }

    /// A new version without `path`.
    pub fn remove_file(&self, path: &str) -> WorkspaceIndex {
        let mut files = self.files.clone();
        if let Ok(i) = self.position(path) {
            files.remove(i);
        }
        self.next(files)
    }

    fn with_file(&self, file: Arc<FileIndex>) -> WorkspaceIndex {
        let mut files = self.files.clone();
        match self.position(&file.path) {
            Ok(i) => files[i] = file,
            Err(i) => files.insert(i, file),
        }
        self.next(files)
    }

    fn next(&self, files: Vec<Arc<FileIndex>>) -> WorkspaceIndex {
        WorkspaceIndex {
            files,
            options: self.options.clone(),
            version: self.version + 1,
            build_time: self.build_time,
            threads: self.threads,
        }
    }
}

fn ranked<'a>(
    candidates: impl Iterator<Item = &'a Definition>,
    query: &str,
    keep: impl Fn(&Definition) -> bool,
) -> Vec<&'a Definition> {
    let mut best: Option<Match> = None;
    let mut found: Vec<(Match, &Definition)> = Vec::new();
    for d in candidates {
        let Some(m) = name_match(&d.name, query) else {
            continue;
        };
        if !keep(d) {
            continue;
        }
        // Tiers 1 and 2 stand alone; tier 3 ranks its three kinds together.
        let tier = |m: Match| m.min(Match::CaseInsensitiveExact);
        match best {
            Some(b) if tier(m) > tier(b) => continue,
            Some(b) if tier(m) < tier(b) => found.clear(),
            _ => {}
        }
        best = Some(best.map_or(m, |b| b.min(m)));
        found.push((m, d));
    }
    found.sort_by_key(|(m, _)| *m);
    found.into_iter().map(|(_, d)| d).collect()
}

fn index_many<P: AsRef<str> + Sync, T: AsRef<str> + Sync>(
    files: &[(P, T)],
    options: &IndexOptions,
) -> Vec<Arc<FileIndex>> {
    let mut out: Vec<Arc<FileIndex>> = files
        .par_iter()
        .with_min_len(4)
        .map_init(Worker::new, |w, (p, t)| {
            Arc::new(index_file(
                w,
                p.as_ref(),
                t.as_ref(),
                None,
                options,
                options.keep_trees,
            ))
        })
        .collect();
    // Stable: of duplicates, the last one given wins.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    let mut dedup: Vec<Arc<FileIndex>> = Vec::with_capacity(out.len());
    for f in out {
        match dedup.last_mut() {
            Some(last) if last.path == f.path => *last = f,
            _ => dedup.push(f),
        }
    }
    dedup
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Indexes one file; with `previous` (the last version's text and tree), incrementally.
fn index_file(
    worker: &mut Worker,
    path: &str,
    text: &str,
    previous: Option<(&FileIndex, Option<TextEdit>)>,
    options: &IndexOptions,
    keep: bool,
) -> FileIndex {
    let start = Instant::now();
    let language = language_for_path(path, text);
    let lines = Lines::new(text);
    let mut file = FileIndex {
        path: path.to_owned(),
        language,
        bytes: text.len(),
        lines: lines.count(),
        definitions: Vec::new(),
        depths: Vec::new(),
        chunks: Vec::new(),
        headings: Vec::new(),
        degraded: None,
        syntax_errors: false,
        incremental: false,
        elapsed: Duration::ZERO,
        live: None,
    };
    let mut tree = None;
    let mut extra = DefExtra::default();
    match language {
        Language::Markdown => {
            (file.chunks, file.headings) = chunk::markdown(text, &lines, options.chunks);
        }
        Language::Text => file.chunks = chunk::by_lines(text, &lines, options.chunks),
        _ if text.len() > options.max_parse_bytes => {
            file.degraded = Some(Degradation::TooLarge {
                bytes: text.len(),
                cap: options.max_parse_bytes,
            });
        }
        _ => match lang::spec(language) {
            Err(error) => {
                file.degraded = Some(Degradation::ParserFailed {
                    error: error.to_owned(),
                });
            }
            Ok(spec) => {
                // From here: the first file of a language must not pay for compiling its query
                // (hundreds of milliseconds in a debug build on a loaded machine).
                let deadline = Instant::now() + options.parse_timeout;
                // The previous tree, edited to match the new text.
                let old = previous.and_then(|(old, edit)| {
                    let live = old.live.as_ref()?;
                    let tree = live.tree.as_ref().filter(|_| live.language == language)?;
                    let input = input_edit(&live.text, text, edit)?;
                    let mut tree = tree.clone();
                    tree.edit(&input);
                    Some((old, live, tree, input))
                });
                file.incremental = old.is_some();
                let result = worker
                    .parse(spec, text, old.as_ref().map(|o| &o.2), deadline)
                    .and_then(|t| {
                        let extracted = match &old {
                            Some((old, live, old_tree, input)) if !options.exhaustive => {
                                let prev = Previous {
                                    defs: &old.definitions,
                                    extra: &live.extra,
                                    tree: old_tree,
                                    old_text: &live.text,
                                    edit: input,
                                };
                                worker.extract_incremental(spec, path, text, &t, deadline, &prev)?
                            }
                            _ => worker.extract(
                                spec,
                                path,
                                text,
                                &t,
                                deadline,
                                options.exhaustive,
                            )?,
                        };
                        Ok((t, extracted))
                    });
                match result {
                    Ok((
                        t,
                        Extracted {
                            defs,
                            depths,
                            containers,
                            extra: def_extra,
                        },
                    )) => {
                        file.syntax_errors = t.root_node().has_error();
                        file.chunks = chunk::by_definitions(
                            text,
                            &lines,
                            options.chunks,
                            spec.leading,
                            &defs,
                            &containers,
                        );
                        file.definitions = defs;
                        file.depths = depths;
                        tree = Some(t);
                        extra = def_extra;
                    }
                    Err(failure) => {
                        let ms = millis(options.parse_timeout);
                        file.degraded = Some(match failure {
                            Failure::ParseTimeout => Degradation::ParseTimeout { millis: ms },
                            Failure::QueryTimeout => Degradation::QueryTimeout { millis: ms },
                            Failure::Parser(error) => Degradation::ParserFailed { error },
                        });
                    }
                }
            }
        },
    }
    if file.degraded.is_some() {
        file.chunks = chunk::by_lines(text, &lines, options.chunks);
    }
    if keep {
        file.live = Some(Live {
            text: Arc::from(text),
            language,
            tree,
            extra,
        });
    }
    file.elapsed = start.elapsed();
    file
}

/// The tree-sitter edit turning `old` into `new`: `edit` when it is consistent with both texts,
/// else the span between their common prefix and suffix. `None` when the texts are equal.
fn input_edit(old: &str, new: &str, edit: Option<TextEdit>) -> Option<InputEdit> {
    let edit = edit
        .filter(|e| edit_is_consistent(old, new, e))
        .or_else(|| diff(old, new))?;
    let start_position = point_at(old, 0, Point::new(0, 0), edit.start_byte);
    Some(InputEdit {
        start_byte: edit.start_byte,
        old_end_byte: edit.old_end_byte,
        new_end_byte: edit.new_end_byte,
        start_position,
        old_end_position: point_at(old, edit.start_byte, start_position, edit.old_end_byte),
        new_end_position: point_at(new, edit.start_byte, start_position, edit.new_end_byte),
    })
}

fn edit_is_consistent(old: &str, new: &str, e: &TextEdit) -> bool {
    e.start_byte <= e.old_end_byte
        && e.start_byte <= e.new_end_byte
        && e.old_end_byte <= old.len()
        && e.new_end_byte <= new.len()
        && old.len() - e.old_end_byte == new.len() - e.new_end_byte
        && old.is_char_boundary(e.start_byte)
        && old.is_char_boundary(e.old_end_byte)
        && new.is_char_boundary(e.new_end_byte)
        && old.as_bytes()[..e.start_byte] == new.as_bytes()[..e.start_byte]
        && old.as_bytes()[e.old_end_byte..] == new.as_bytes()[e.new_end_byte..]
}

/// The changed span by common prefix and suffix, on char boundaries.
fn diff(old: &str, new: &str) -> Option<TextEdit> {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let mut prefix = common_prefix(a, b);
    if prefix == a.len() && prefix == b.len() {
        return None;
    }
    while !old.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let max_suffix = a.len().min(b.len()) - prefix;
    let mut suffix = common_suffix(&a[prefix..], &b[prefix..]).min(max_suffix);
    while !old.is_char_boundary(a.len() - suffix) || !new.is_char_boundary(b.len() - suffix) {
        suffix -= 1;
    }
    Some(TextEdit {
        start_byte: prefix,
        old_end_byte: a.len() - suffix,
        new_end_byte: b.len() - suffix,
    })
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 128;
    let n = a.len().min(b.len());
    let (la, lb) = (a.len(), b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[la - i - BLOCK..la - i] == b[lb - i - BLOCK..lb - i] {
        i += BLOCK;
    }
    while i < n && a[la - i - 1] == b[lb - i - 1] {
        i += 1;
    }
    i
}

/// The point (row, byte column) of `offset`, counting from `from` at `at`.
fn point_at(text: &str, from: usize, at: Point, offset: usize) -> Point {
    let span = &text.as_bytes()[from..offset];
    let newlines = span.iter().filter(|&&b| b == b'\n').count();
    if newlines == 0 {
        Point::new(at.row, at.column + span.len())
    } else {
        let last = span.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        Point::new(at.row + newlines, span.len() - last - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs() {
        assert_eq!(diff("abc", "abc"), None);
        assert_eq!(
            diff("abXc", "abYYc"),
            Some(TextEdit {
                start_byte: 2,
                old_end_byte: 3,
                new_end_byte: 4
            })
        );
        assert_eq!(
            diff("aaa", "aaaa"),
            Some(TextEdit {
                start_byte: 3,
                old_end_byte: 3,
                new_end_byte: 4
            })
        );
        // Multi-byte characters sharing a leading byte.
        let e = diff("xé", "xè").unwrap_or_else(|| unreachable!());
        assert_eq!((e.start_byte, e.old_end_byte, e.new_end_byte), (1, 3, 3));
        let long_a = "x".repeat(1000) + "A" + &"y".repeat(1000);
        let long_b = "x".repeat(1000) + "BB" + &"y".repeat(1000);
        assert_eq!(
            diff(&long_a, &long_b),
            Some(TextEdit {
                start_byte: 1000,
                old_end_byte: 1001,
                new_end_byte: 1002
            })
        );
        assert_eq!(
            point_at("ab\ncd\ne", 0, Point::new(0, 0), 7),
            Point::new(2, 1)
        );
        assert_eq!(point_at("ab\ncd", 3, Point::new(1, 0), 5), Point::new(1, 2));
    }

    #[test]
    fn shareable_across_threads() {
        fn check<T: Send + Sync>() {}
        check::<WorkspaceIndex>();
        check::<Arc<FileIndex>>();
    }

    #[test]
    fn a_header_switching_language_is_parsed_afresh() {
        let opts = IndexOptions::default();
        let index = WorkspaceIndex::new(opts.clone());
        let index = index.update_file("x.h", "int f(void);\nstruct s { int a; };\n", None);
        assert_eq!(index.file("x.h").map(|f| f.language()), Some(Language::C));
        let cpp = "namespace n {\nclass A { void m(); };\n}\n";
        let index = index.update_file("x.h", cpp, None);
        let file = index.file("x.h").cloned().unwrap_or_else(|| unreachable!());
        assert_eq!(file.language(), Language::Cpp);
        assert!(!file.was_incremental());
        assert_eq!(
            file.definitions(),
            FileIndex::new("x.h", cpp, &opts).definitions()
        );
    }

    /// The exact property of incremental extraction: on the same (incrementally parsed) tree it
    /// finds what a full extraction finds. (Against a fresh parse it can differ on broken code:
    /// tree-sitter's error recovery depends on the previous tree.)
    #[test]
    fn incremental_extraction_equals_full_extraction_of_the_same_tree() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index");
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(e.path()).unwrap_or_default())
            })
            .collect();
        files.sort();
        assert!(files.len() >= 14);
        let snippets = [
            "",
            "}",
            "{",
            "(",
            ")",
            "\"",
            "'''",
            "/*",
            "*/",
            "\n",
            "fn f() {}\n",
            "def g():\n  pass\n",
            "class C { void m() {} }\n",
            "@dec\n",
            "export ",
            "template <class T>\n",
            "end\n",
            "namespace n {\n",
            "impl A for B {\n",
            "    def m(self):\n        return 1\n",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n.max(1) as u64) as usize
        };
        let far = Instant::now() + Duration::from_secs(3600);
        let mut worker = Worker::new();
        let mut checked = 0;
        for (path, text) in &files {
            let language = language_for_path(path, text);
            let Ok(spec) = lang::spec(language) else {
                continue;
            };
            let Ok(mut tree) = worker.parse(spec, text, None, far) else {
                continue;
            };
            let Ok(mut current) = worker.extract(spec, path, text, &tree, far, false) else {
                continue;
            };
            let mut text = text.clone();
            for step in 0..150 {
                let mut start = rand(text.len() + 1);
                while !text.is_char_boundary(start) {
                    start -= 1;
                }
                let len = if step % 7 == 6 { rand(300) } else { rand(30) };
                let mut end = (start + len).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                let insert = snippets[rand(snippets.len())];
                let next = format!("{}{insert}{}", &text[..start], &text[end..]);
                let Some(input) = input_edit(&text, &next, None) else {
                    continue;
                };
                let mut old_tree = tree.clone();
                old_tree.edit(&input);
                let Ok(new_tree) = worker.parse(spec, &next, Some(&old_tree), far) else {
                    continue;
                };
                let prev = Previous {
                    defs: &current.defs,
                    extra: &current.extra,
                    tree: &old_tree,
                    old_text: &text,
                    edit: &input,
                };
                let inc = worker.extract_incremental(spec, path, &next, &new_tree, far, &prev);
                let full = worker.extract(spec, path, &next, &new_tree, far, false);
                let (Ok(inc), Ok(full)) = (inc, full) else {
                    panic!("{path} step {step}: extraction failed");
                };
                assert_eq!(inc.defs, full.defs, "{path} step {step}");
                assert_eq!(inc.depths, full.depths, "{path} step {step}");
                assert_eq!(inc.containers, full.containers, "{path} step {step}");
                assert_eq!(
                    inc.extra.name_starts, full.extra.name_starts,
                    "{path} step {step}"
                );
                checked += 1;
                text = next;
                tree = new_tree;
                current = inc;
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn name_matching() {
        assert_eq!(name_match("parse", "parse"), Some(Match::Exact));
        assert_eq!(name_match("parse_file", "parse"), Some(Match::Prefix));
        assert_eq!(
            name_match("Parse", "parse"),
            Some(Match::CaseInsensitiveExact)
        );
        assert_eq!(
            name_match("ParseFile", "parse"),
            Some(Match::CaseInsensitivePrefix)
        );
        assert_eq!(
            name_match("do_parse", "PARSE"),
            Some(Match::CaseInsensitiveSubstring)
        );
        assert_eq!(
            name_match("Ärger", "ärg"),
            Some(Match::CaseInsensitivePrefix)
        );
        assert_eq!(name_match("x", "y"), None);
        assert!(path_matches("src/a.rs", "src"));
        assert!(path_matches("src/a.rs", "src/"));
        assert!(path_matches("src/a.rs", "src/a.rs"));
        assert!(!path_matches("srcx/a.rs", "src"));
    }
}
