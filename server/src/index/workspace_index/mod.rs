//! The workspace index: one immutable [`FileIndex`] per file behind an `Arc`, shared between
//! versions. Updating a file builds a new [`WorkspaceIndex`] that shares every other file, so runs
//! holding the previous version keep a consistent view.

mod edit;
mod file;

use super::chunk::ChunkOptions;
use super::parse::Worker;
use super::{Chunk, DefKind, Definition, Language};
pub use file::FileIndex;
use file::index_file;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests;
