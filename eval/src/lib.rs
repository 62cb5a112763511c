//! rlm-eval: measures when the RLM engine answers better than the same model prompted directly
//! (the whole workspace in the prompt, truncated to the window) or with BM25 retrieval, at what
//! cost and latency, and how that changes with workspace size. See `docs/eval.md`.

pub mod answer;
pub mod behaviours;
pub mod crate_check;
pub mod facts;
pub mod generate;
pub mod harness;
pub mod methods;
pub mod plant;
pub mod refactor;
pub mod refactor_run;
pub mod refs;
pub mod report;
pub mod score;
pub mod task;
