//! One file's index ([`FileIndex`]) and how it is built: parsed under a deadline, incrementally
//! from the last version's tree when there is one, cut into chunks.

use super::edit::input_edit;
use super::{Degradation, IndexOptions, TextEdit};
use crate::index::chunk::{self, ChunkRec, Label, Lines};
use crate::index::lang::{self, language_for_path};
use crate::index::parse::{DefExtra, Extracted, Failure, Previous, Worker};
use crate::index::{Chunk, Definition, Language};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tree_sitter::Tree;

/// Text and syntax tree kept for incremental re-parsing.
pub(super) struct Live {
    pub(super) text: Arc<str>,
    /// The language the tree was parsed as (a `.h` file may switch between C and C++).
    language: Language,
    tree: Option<Tree>,
    /// Facts about the definitions that an incremental re-extraction needs.
    extra: DefExtra,
}

/// The index of one file. Immutable; shared between index versions.
pub struct FileIndex {
    pub(super) path: String,
    pub(super) language: Language,
    pub(super) bytes: usize,
    pub(super) lines: u32,
    pub(super) definitions: Vec<Definition>,
    depths: Vec<u16>,
    pub(super) chunks: Vec<ChunkRec>,
    /// Markdown heading titles (chunk names refer to them).
    headings: Vec<String>,
    pub(super) degraded: Option<Degradation>,
    pub(super) syntax_errors: bool,
    incremental: bool,
    pub(super) elapsed: Duration,
    pub(super) live: Option<Live>,
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

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Indexes one file; with `previous` (the last version's text and tree), incrementally.
pub(super) fn index_file(
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
