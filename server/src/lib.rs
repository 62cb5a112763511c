//! rlm-lsp: ask questions of a whole codebase with Recursive Language Models.
//!
//! The workspace lives as variables in a sandboxable Python REPL worker; the root model writes code
//! against it and calls sub-models on the pieces it chose. See `docs/architecture.md`.

pub mod config;
pub mod engine;
pub mod index;
pub mod llm;
pub mod lsp;
pub mod repl;
pub mod workspace;
