//! The code index a run queries, filled in the background: a first question never waits for the
//! whole workspace to be parsed; `symbols()`, `outline()`, `chunks` and the structural helpers
//! answer from what is indexed when they are called, and pick up more as batches land.
//! `search()` ranks with a BM25 built on first use for each index version and kept.

use crate::index::bm25::Bm25;
use crate::index::{
    Chunk, DefKind, Definition, Implementation, IndexOptions, WorkspaceIndex, find_implementations,
};
use crate::repl::{
    IndexQueries, SearchHit, SymbolQuery, exact_definitions, filter_definitions,
    innermost_function, search_chunks, search_document,
};
use crate::workspace::Snapshot;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

/// Files parsed per published version: small enough that early queries see progress, large
/// enough that merging versions costs little.
const BATCH_FILES: usize = 512;

pub struct LiveIndex {
    current: RwLock<Arc<WorkspaceIndex>>,
    complete: AtomicBool,
    /// Signals `complete` to `wait`.
    done: (Mutex<bool>, Condvar),
    total_files: usize,
    /// `chunks()` of one version, built once.
    chunks: Mutex<Option<(u64, Arc<Vec<Chunk>>)>>,
    /// The BM25 of `search()` for one version (over that version's chunks), built once.
    search: Mutex<Option<(u64, Arc<SearchIndex>)>>,
    /// The text of files the index holds no text for (those never updated).
    snapshot: Arc<Snapshot>,
    /// Edits that arrived while the background build ran (`None`: the file left the workspace);
    /// the build applies them when it finishes. Its lock also orders edits after the build.
    pending: Mutex<Vec<(String, Option<String>)>>,
}

impl LiveIndex {
    /// Starts indexing `snapshot` on a background thread (which itself uses every core).
    pub fn spawn(snapshot: Arc<Snapshot>, options: IndexOptions) -> Arc<LiveIndex> {
        let live = Arc::new(LiveIndex {
            current: RwLock::new(Arc::new(WorkspaceIndex::new(options))),
            complete: AtomicBool::new(snapshot.files.is_empty()),
            done: (Mutex::new(snapshot.files.is_empty()), Condvar::new()),
            total_files: snapshot.files.len(),
            chunks: Mutex::new(None),
            search: Mutex::new(None),
            snapshot: snapshot.clone(),
            pending: Mutex::new(Vec::new()),
        });
        if snapshot.files.is_empty() {
            return live;
        }
        let worker = live.clone();
        std::thread::Builder::new()
            .name("rlm-index".into())
            .spawn(move || {
                for batch in snapshot.files.chunks(BATCH_FILES) {
                    let files: Vec<(&str, &str)> = batch
                        .iter()
                        .map(|f| (f.path.as_str(), f.text.as_str()))
                        .collect();
                    let next = worker.current().extend(&files);
                    *worker.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
                }
                let mut pending = worker.pending.lock().unwrap_or_else(|e| e.into_inner());
                for (path, text) in pending.drain(..) {
                    worker.apply(&path, text.as_deref());
                }
                worker.complete.store(true, Ordering::Release);
                drop(pending);
                // The parallel parse leaves most of its scratch memory in malloc's per-thread
                // arenas; hand it back so an idle server holds only the snapshot and the index.
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only releases free memory; it is thread-safe.
                unsafe {
                    libc::malloc_trim(0);
                }
                let (lock, cvar) = &worker.done;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cvar.notify_all();
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::error!("cannot start the indexing thread: {e}"));
        live
    }

    /// Re-indexes one file: an edited buffer, or a file read again from disk (`None`: it is no
    /// longer in the workspace). Incremental for a file edited before. During the background
    /// build the edit waits for the build, so it is never lost under a batch.
    pub fn update_file(&self, path: &str, text: Option<&str>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_complete() {
            drop(pending);
            self.apply(path, text);
        } else {
            pending.push((path.to_string(), text.map(str::to_string)));
        }
    }

    fn apply(&self, path: &str, text: Option<&str>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let next = match text {
            Some(t) => current.update_file(path, t, None),
            None => current.remove_file(path),
        };
        *current = Arc::new(next);
    }

    /// The latest published version.
    pub fn current(&self) -> Arc<WorkspaceIndex> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    /// Files indexed so far, and in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.current().len(), self.total_files)
    }

    /// Blocks until the index is complete or `timeout` passes; true when complete.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (lock, cvar) = &self.done;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// The chunks of one index version and their BM25.
struct SearchIndex {
    chunks: Arc<Vec<Chunk>>,
    bm25: Bm25,
}

/// The source of `path` in `index`: the text an update left there, else the snapshot's.
fn file_text<'a>(index: &'a WorkspaceIndex, snapshot: &'a Snapshot, path: &str) -> Option<&'a str> {
    match index.file(path) {
        Some(f) => f
            .text()
            .or_else(|| snapshot.get(path).map(|s| s.text.as_str())),
        None => None,
    }
}

impl LiveIndex {
    /// The BM25 over the current version's chunks, built on first use (other callers wait for
    /// it rather than build their own).
    fn search_index(&self) -> Arc<SearchIndex> {
        let index = self.current();
        let mut cache = self.search.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((v, s)) = &*cache
            && *v == index.version()
        {
            return s.clone();
        }
        let chunks = self.chunks_of(&index);
        let snapshot = &*self.snapshot;
        let bm25 = Bm25::from_fn(chunks.len(), |i| {
            let c = &chunks[i];
            let text = file_text(&index, snapshot, &c.path)
                .and_then(|t| t.get(c.start_byte..c.end_byte))
                .unwrap_or("");
            search_document(c, text)
        });
        let built = Arc::new(SearchIndex { chunks, bm25 });
        *cache = Some((index.version(), built.clone()));
        built
    }

    /// `chunks()` of `index` (cached for the current version).
    fn chunks_of(&self, index: &WorkspaceIndex) -> Arc<Vec<Chunk>> {
        let mut cache = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        match &*cache {
            Some((v, chunks)) if *v == index.version() => chunks.clone(),
            _ => {
                let chunks = Arc::new(index.chunks().collect::<Vec<_>>());
                *cache = Some((index.version(), chunks.clone()));
                chunks
            }
        }
    }
}

impl IndexQueries for LiveIndex {
    fn version(&self) -> u64 {
        self.current().version()
    }

    fn symbols(&self, query: &SymbolQuery) -> Vec<Definition> {
        let index = self.current();
        // The index matches plain paths and directories itself; globs go through the REPL's
        // filter, the same one `grep` uses.
        let glob = query
            .path
            .as_deref()
            .is_some_and(|p| p.contains(['*', '?', '[']));
        let path = if glob { None } else { query.path.as_deref() };
        let found = index.symbols(query.name.as_deref(), query.kind, path);
        if glob {
            let only_path = SymbolQuery {
                name: None,
                kind: None,
                path: query.path.clone(),
            };
            filter_definitions(found, &only_path)
        } else {
            found.into_iter().cloned().collect()
        }
    }

    fn outline(&self, path: &str) -> Vec<(u32, Definition)> {
        self.current()
            .outline(path)
            .into_iter()
            .map(|(depth, d)| (depth as u32, d.clone()))
            .collect()
    }

    fn wait_complete(&self, timeout: Duration) -> bool {
        self.wait(timeout)
    }

    fn summary(&self) -> Option<String> {
        let stats = self.current().statistics();
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for lang in stats.languages.values() {
            for (kind, n) in &lang.kinds {
                *kinds.entry(kind.to_string()).or_default() += n;
            }
        }
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let kinds = kinds
            .iter()
            .take(8)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (done, total) = self.progress();
        let state = if self.is_complete() {
            String::new()
        } else {
            format!(" (still indexing: {done} of {total} files so far)")
        };
        Some(format!(
            "Definitions: {}{}{state}",
            stats.definitions,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({kinds})")
            }
        ))
    }

    fn chunks(&self) -> Arc<Vec<Chunk>> {
        self.chunks_of(&self.current())
    }

    fn definitions(&self, name: &str) -> Vec<Definition> {
        exact_definitions(self.current().definitions(), name)
    }

    fn enclosing(&self, locations: &[(String, u32)]) -> Vec<Option<Definition>> {
        let index = self.current();
        locations
            .iter()
            .map(|(path, line)| {
                let defs = index.file(path).map_or(&[][..], |f| f.definitions());
                innermost_function(defs, *line).cloned()
            })
            .collect()
    }

    fn implementations(&self, name: &str) -> Vec<Implementation> {
        let index = self.current();
        let defs: Vec<&Definition> = index
            .definitions()
            .filter(|d| {
                matches!(
                    d.kind,
                    DefKind::Class
                        | DefKind::Struct
                        | DefKind::Interface
                        | DefKind::Enum
                        | DefKind::Impl
                        | DefKind::Type
                ) || (d.kind == DefKind::Method && d.language == crate::index::Language::Go)
            })
            .collect();
        let snapshot = &*self.snapshot;
        find_implementations(&defs, name, |d: &Definition| {
            file_text(&index, snapshot, &d.path).and_then(|t| t.get(d.start_byte..d.end_byte))
        })
    }

    fn search(&self, query: &str, k: usize) -> Result<Vec<SearchHit>, String> {
        let s = self.search_index();
        Ok(search_chunks(&s.bm25, &s.chunks, query, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::DefKind;
    use crate::workspace::{IndexStats, SourceFile};

    #[test]
    fn fills_in_the_background_and_answers_queries() {
        let files = (0..1500)
            .map(|i| SourceFile {
                path: format!("src/m{i:04}.rs"),
                text: format!("pub fn f{i}() {{}}\nstruct S{i};\n").into(),
            })
            .collect();
        let snap = Arc::new(Snapshot {
            root: "/w".into(),
            files,
            stats: IndexStats::default(),
        });
        let live = LiveIndex::spawn(snap, IndexOptions::default());
        assert!(live.wait(Duration::from_secs(60)), "indexing finished");
        assert!(live.is_complete());
        assert_eq!(live.progress(), (1500, 1500));
        let q = |name: &str, path: Option<&str>| SymbolQuery {
            name: Some(name.into()),
            kind: Some(DefKind::Function),
            path: path.map(str::to_string),
        };
        let found = live.symbols(&q("f1234", None));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "src/m1234.rs");
        assert_eq!(live.symbols(&q("f1234", Some("src/m00*.rs"))).len(), 0);
        assert_eq!(live.symbols(&q("f7", Some("src/m000*.rs"))).len(), 1);
        assert_eq!(live.outline("src/m0001.rs").len(), 2);
        let c1 = live.chunks();
        assert!(
            Arc::ptr_eq(&c1, &live.chunks()),
            "one chunk list per version"
        );
        assert!(c1.len() >= 1500);

        // An edited buffer is re-indexed; a removed file leaves the index.
        live.update_file("src/m0001.rs", Some("pub fn renamed() {}\n"));
        assert_eq!(live.symbols(&q("renamed", None)).len(), 1);
        assert_eq!(live.symbols(&q("f1", Some("src/m0001.rs"))).len(), 0);
        live.update_file("src/m0002.rs", None);
        assert_eq!(live.outline("src/m0002.rs").len(), 0);
        assert!(
            !Arc::ptr_eq(&c1, &live.chunks()),
            "a new version, new chunks"
        );
    }

    #[test]
    fn structural_queries_read_the_source_and_search_is_built_once_per_version() {
        let java = "interface Shape { double area(); }\n\npublic class Circle\n        extends Base\n        implements Shape {\n    double area() { return 1; }\n    void draw() { area(); }\n}\n";
        let files = vec![
            SourceFile {
                path: "src/Circle.java".into(),
                text: java.to_string().into(),
            },
            SourceFile {
                path: "src/util.rs".into(),
                text: "/// Parses the configuration file.\npub fn parse_config() {}\n"
                    .to_string()
                    .into(),
            },
        ];
        let snap = Arc::new(Snapshot {
            root: "/w".into(),
            files,
            stats: IndexStats::default(),
        });
        let live = LiveIndex::spawn(snap, IndexOptions::default());
        assert!(live.wait(Duration::from_secs(60)));
        // `implements` on the third line of the header: read from the source.
        let impls = live.implementations("Shape");
        assert_eq!(
            impls
                .iter()
                .map(|i| (i.type_name.as_str(), i.start_line))
                .collect::<Vec<_>>(),
            [("Circle", 3)]
        );
        assert_eq!(live.definitions("area").len(), 2);
        let around = live.enclosing(&[("src/Circle.java".into(), 7), ("src/util.rs".into(), 1)]);
        assert_eq!(around[0].as_ref().map(|d| d.name.as_str()), Some("draw"));
        assert!(around[1].is_none());

        let hits = live.search("parse the config", 5).unwrap_or_default();
        assert_eq!(hits[0].chunk.path, "src/util.rs", "{hits:?}");
        let first = live.search_index();
        assert!(
            Arc::ptr_eq(&first, &live.search_index()),
            "one BM25 per version"
        );
        live.update_file("src/util.rs", Some("pub fn load_settings() {}\n"));
        assert!(
            !Arc::ptr_eq(&first, &live.search_index()),
            "rebuilt for a new version"
        );
        let hits = live.search("load settings", 5).unwrap_or_default();
        assert_eq!(
            hits[0].chunk.name.as_deref(),
            Some("load_settings"),
            "{hits:?}"
        );
    }

    #[test]
    fn edits_during_the_build_are_applied_after_it() {
        let files = (0..3000)
            .map(|i| SourceFile {
                path: format!("m{i:04}.rs"),
                text: format!("fn f{i}() {{}}\n").into(),
            })
            .collect();
        let snap = Arc::new(Snapshot {
            root: "/w".into(),
            files,
            stats: IndexStats::default(),
        });
        let live = LiveIndex::spawn(snap, IndexOptions::default());
        // Most likely while batches are still landing; either way the edit must win.
        live.update_file("m2999.rs", Some("fn edited() {}\n"));
        assert!(live.wait(Duration::from_secs(60)));
        let q = SymbolQuery {
            name: Some("edited".into()),
            kind: None,
            path: None,
        };
        assert_eq!(live.symbols(&q).len(), 1);
        assert_eq!(live.progress().0, 3000);
    }
}
