//! The code-aware index: tree-sitter definitions and chunks per file, and fast grep.
//!
//! Plain types only (no LSP). `Definition` and `Chunk` are what the REPL's `symbols()`,
//! `outline()` and `chunks` expose, and what hover and refactors will build on.

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
    /// The first line of the definition, trimmed (its signature, for hover and outlines).
    pub signature: String,
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
