//! Scaffold overhead: wall time of a run minus the time spent waiting on the model, per
//! iteration, against the scripted server (which answers at once). Target: <= 20 ms per iteration.
//!
//! Run: `cargo bench -p rlm-lsp --bench scaffold` (prints one line per configuration).
#![allow(clippy::print_stdout)]

use rlm_lsp::engine::{Engine, EngineConfig, Models};
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::repl::{ContextBlob, ReplConfig};
use rlm_lsp::workspace::{Snapshot, SourceFile};

fn snapshot(files: usize, bytes_each: usize) -> Snapshot {
    let text = "fn filler() { let x = 42; }\n".repeat(bytes_each / 28 + 1);
    Snapshot {
        root: "/bench".into(),
        files: (0..files)
            .map(|i| SourceFile {
                path: format!("src/m{i:05}.rs"),
                text: text.clone().into(),
            })
            .collect(),
        stats: Default::default(),
    }
}

async fn measure(iterations: u32, snap: &Snapshot, sub_calls: bool) -> (f64, f64) {
    let cell = if sub_calls {
        "r = llm_query_batched(['a', 'b', 'c', 'd'])\nprint(len(r))"
    } else {
        "n = sum(1 for p in context if p.endswith('7.rs'))\nprint(n)"
    };
    let mut steps: Vec<Step> = (0..iterations - 1)
        .map(|_| Step::Reply(format!("```repl\n{cell}\n```")))
        .collect();
    steps.push(Step::Reply("```repl\nFINAL('done')\n```".into()));
    let server = ScriptedServer::start(steps, SubRule::Echo).await.unwrap();
    let client = server.client();
    let engine = Engine::new(
        Models::same(client),
        EngineConfig {
            max_iterations: iterations + 1,
            repl: ReplConfig {
                worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
                ..ReplConfig::default()
            },
            ..EngineConfig::default()
        },
    );
    let blob = ContextBlob::write(snap).unwrap();
    let report = engine.run(snap, blob, "bench", None).await.unwrap();
    assert_eq!(report.answer, "done");
    let wall = report.wall.as_secs_f64() * 1000.0;
    let overhead = wall - report.model_wait.as_secs_f64() * 1000.0;
    (wall, overhead / report.iterations as f64)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (label, files, each, sub) in [
            ("1,000 files x 1 KB, plain cells", 1_000, 1_000, false),
            ("10,000 files x 10 KB (100 MB), plain cells", 10_000, 10_000, false),
            ("1,000 files x 1 KB, 4 sub-calls per cell", 1_000, 1_000, true),
        ] {
            let snap = snapshot(files, each);
            let _ = measure(3, &snap, sub).await; // warm-up
            let (wall, per_iter) = measure(20, &snap, sub).await;
            println!(
                "scaffold overhead [{label}]: {per_iter:.2} ms per iteration (20 iterations, run wall {wall:.0} ms, target <= 20 ms)"
            );
        }
    });
}
