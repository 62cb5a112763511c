//! rlm-lsp: ask questions of a whole codebase with Recursive Language Models.
//!
//! The workspace lives as variables in a sandboxable Python REPL worker; the root model writes code
//! against it and calls sub-models on the pieces it chose. See `docs/architecture.md`.

pub mod acp;
pub mod config;
pub mod engine;
pub mod index;
pub mod llm;
pub mod lsp;
pub mod mcp;
pub mod repl;
pub mod session;
pub mod workspace;

/// The hidden entry points of any binary that runs the engine, which re-executes the current
/// binary as its REPL worker (`__repl-worker`) and the local model's keeper (`__llama-keeper`);
/// also the scripted model server (`__scripted-model`) for editor tests. Returns the exit code
/// when the command line names one; call it before parsing the user-facing command line.
pub fn hidden_subcommand() -> Option<i32> {
    // args_os: keeper arguments are paths, which need not be UTF-8 (std::env::args would panic).
    let mut args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    match args.next().as_deref() {
        Some(repl::WORKER_SUBCOMMAND) => Some(repl::worker_main()),
        Some(llm::local::KEEPER_SUBCOMMAND) => Some(llm::local::keeper_main(args.collect())),
        Some(llm::scripted::SCRIPTED_SUBCOMMAND) => {
            Some(llm::scripted::scripted_main(args.collect()))
        }
        _ => None,
    }
}

/// Logs to stderr (stdout may carry a protocol), filtered by `RLM_LOG` (default `warn`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RLM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}
