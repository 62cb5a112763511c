//! The methods compared, all on the same model and endpoint:
//!
//! - `rlm`: this project's engine, as `rlm-lsp ask` runs it;
//! - `rlm-no-subcalls`: the same engine with sub-calls refused (the paper's ablation; see
//!   [`RefuseServer`]);
//! - `rlm-no-recipes`, `rlm-no-evidence`: the same engine with `EngineConfig::recipes`, resp.
//!   `EngineConfig::evidence`, turned off (ablations of this project's additions);
//! - `direct`: the workspace's files with their paths in one prompt, cut to a token window and
//!   marked as truncated when they do not fit; the question comes after the files, so a server's
//!   prompt cache serves every question on one workspace from one prefill;
//! - `retrieval`: BM25 top-k index chunks filling a token budget, then the question.

use rlm_lsp::engine::{EngineConfig, Event, LiveIndex, Models};
use rlm_lsp::index::bm25::Bm25;
use rlm_lsp::llm::pricing::PriceTable;
use rlm_lsp::llm::scripted::{ScriptedServer, SubRule};
use rlm_lsp::llm::{ChatClient, ChatMessage, Endpoint, LlmError, Provider, RetryPolicy, Usage};
use rlm_lsp::session::{Answer, Runner, Workspace};
use rlm_lsp::workspace::Snapshot;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Method {
    #[serde(rename = "direct")]
    Direct,
    #[serde(rename = "retrieval")]
    Retrieval,
    #[serde(rename = "rlm")]
    Rlm,
    #[serde(rename = "rlm-no-subcalls")]
    RlmNoSubcalls,
    #[serde(rename = "rlm-no-recipes")]
    RlmNoRecipes,
    #[serde(rename = "rlm-no-evidence")]
    RlmNoEvidence,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Direct,
        Method::Retrieval,
        Method::Rlm,
        Method::RlmNoSubcalls,
        Method::RlmNoRecipes,
        Method::RlmNoEvidence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Direct => "direct",
            Method::Retrieval => "retrieval",
            Method::Rlm => "rlm",
            Method::RlmNoSubcalls => "rlm-no-subcalls",
            Method::RlmNoRecipes => "rlm-no-recipes",
            Method::RlmNoEvidence => "rlm-no-evidence",
        }
    }

    /// The engine's methods (the RLM and its ablations).
    pub fn is_rlm(self) -> bool {
        !matches!(self, Method::Direct | Method::Retrieval)
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
                format!("unknown method {s:?}: use {}", all.join(", "))
            })
    }
}

/// Tokens, calls, cost and latency of one model in one role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UsageRow {
    pub role: String,
    pub model: String,
    pub depth: u32,
    pub calls: u32,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: Option<f64>,
    pub latency_ms: u64,
}

/// What one method did on one question.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub answer: String,
    pub error: Option<String>,
    pub usage: Vec<UsageRow>,
    pub wall_ms: u64,
    pub iterations: u32,
    pub sub_calls: u32,
    pub stop_reason: Option<String>,
    /// Estimated tokens (characters / 4) of workspace text placed in the prompt (`direct`,
    /// `retrieval`); 0 for the RLM methods, whose root prompt holds metadata only.
    pub context_tokens: u64,
    /// The largest prompt of any one call, in tokens as the server counted them.
    pub max_prompt_tokens: u64,
    /// `direct`: the workspace did not fit the window and was cut.
    pub truncated: bool,
    /// The RLM methods: the run's trajectory (root messages, cells, sub-calls).
    pub events: Vec<Event>,
    /// A prompt did not fit the model's window: the server refused it, or (RLM) one call's
    /// prompt exceeded `window_tokens`.
    pub overflow: bool,
}

/// Settings shared by every method of a run.
#[derive(Debug, Clone)]
pub struct MethodOptions {
    /// The model's context window in tokens (for the local model: one llama-server slot).
    pub window_tokens: u64,
    /// The window the `direct` method fills (at most `window_tokens`).
    pub direct_window_tokens: u64,
    /// Tokens of chunks the `retrieval` method puts in its prompt.
    pub retrieval_tokens: u64,
    /// `max_tokens` of a `direct` or `retrieval` answer.
    pub answer_max_tokens: u32,
    /// `max_tokens` of each RLM root and sub-call.
    pub rlm_max_tokens: u32,
    /// Characters per token assumed when cutting text to a token budget (code tokenizes denser
    /// than prose; a prompt the server still refuses is cut by a fifth and retried).
    pub prompt_chars_per_token: f64,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            window_tokens: 16_384,
            direct_window_tokens: 16_384,
            retrieval_tokens: 4_000,
            answer_max_tokens: 256,
            rlm_max_tokens: 1024,
            prompt_chars_per_token: 3.5,
        }
    }
}

/// The models and settings every method uses.
pub struct Methods {
    pub root: ChatClient,
    pub sub: ChatClient,
    /// `direct` and `retrieval` answers (the root endpoint with `answer_max_tokens`).
    pub answer: ChatClient,
    /// Refuses every sub-call, for `rlm-no-subcalls`.
    pub refuse: ChatClient,
    pub engine_cfg: EngineConfig,
    pub opts: MethodOptions,
    pub prices: PriceTable,
    /// Where each RLM run's trajectory is written (`TASK-METHOD.jsonl`), if anywhere.
    pub trajectories: Option<std::path::PathBuf>,
    _refuse_server: RefuseServer,
}

/// A copy of `client` with another `max_tokens` and no response cache (measurements must not be
/// served from a cache).
pub fn with_max_tokens(client: &ChatClient, max_tokens: u32, retries: u32) -> ChatClient {
    ChatClient::new(Endpoint {
        max_tokens,
        ..client.endpoint().clone()
    })
    .with_provider(client.provider())
    .with_retry(RetryPolicy {
        max_retries: retries,
        ..RetryPolicy::default()
    })
}

impl Methods {
    /// The models and engine configuration of `runner` (as `rlm-lsp ask` resolves them from
    /// the same settings), each call with `retries` retries.
    pub async fn from_runner(
        runner: &Runner,
        opts: MethodOptions,
        retries: u32,
    ) -> anyhow::Result<Methods> {
        Methods::new(runner.models(), runner.config().clone(), opts, retries).await
    }

    /// `models` as `ModelSettings::resolve` gave them; `engine_cfg` with the run limits applied.
    pub async fn new(
        models: &Models,
        engine_cfg: EngineConfig,
        opts: MethodOptions,
        retries: u32,
    ) -> anyhow::Result<Methods> {
        let refuse_server = RefuseServer::start().await?;
        let refuse = ChatClient::new(Endpoint {
            base_url: refuse_server.base_url(),
            model: models.sub.endpoint().model.clone(),
            api_key: None,
            api_key_env: None,
            timeout: Duration::from_secs(10),
            max_tokens: opts.rlm_max_tokens,
            temperature: 0.0,
        })
        .with_provider(Provider::OpenAi)
        .with_retry(RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        });
        Ok(Methods {
            root: with_max_tokens(&models.root, opts.rlm_max_tokens, retries),
            sub: with_max_tokens(&models.sub, opts.rlm_max_tokens, retries),
            answer: with_max_tokens(&models.root, opts.answer_max_tokens, retries),
            refuse,
            engine_cfg,
            opts,
            prices: PriceTable::load().map_err(|e| anyhow::anyhow!("price table: {e}"))?,
            trajectories: None,
            _refuse_server: refuse_server,
        })
    }

    pub async fn run(&self, method: Method, ws: &Prepared, question: &str) -> Outcome {
        let started = Instant::now();
        let mut out = match method {
            Method::Direct => self.direct(ws, question).await,
            Method::Retrieval => self.retrieval(ws, question).await,
            Method::Rlm | Method::RlmNoSubcalls | Method::RlmNoRecipes | Method::RlmNoEvidence => {
                self.rlm(method, ws, question).await
            }
        };
        out.wall_ms = started.elapsed().as_millis() as u64;
        out
    }

    async fn rlm(&self, method: Method, ws: &Prepared, question: &str) -> Outcome {
        let mut cfg = self.engine_cfg.clone();
        match method {
            Method::RlmNoRecipes => cfg.recipes = false,
            Method::RlmNoEvidence => cfg.evidence = false,
            _ => {}
        }
        let (models, question) = if method == Method::RlmNoSubcalls {
            cfg.max_depth = 0;
            (
                Models {
                    root: self.root.clone(),
                    sub: self.refuse.clone(),
                    child_root: None,
                },
                format!("{question}\n\n{NO_SUBCALLS_NOTE}"),
            )
        } else {
            (
                Models {
                    root: self.root.clone(),
                    sub: self.sub.clone(),
                    child_root: None,
                },
                question.to_string(),
            )
        };
        // The run `rlm-lsp ask` makes, through the same façade.
        let runner = Runner::from_models(models, cfg);
        match ws.workspace.ask(&runner, &question, None).await {
            Ok(Answer { report: r, .. }) => {
                let max_prompt = r
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        Event::RootMessage { usage: Some(u), .. } => Some(u.prompt_tokens),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(0);
                Outcome {
                    answer: r.answer,
                    usage: r
                        .usage
                        .iter()
                        .map(|u| UsageRow {
                            role: u.role.clone(),
                            model: u.model.clone(),
                            depth: u.depth,
                            calls: u.calls,
                            prompt_tokens: u.usage.prompt_tokens,
                            cached_tokens: u.usage.cached_tokens,
                            completion_tokens: u.usage.completion_tokens,
                            cost_usd: u.cost_usd,
                            latency_ms: u.latency_ms,
                        })
                        .collect(),
                    iterations: r.iterations,
                    sub_calls: r.sub_calls,
                    stop_reason: Some(r.stop_reason.to_string()),
                    max_prompt_tokens: max_prompt,
                    overflow: max_prompt > self.opts.window_tokens,
                    events: r.events,
                    ..Outcome::default()
                }
            }
            Err(e) => {
                let msg = e.to_string();
                Outcome {
                    overflow: is_context_overflow(&msg),
                    error: Some(msg),
                    ..Outcome::default()
                }
            }
        }
    }

    async fn direct(&self, ws: &Prepared, question: &str) -> Outcome {
        let window = self.opts.direct_window_tokens.min(self.opts.window_tokens);
        let reserve = u64::from(self.opts.answer_max_tokens) + 300;
        let mut budget = {
            let known = *ws.direct_budget.lock().unwrap_or_else(|e| e.into_inner());
            known.unwrap_or(
                (window.saturating_sub(reserve) as f64 * self.opts.prompt_chars_per_token) as usize,
            )
        };
        let mut overflow = false;
        for _ in 0..4 {
            let (prefix, included, truncated) = direct_prefix(&ws.snapshot, budget);
            let messages = [
                ChatMessage::system(DIRECT_SYSTEM),
                ChatMessage::user(format!(
                    "{prefix}\n\nQuestion: {question}\n\n{ANSWER_STYLE}"
                )),
            ];
            match self.answer.complete(&messages, &[]).await {
                Ok(c) => {
                    *ws.direct_budget.lock().unwrap_or_else(|e| e.into_inner()) = Some(budget);
                    // Would the whole workspace have fit the model's window (not the direct
                    // window, which may be set smaller to bound prefill time)?
                    let fits = ws.snapshot.total_bytes() as f64 / self.opts.prompt_chars_per_token
                        <= self.opts.window_tokens.saturating_sub(reserve) as f64;
                    return self.single_call(c, included, truncated, overflow || !fits);
                }
                Err(e) if is_context_overflow(&e.to_string()) => {
                    overflow = true;
                    budget = budget * 4 / 5;
                }
                Err(e) => return failed(e, included, truncated),
            }
        }
        Outcome {
            error: Some("the prompt never fit the model's window".into()),
            overflow: true,
            truncated: true,
            ..Outcome::default()
        }
    }

    async fn retrieval(&self, ws: &Prepared, question: &str) -> Outcome {
        let mut budget =
            (self.opts.retrieval_tokens as f64 * self.opts.prompt_chars_per_token) as usize;
        let mut overflow = false;
        for _ in 0..4 {
            let excerpts = retrieve(ws, question, budget);
            let included = excerpts.len();
            let messages = [
                ChatMessage::system(RETRIEVAL_SYSTEM),
                ChatMessage::user(format!(
                    "{excerpts}\n\nQuestion: {question}\n\n{ANSWER_STYLE}"
                )),
            ];
            match self.answer.complete(&messages, &[]).await {
                Ok(c) => return self.single_call(c, included, false, overflow),
                Err(e) if is_context_overflow(&e.to_string()) => {
                    overflow = true;
                    budget = budget * 4 / 5;
                }
                Err(e) => return failed(e, included, false),
            }
        }
        Outcome {
            error: Some("the prompt never fit the model's window".into()),
            overflow: true,
            ..Outcome::default()
        }
    }

    fn single_call(
        &self,
        c: rlm_lsp::llm::Completion,
        included_chars: usize,
        truncated: bool,
        overflow: bool,
    ) -> Outcome {
        let ep = self.answer.endpoint();
        Outcome {
            answer: c.text,
            usage: vec![usage_row(&self.prices, &ep.model, c.usage, c.latency)],
            iterations: 1,
            context_tokens: included_chars as u64 / 4,
            max_prompt_tokens: c.usage.prompt_tokens,
            truncated,
            overflow,
            ..Outcome::default()
        }
    }
}

fn usage_row(prices: &PriceTable, model: &str, u: Usage, latency: Duration) -> UsageRow {
    UsageRow {
        role: "root".into(),
        model: model.to_string(),
        depth: 0,
        calls: 1,
        prompt_tokens: u.prompt_tokens,
        cached_tokens: u.cached_tokens,
        completion_tokens: u.completion_tokens,
        cost_usd: prices.cost(model, &u),
        latency_ms: latency.as_millis() as u64,
    }
}

fn failed(e: LlmError, included_chars: usize, truncated: bool) -> Outcome {
    Outcome {
        error: Some(e.to_string()),
        context_tokens: included_chars as u64 / 4,
        truncated,
        ..Outcome::default()
    }
}

/// Whether a server's error says the prompt did not fit (llama.cpp, OpenAI, Anthropic wording).
pub fn is_context_overflow(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("exceeds the available context")
        || m.contains("context_length_exceeded")
        || m.contains("maximum context length")
        || m.contains("prompt is too long")
        || (m.contains("context") && m.contains("exceed"))
}

const NO_SUBCALLS_NOTE: &str = "(In this run llm_query, llm_query_batched and rlm_query are disabled: \
find the answer with your own code, then FINAL.)";

const DIRECT_SYSTEM: &str = "You answer questions about a codebase. Its files follow, each after a \
line `=== path ===`. Answer from them.";

const RETRIEVAL_SYSTEM: &str = "You answer questions about a codebase. Excerpts of its files that \
a search found relevant follow, each after a line `=== path:first-last line ===`. Answer from them.";

const ANSWER_STYLE: &str = "Answer briefly: give exactly what the question asks for (names, file \
paths as shown above, or one number), without explanations.";

/// The files with their paths, in path order, cut at `budget` characters. Returns the text, the
/// characters of workspace text included, and whether it was cut.
pub fn direct_prefix(snap: &Snapshot, budget: usize) -> (String, usize, bool) {
    let mut out = String::new();
    let mut included = 0;
    for (i, f) in snap.files.iter().enumerate() {
        let header = format!("=== {} ===\n", f.path);
        let room = budget.saturating_sub(out.len() + header.len() + 1);
        if room == 0 {
            out.push_str(&truncation_note(snap.files.len() - i));
            return (out, included, true);
        }
        out.push_str(&header);
        if f.text.len() <= room {
            out.push_str(&f.text);
            out.push('\n');
            included += f.text.len();
        } else {
            let mut cut = room;
            while !f.text.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&f.text[..cut]);
            included += cut;
            out.push_str(&truncation_note(snap.files.len() - i - 1));
            return (out, included, true);
        }
    }
    (out, included, false)
}

fn truncation_note(files_left: usize) -> String {
    format!(
        "\n[TRUNCATED: the workspace did not fit the model's window; this file is cut and {files_left} more files are left out]\n"
    )
}

/// BM25's best chunks for `question`, in rank order, as many as fit in `budget` characters.
pub fn retrieve(ws: &Prepared, question: &str, budget: usize) -> String {
    let mut out = String::new();
    for (i, _) in ws.bm25.rank(question) {
        let c = &ws.chunks[i];
        let piece = format!(
            "=== {}:{}-{} ===\n{}\n",
            c.path, c.start_line, c.end_line, c.text
        );
        if out.len() + piece.len() <= budget {
            out.push_str(&piece);
        }
        if budget.saturating_sub(out.len()) < 200 {
            break;
        }
    }
    out
}

pub struct ChunkText {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub text: String,
}

/// A workspace ready for every method: snapshot, REPL blob, index, BM25 over its chunks.
pub struct Prepared {
    pub snapshot: Arc<Snapshot>,
    /// The façade's workspace over the snapshot: its index (complete) and context blob
    /// (written), as the RLM methods' runs read them.
    pub workspace: Workspace,
    pub chunks: Vec<ChunkText>,
    pub bm25: Bm25,
    /// The `direct` prompt's size once the server accepted it, so every question on this
    /// workspace sends the same prefix (and hits the prompt cache).
    pub direct_budget: Mutex<Option<usize>>,
}

impl Prepared {
    pub fn new(snapshot: Arc<Snapshot>) -> anyhow::Result<Prepared> {
        let index = LiveIndex::spawn(snapshot.clone(), Default::default());
        index.wait(Duration::from_secs(900));
        let current = index.current();
        let mut chunks = Vec::new();
        for c in current.chunks() {
            let Some(f) = snapshot.get(&c.path) else {
                continue;
            };
            let Some(text) = f.text.get(c.start_byte..c.end_byte) else {
                continue;
            };
            chunks.push(ChunkText {
                path: c.path.clone(),
                start_line: c.start_line,
                end_line: c.end_line,
                text: text.to_string(),
            });
        }
        // The path is part of what a chunk is about.
        let docs: Vec<String> = chunks
            .iter()
            .map(|c| format!("{}\n{}", c.path, c.text))
            .collect();
        let bm25 = Bm25::new(&docs);
        let workspace = Workspace::with_index(snapshot.clone(), index);
        // Written once here, not by the first run of a method.
        workspace.blob()?;
        Ok(Prepared {
            snapshot,
            workspace,
            chunks,
            bm25,
            direct_budget: Mutex::new(None),
        })
    }
}

/// An OpenAI-compatible endpoint on loopback that refuses every sub-call with HTTP 400 (never
/// retried) and a message saying sub-calls are disabled: in `rlm-no-subcalls` the REPL's
/// `llm_query` gets that error in its slot and the run goes on. A budget of 0 sub-calls would
/// instead end the run at the first attempt.
pub struct RefuseServer(ScriptedServer);

impl RefuseServer {
    pub async fn start() -> std::io::Result<RefuseServer> {
        let message = "sub-calls are disabled in this run (the rlm-no-subcalls ablation): \
                       find the answer with your own code";
        ScriptedServer::start(vec![], SubRule::Refuse(400, message.into()))
            .await
            .map(RefuseServer)
    }

    pub fn base_url(&self) -> String {
        self.0.base_url()
    }
}

impl Drop for RefuseServer {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlm_lsp::workspace::SourceFile;

    fn snap() -> Snapshot {
        let files = vec![
            SourceFile {
                path: "a.rs".into(),
                text: Arc::new("fn a() {}\n".repeat(10)),
            },
            SourceFile {
                path: "b.rs".into(),
                text: Arc::new("fn b() {}\n".repeat(10)),
            },
        ];
        Snapshot {
            root: "/x".into(),
            files,
            stats: Default::default(),
        }
    }

    #[test]
    fn direct_prefix_cuts_and_marks() {
        let s = snap();
        let (all, n, cut) = direct_prefix(&s, 10_000);
        assert!(!cut && n == 200 && all.contains("=== b.rs ==="));
        let (part, n, cut) = direct_prefix(&s, 80);
        assert!(
            cut && n < 80 && part.contains("1 more files") && !part.contains("b.rs"),
            "{part}"
        );
    }

    #[test]
    fn overflow_messages() {
        assert!(is_context_overflow(
            "http://x/v1 answered HTTP 400: the request exceeds the available context size"
        ));
        assert!(!is_context_overflow("HTTP 500: boom"));
    }
}
