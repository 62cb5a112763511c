//! Fan-out of `llm_query_batched`, measured where the model uses it: a REPL cell in a real worker
//! times the call (`time.perf_counter()` around it), during a run of the engine, so the figure
//! holds the worker's frames, the parent's reply loop, the engine's `SubCaller` and the sub
//! model's `ChatClient` as a run configures it. The scripted server answers every sub-call after
//! a fixed latency; the ideal is ceil(N / limit) x latency, and a plain client (the same
//! `ChatClient`, no cache, N calls under a semaphore of `limit`) against the same server in the
//! same run shows what the server and the machine allow. Target: <= 1.1x of ideal for 64 calls
//! at concurrency 16 (ideal 2 s).
//!
//! The sub model's response cache is on by default for greedy sub-calls (`config.rs`); the
//! cached cases use one in a temporary directory that already holds `CACHE_ENTRIES` answers, as
//! a cache in use does.
//!
//! Also printed, per case: the engine's time for the batch (from the `SubCaller`'s first call to
//! its last answer), so `cell - batch` is the cost of the worker and the protocol, and the mean
//! latency of one sub-call as the client measured it (its cache included).
//!
//! Run: `cargo bench -p rlm-lsp --bench fanout`
#![allow(clippy::print_stdout)]

use rlm_lsp::engine::{Engine, EngineConfig, Event, Models};
use rlm_lsp::llm::cache::ResponseCache;
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::llm::{ChatMessage, Usage};
use rlm_lsp::repl::{ContextBlob, ReplConfig};
use rlm_lsp::workspace::{Snapshot, SourceFile};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(500);
/// Answers already in the cache of the cached cases.
const CACHE_ENTRIES: usize = 20_000;
/// Bytes of one of those answers on disk.
const CACHE_ENTRY_BYTES: usize = 2_000;

struct Case {
    calls: usize,
    concurrency: usize,
    /// Bytes of each prompt (at least the few of `item N`).
    prompt_bytes: usize,
    cached: bool,
}

struct Figures {
    /// The call as the cell timed it.
    cell: f64,
    /// The engine's wait for the batch.
    batch: f64,
    /// The same load from a plain client.
    plain: f64,
    /// Mean latency of one sub-call as its client measured it.
    per_call: f64,
    ideal: f64,
}

/// `calls` prompts, unique to this case (`tag`), padded to `bytes`.
fn prompt(tag: &str, i: usize, bytes: usize) -> String {
    let mut p = format!("item {tag} {i} ");
    while p.len() < bytes {
        p.push_str("lorem ipsum dolor sit amet ");
    }
    p
}

/// The same load as the cell's from a plain client: no cache, no REPL, no engine.
async fn plain(server: &ScriptedServer, case: &Case, tag: &str) -> f64 {
    let client = server.client();
    let limit = Arc::new(tokio::sync::Semaphore::new(case.concurrency));
    let started = Instant::now();
    let calls = (0..case.calls).map(|i| {
        let (client, limit) = (client.clone(), limit.clone());
        let p = prompt(&format!("plain {tag}"), i, case.prompt_bytes);
        async move {
            let _slot = limit.acquire().await.unwrap();
            client.complete(&[ChatMessage::user(p)], &[]).await.unwrap()
        }
    });
    futures::future::join_all(calls).await;
    started.elapsed().as_secs_f64()
}

async fn fan_out(case: &Case, cache: Option<&Arc<ResponseCache>>, tag: &str) -> Figures {
    let Case {
        calls,
        concurrency,
        prompt_bytes,
        ..
    } = *case;
    // The prompts are built in the cell, as model code builds them.
    let cell = format!(
        "import time\n\
         _ps = [('item {tag} %d ' % i).ljust({prompt_bytes}, '.') for i in range({calls})]\n\
         _t = time.perf_counter()\n\
         r = llm_query_batched(_ps)\n\
         _dt = time.perf_counter() - _t\n\
         print(sum(1 for x in r if x.startswith('echo: ')), _dt)"
    );
    let server = ScriptedServer::start(
        vec![
            Step::Reply(format!("```repl\n{cell}\n```")),
            Step::Reply("FINAL(done)".into()),
        ],
        SubRule::Latency(LATENCY),
    )
    .await
    .unwrap();
    let plain = plain(&server, case, tag).await;
    let mut sub = server.client();
    if let Some(cache) = cache {
        sub = sub.with_cache(cache.clone(), false);
    }
    let engine = Engine::new(
        Models {
            root: server.client(),
            sub,
            child_root: None,
        },
        EngineConfig {
            sub_concurrency: concurrency,
            repl: ReplConfig {
                worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
                ..ReplConfig::default()
            },
            ..EngineConfig::default()
        },
    );
    let snap = Snapshot {
        root: "/bench".into(),
        files: vec![SourceFile {
            path: "a.txt".into(),
            text: String::from("a\n").into(),
        }],
        stats: Default::default(),
    };
    let blob = ContextBlob::write(&snap).unwrap();
    let report = engine.run(&snap, blob, "fan out", None).await.unwrap();
    assert_eq!(report.sub_calls as usize, calls);
    let stdout = report
        .events
        .iter()
        .find_map(|e| match e {
            Event::CodeCell { stdout, .. } => Some(stdout.clone()),
            _ => None,
        })
        .expect("the cell ran");
    let mut out = stdout.split_whitespace();
    assert_eq!(
        out.next(),
        Some(calls.to_string().as_str()),
        "every sub-call answered: {stdout}"
    );
    let cell: f64 = out.next().and_then(|s| s.parse().ok()).expect("timed");
    // Root calls answer at once; what the run waited on models besides them is the batch.
    let (mut root_ms, mut sub_ms, mut subs) = (0u64, 0u64, 0u64);
    for e in &report.events {
        match e {
            Event::RootMessage {
                latency_ms: Some(ms),
                ..
            } => root_ms += ms,
            Event::SubCall { latency_ms, .. } => {
                sub_ms += latency_ms;
                subs += 1;
            }
            _ => {}
        }
    }
    Figures {
        cell,
        batch: report.model_wait.as_secs_f64() - root_ms as f64 / 1000.0,
        plain,
        per_call: sub_ms as f64 / subs.max(1) as f64 / 1000.0,
        ideal: calls.div_ceil(concurrency) as f64 * LATENCY.as_secs_f64(),
    }
}

/// A cache directory holding `n` answers, written as `ResponseCache` lays them out.
fn fill_cache(dir: &Path, n: usize) {
    let usage = Usage::default();
    // One `put` would scan the directory each time; write the files as it does instead.
    let body = serde_json::json!({"text": "x".repeat(CACHE_ENTRY_BYTES - 60), "usage": usage});
    for i in 0..n {
        let key = ResponseCache::key(&serde_json::json!({"bench fill": i}));
        let shard = dir.join(&key[..2]);
        std::fs::create_dir_all(&shard).unwrap();
        std::fs::write(shard.join(&key), body.to_string()).unwrap();
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    fill_cache(dir.path(), CACHE_ENTRIES);
    let cache = Arc::new(ResponseCache::new(dir.path().to_path_buf(), 256 << 20));
    let cases = [
        ("64 at 16, cached", 64, 16, 0, true),
        ("64 at 16, 16 KB prompts, cached", 64, 16, 16 << 10, true),
        ("64 at 16, no cache", 64, 16, 0, false),
        ("256 at 64, cached", 256, 64, 0, true),
    ];
    rt.block_on(async {
        for (round, (label, calls, concurrency, prompt_bytes, cached)) in
            cases.into_iter().enumerate()
        {
            let case = Case {
                calls,
                concurrency,
                prompt_bytes,
                cached,
            };
            let f = fan_out(&case, case.cached.then_some(&cache), &round.to_string()).await;
            println!(
                "fan-out {label} ({} ms each): cell {:.3} s = {:.3}x ideal {:.2} s, {:.3}x plain client {:.3} s; \
                 engine batch {:.3} s, mean sub-call {:.1} ms (target <= 1.1x)",
                LATENCY.as_millis(),
                f.cell,
                f.cell / f.ideal,
                f.ideal,
                f.cell / f.plain,
                f.plain,
                f.batch,
                f.per_call * 1000.0,
            );
        }
    });
}
