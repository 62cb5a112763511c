//! Model calls made from inside the REPL (`llm_query`, `llm_query_batched`): concurrent under a
//! limit, results in order, a failed call reported in its own slot.

use super::budget::Account;
use super::{Event, Recorder};
use crate::llm::{ChatClient, ChatMessage, Usage};
use crate::repl::SubCalls;
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

pub(crate) struct SubCaller {
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

impl SubCaller {
    pub(crate) fn new(
        client: ChatClient,
        concurrency: usize,
        rec: Arc<Recorder>,
        account: Arc<Account>,
        depth: u32,
    ) -> Self {
        SubCaller {
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

impl SubCalls for SubCaller {
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move {
            let started = Instant::now();
            let results = futures::future::join_all(prompts.into_iter().map(|p| self.one(p))).await;
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).wait += started.elapsed();
            results
        })
    }
}
