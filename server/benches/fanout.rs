//! Fan-out of `llm_query_batched`: N sub-calls against a model with a fixed latency, at a
//! concurrency limit; wall time of the batch against the ideal ceil(N / limit) x latency.
//! Target: <= 1.15x of ideal for 64 calls at concurrency 16 (ideal 2 s).
//!
//! Run: `cargo bench -p rlm-lsp --bench fanout`
#![allow(clippy::print_stdout)]

use rlm_lsp::engine::{Engine, EngineConfig, Event, Models};
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::repl::{ContextBlob, ReplConfig};
use rlm_lsp::workspace::{Snapshot, SourceFile};
use std::time::Duration;

const LATENCY: Duration = Duration::from_millis(500);

async fn fan_out(calls: usize, concurrency: usize) -> (f64, f64) {
    let cell = format!(
        "r = llm_query_batched([f'item {{i}}' for i in range({calls})])\nprint(sum(1 for x in r if x.startswith('echo: ')))"
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
    let client = server.client();
    let engine = Engine::new(
        Models::same(client),
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
    let ok = report
        .events
        .iter()
        .any(|e| matches!(e, Event::CodeCell { stdout, .. } if stdout.trim() == calls.to_string()));
    assert!(ok, "every sub-call answered");
    // Root calls answer at once; what the run waited on models is the batch.
    let root_wait: u64 = report
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RootMessage {
                latency_ms: Some(ms),
                ..
            } => Some(*ms),
            _ => None,
        })
        .sum();
    let batch = report.model_wait.as_secs_f64() - root_wait as f64 / 1000.0;
    let ideal = calls.div_ceil(concurrency) as f64 * LATENCY.as_secs_f64();
    (batch, ideal)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (calls, concurrency) in [(64, 16), (256, 64)] {
            let (wall, ideal) = fan_out(calls, concurrency).await;
            println!(
                "fan-out: {calls} sub-calls at concurrency {concurrency}, {} ms latency each: {wall:.2} s (ideal {ideal:.2} s, {:.3}x; target <= 1.15x)",
                LATENCY.as_millis(),
                wall / ideal
            );
        }
    });
}
