//! The code-aware index: tree-sitter definitions and chunks per file, and fast grep.
//!
//! Plain types only (no LSP). `Definition` and `Chunk` are what the REPL's `symbols()`,
//! `outline()` and `chunks` expose, and what hover and refactors will build on.
//!
//! # Definitions
//!
//! Each language has its own query (`queries/<language>.scm`, not the grammars' bundled tags
//! queries): `@definition.<kind>` marks a definition's node, `@name` its name, `@parent` an
//! explicit parent (a Go method's receiver type), `@detail` extra information (the trait of a Rust
//! `impl Trait for Type`), `@wrapper` a node whose range belongs to the single definition it
//! holds (Python decorators, JS/TS `export`, C++ `template <...>`, Go `type`/`const` keywords).
//! Code then:
//! - assigns parents by range: the innermost enclosing class, struct, enum, interface, impl,
//!   module, function or method (constants, types and macros hold nothing);
//! - makes a function directly inside a class, struct, enum, interface or impl a `method` (Ruby:
//!   inside a module too), so every function appears once;
//! - drops constants inside function bodies (locals);
//! - splits a qualified C++ name (`void Foo::bar() {}`): name `bar`, parent `Foo`, kind `method`
//!   (the class of `a::B<T>::c` is `B`); a method declared in its class and defined outside it
//!   appears twice (declaration and definition), as overloads do;
//! - names a Rust `impl` after its type without path or generics (`impl<T> fmt::Display for
//!   foo::Bar<T>` is `impl Bar`, detail `fmt::Display`).
//!
//! A definition's range is its node's, extended by its wrapper: a decorated Python function
//! starts at its first decorator, an exported JS function at `export`. Its `signature` is the
//! line holding the name (the `def` line, not the decorator). Doc comments and attributes above
//! a definition are not in its range, but are in its chunk.
//!
//! `.h` headers are C unless they clearly are C++ (see `lang::h_is_cpp`).
//!
//! Queries do not run over every node: a walk follows only the node kinds where definitions live
//! (module, class, namespace and function bodies, statement blocks; see `lang::scopes`) and runs
//! the query anchored at each node where a pattern starts. Skipping expression subtrees halves the
//! index's cost; a definition nested in an expression (a `fn` inside a closure) is found only with
//! [`IndexOptions::exhaustive`]. On this repository and the crates of its lock file the walk finds
//! 99.9% of what the exhaustive query finds.
//!
//! # Chunks
//!
//! See [`ChunkOptions`] and the rules in `chunk.rs`: every line of every file is in
//! exactly one chunk; definitions (with the comments right above them) are chunks; a large one is
//! cut at its nested definitions or into balanced pieces named after it (`name` = `parent` = the
//! definition's name); code between definitions is `lines`; Markdown is cut by headings
//! (`section`); anything else into `lines` windows.
//!
//! # Bounded work
//!
//! Parsing and the query share a per-file deadline ([`IndexOptions::parse_timeout`], 500 ms) through
//! tree-sitter's progress callbacks; files over [`IndexOptions::max_parse_bytes`] (4 MiB) are not
//! parsed. Either way the file degrades to line chunks and its [`Degradation`] is recorded in the
//! statistics. Nothing recurses over a syntax tree, so deep nesting costs heap, not stack.
//!
//! # Versions
//!
//! A [`WorkspaceIndex`] is immutable: a sorted vector of `Arc<FileIndex>`. Updates
//! ([`WorkspaceIndex::update_file`], [`WorkspaceIndex::reload_file`], [`WorkspaceIndex::extend`])
//! return a new version sharing every unchanged file, so runs holding an older version keep their
//! view. Trees are kept only for files that came from an update (they take several times the
//! source's size); an updated file's next update re-parses incrementally.

pub mod bm25;
pub mod grep;

mod chunk;
mod implementations;
mod lang;
mod parse;
mod workspace_index;

pub use chunk::ChunkOptions;
pub use implementations::{Implementation, bases, find_implementations};
pub use lang::language_for_path;
pub use workspace_index::{
    Degradation, DegradedFile, FileIndex, IndexError, IndexOptions, IndexStatistics, LanguageStats,
    TextEdit, WorkspaceIndex,
};

use serde::{Deserialize, Serialize};

/// Languages with tree-sitter support, by the names the index statistics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Rust,
    Python,
    Javascript,
    Typescript,
    Tsx,
    Go,
    Java,
    C,
    Cpp,
    Ruby,
    CSharp,
    Php,
    Bash,
    Markdown,
    /// Anything else: chunked by lines.
    Text,
}

/// What a definition is. Languages map their own node kinds onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefKind {
    Function,
    Method,
    Class,
    Struct,
    Enum,
    /// Traits, interfaces, protocols.
    Interface,
    /// Rust `impl` blocks (named after their type, with the trait in `detail`).
    Impl,
    /// Modules and namespaces.
    Module,
    Constant,
    /// Type aliases and typedefs.
    Type,
    /// Macros: Rust `macro_rules!`, C/C++ function-like `#define`.
    Macro,
}

impl DefKind {
    /// Every kind, in declaration order.
    pub const ALL: [DefKind; 11] = [
        DefKind::Function,
        DefKind::Method,
        DefKind::Class,
        DefKind::Struct,
        DefKind::Enum,
        DefKind::Interface,
        DefKind::Impl,
        DefKind::Module,
        DefKind::Constant,
        DefKind::Type,
        DefKind::Macro,
    ];

    /// The lowercase name used in chunks, statistics and the REPL (`function`, `impl`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DefKind::Function => "function",
            DefKind::Method => "method",
            DefKind::Class => "class",
            DefKind::Struct => "struct",
            DefKind::Enum => "enum",
            DefKind::Interface => "interface",
            DefKind::Impl => "impl",
            DefKind::Module => "module",
            DefKind::Constant => "constant",
            DefKind::Type => "type",
            DefKind::Macro => "macro",
        }
    }

    /// The inverse of [`DefKind::as_str`].
    pub fn parse(name: &str) -> Option<DefKind> {
        DefKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Kinds whose range holds other definitions that name them as parent.
    pub fn is_container(self) -> bool {
        !matches!(self, DefKind::Constant | DefKind::Type | DefKind::Macro)
    }
}

impl std::fmt::Display for DefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Language {
    /// Every language, in declaration order.
    pub const ALL: [Language; 15] = [
        Language::Rust,
        Language::Python,
        Language::Javascript,
        Language::Typescript,
        Language::Tsx,
        Language::Go,
        Language::Java,
        Language::C,
        Language::Cpp,
        Language::Ruby,
        Language::CSharp,
        Language::Php,
        Language::Bash,
        Language::Markdown,
        Language::Text,
    ];

    /// The name used in statistics and the REPL (the serde name: `rust`, `c_sharp`, `tsx`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Javascript => "javascript",
            Language::Typescript => "typescript",
            Language::Tsx => "tsx",
            Language::Go => "go",
            Language::Java => "java",
            Language::C => "c",
            Language::Cpp => "cpp",
            Language::Ruby => "ruby",
            Language::CSharp => "c_sharp",
            Language::Php => "php",
            Language::Bash => "bash",
            Language::Markdown => "markdown",
            Language::Text => "text",
        }
    }

    /// The inverse of [`Language::as_str`].
    pub fn parse(name: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// Whether files in this language are parsed with tree-sitter for definitions.
    pub fn has_grammar(self) -> bool {
        !matches!(self, Language::Markdown | Language::Text)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One definition in one file. Lines are 1-based and inclusive; bytes are a half-open range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub name: String,
    pub kind: DefKind,
    pub language: Language,
    pub path: String,
    pub start_byte: usize,
    pub end_byte: usize,
    pub start_line: u32,
    pub end_line: u32,
    /// The enclosing definition's name (a method's class or impl), if any.
    pub parent: Option<String>,
    /// The line that names the definition, trimmed and capped at 200 characters (its signature,
    /// for hover and outlines): for a decorated or annotated definition this is the `def`/method
    /// line, not the decorator.
    pub signature: String,
    /// Extra information where a language has it: the trait of a Rust `impl Trait for Type`.
    pub detail: Option<String>,
}

/// A piece of a file sized for reading or delegating to a sub-model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub path: String,
    /// A `DefKind` name (`function`, `class`, ...), `section` for a Markdown heading, or `lines`.
    pub kind: String,
    /// The definition or heading name; `None` for line chunks.
    pub name: Option<String>,
    /// For a piece of a split definition, the definition it belongs to; else its parent.
    pub parent: Option<String>,
    pub language: Language,
    pub start_byte: usize,
    pub end_byte: usize,
    pub start_line: u32,
    pub end_line: u32,
}
