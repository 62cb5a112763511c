//! Model calls made from inside the REPL (`llm_query`, `llm_query_batched`) and child RLM runs
//! (`rlm_query`, `rlm_query_batched`): concurrent under a limit, results in order, a failure
//! reported in its own slot, every call charged to the run tree's budget.

use super::budget::Account;
use super::{Engine, Event, LiveIndex, Recorder, RunInput};
use crate::index::IndexOptions;
use crate::llm::{ChatClient, ChatMessage, Usage};
use crate::repl::IndexQueries;
use crate::repl::{ContextBlob, SubCalls};
use crate::workspace::{IndexStats, Snapshot, SourceFile};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SubStats {
    pub calls: u32,
    /// Wall time the REPL spent waiting on sub-call batches.
    pub wait: Duration,
}

/// What a child run started with `rlm_query(prompt)` (no context) inherits from its parent.
pub(crate) struct Parent<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) blob: Arc<ContextBlob>,
    pub(crate) index: Option<Arc<dyn IndexQueries>>,
}

/// How long a child run waits for the index of its own context (it is small) before starting.
const CHILD_INDEX_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct SubCaller<'a> {
    parent: Parent<'a>,
    client: ChatClient,
    limit: Arc<Semaphore>,
    rec: Arc<Recorder>,
    account: Arc<Account>,
    depth: u32,
    iteration: AtomicU32,
    stats: Mutex<SubStats>,
    /// Prompts since the last check too short to hold any workspace text.
    context_free: AtomicU32,
}

/// A prompt shorter than this cannot carry code for the sub model to read.
const CONTEXT_FREE_PROMPT_CHARS: usize = 200;

impl<'a> SubCaller<'a> {
    pub(crate) fn new(
        parent: Parent<'a>,
        client: ChatClient,
        concurrency: usize,
        rec: Arc<Recorder>,
        account: Arc<Account>,
        depth: u32,
    ) -> Self {
        SubCaller {
            parent,
            limit: crate::llm::limits::for_endpoint(&client.endpoint().base_url, concurrency),
            client,
            rec,
            account,
            depth,
            iteration: AtomicU32::new(0),
            stats: Mutex::new(SubStats::default()),
            context_free: AtomicU32::new(0),
        }
    }

    /// How many prompts since the last call were bare questions without workspace text.
    pub(crate) fn take_context_free_prompts(&self) -> u32 {
        self.context_free.swap(0, Ordering::Relaxed)
    }

    pub(crate) fn set_iteration(&self, iteration: u32) {
        self.iteration.store(iteration, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> SubStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn one(&self, prompt: String) -> Result<String, String> {
        if prompt.len() < CONTEXT_FREE_PROMPT_CHARS {
            self.context_free.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(k) = self.account.take_sub_call() {
            return Err(format!(
                "budget reached: {}; no more model calls in this run",
                k.describe(&self.account.budget)
            ));
        }
        let _permit = self.limit.acquire().await.map_err(|e| e.to_string())?;
        let messages = [ChatMessage::user(prompt.clone())];
        let call = self.client.complete(&messages, &[]);
        let result = match self.account.remaining_wall() {
            Some(left) => match tokio::time::timeout(left, call).await {
                Ok(r) => r,
                Err(_) => {
                    return Err("budget reached: max wall time; the call was abandoned".into());
                }
            },
            None => call.await,
        };
        let (response, error, usage, latency, cached) = match result {
            Ok(c) => (Some(c.text), None, c.usage, c.latency, c.from_cache),
            Err(e) => (
                None,
                Some(e.to_string()),
                Usage::default(),
                Duration::ZERO,
                false,
            ),
        };
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).calls += 1;
        if response.is_some() {
            let model = &self.client.endpoint().model;
            self.account
                .charge(self.depth, "sub", model, usage, latency);
        }
        self.rec.record(Event::Spent {
            iteration: self.iteration.load(Ordering::Relaxed),
            spent: self.account.spent(),
        });
        self.rec.record(Event::SubCall {
            iteration: self.iteration.load(Ordering::Relaxed),
            model: self.client.endpoint().model.clone(),
            prompt,
            response: response.clone(),
            error: error.clone(),
            usage,
            latency_ms: latency.as_millis() as u64,
            cached,
        });
        match (response, error) {
            (Some(r), _) => Ok(r),
            (None, e) => Err(e.unwrap_or_default()),
        }
    }
}

impl SubCaller<'_> {
    /// One child run over its context; at the last depth, a plain model call with the context
    /// text in the prompt.
    async fn child(&self, prompt: String, context: Option<String>) -> Result<String, String> {
        let engine = self.parent.engine;
        let depth = self.depth + 1;
        let files = match &context {
            None => None,
            Some(spec) => Some(context_files(spec)?),
        };
        if depth > engine.cfg.max_depth {
            let mut full = prompt;
            for f in files.iter().flatten() {
                full.push_str(&format!("\n\n--- {} ---\n{}", f.path, f.text));
            }
            return self.one(full).await;
        }
        if let Err(k) = self.account.take_child_run() {
            return Err(format!(
                "budget reached: {}; no more child runs in this run",
                k.describe(&self.account.budget)
            ));
        }
        let started = Instant::now();
        let own;
        let input = match files {
            None => RunInput {
                snapshot: self.parent.snapshot,
                blob: self.parent.blob.clone(),
                index: self.parent.index.clone(),
            },
            Some(files) => {
                own = Arc::new(Snapshot {
                    root: "rlm_query context".into(),
                    files,
                    stats: IndexStats::default(),
                });
                let blob = ContextBlob::write(&own).map_err(|e| e.to_string())?;
                // Its own index: the parent's would name files this context does not have.
                let index = LiveIndex::spawn(own.clone(), IndexOptions::default());
                index.wait(CHILD_INDEX_WAIT);
                RunInput {
                    snapshot: &own,
                    blob,
                    index: Some(index as Arc<dyn IndexQueries>),
                }
            }
        };
        // Boxed: a run's future contains its children's.
        let run: BoxFuture<'_, _> =
            Box::pin(engine.run_at(input, &prompt, None, depth, self.account.clone()));
        let result = run.await;
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).calls += 1;
        let (answer, error, iterations, stop) = match &result {
            Ok(r) => (
                Some(r.answer.clone()),
                None,
                r.iterations,
                r.stop_reason.to_string(),
            ),
            Err(e) => (None, Some(e.to_string()), 0, "error".to_string()),
        };
        let (tokens, cost_usd) = match &result {
            Ok(r) => super::trajectory::spend(&r.events, &engine.cfg.prices),
            Err(_) => (0, Some(0.0)),
        };
        self.rec.record(Event::Spent {
            iteration: self.iteration.load(Ordering::Relaxed),
            spent: self.account.spent(),
        });
        self.rec.record(Event::ChildRun {
            iteration: self.iteration.load(Ordering::Relaxed),
            depth,
            prompt,
            answer: answer.clone(),
            error: error.clone(),
            iterations,
            stop_reason: stop,
            wall_ms: started.elapsed().as_millis() as u64,
            tokens,
            cost_usd,
        });
        match (answer, error) {
            (Some(a), _) => Ok(a),
            (None, e) => Err(e.unwrap_or_default()),
        }
    }
}

/// The files of a child's context from its JSON spec: `{"text": str}` or `{"files": {path: text}}`.
fn context_files(spec: &str) -> Result<Vec<SourceFile>, String> {
    let v: serde_json::Value =
        serde_json::from_str(spec).map_err(|e| format!("bad rlm_query context: {e}"))?;
    let mut files: Vec<SourceFile> = if let Some(t) = v["text"].as_str() {
        vec![SourceFile {
            path: "context.txt".into(),
            text: Arc::new(t.to_string()),
        }]
    } else if let Some(m) = v["files"].as_object() {
        m.iter()
            .map(|(k, t)| SourceFile {
                path: k.clone(),
                text: Arc::new(t.as_str().unwrap_or_default().to_string()),
            })
            .collect()
    } else {
        return Err("bad rlm_query context: expected text or files".into());
    };
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

impl SubCalls for SubCaller<'_> {
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move {
            let started = Instant::now();
            let results = futures::future::join_all(prompts.into_iter().map(|p| self.one(p))).await;
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).wait += started.elapsed();
            results
        })
    }

    fn rlm_batch(
        &self,
        prompts: Vec<String>,
        contexts: Vec<Option<String>>,
    ) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut contexts = contexts.into_iter();
            let runs = prompts
                .into_iter()
                .map(|p| self.child(p, contexts.next().flatten()));
            let results = futures::future::join_all(runs).await;
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).wait += started.elapsed();
            results
        })
    }
}
