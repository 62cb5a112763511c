//! The Python REPL worker, for real: each test spawns `rlm-lsp __repl-worker` processes.
//!
//! The worker runs sandboxed (the default); the few tests of child processes, which the sandbox
//! forbids, opt out to check the process-group handling that the opt-out still relies on. Hostile
//! code against the sandbox is `sandbox_hostile.rs`.
//!
//! The benchmark (`bench_repl_worker`, ignored) is run by `bench/repl_worker.sh`.

use futures::future::BoxFuture;
use rlm_lsp::repl::{CellOutput, ContextBlob, Repl, ReplConfig, SandboxConfig, SubCalls};
use rlm_lsp::workspace::{IndexStats, Snapshot, SourceFile};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn cfg() -> ReplConfig {
    ReplConfig {
        worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
        cell_timeout: Duration::from_secs(60),
        cell_wall_timeout: Duration::from_secs(600),
        max_output_bytes: 1 << 20,
        sandbox: SandboxConfig {
            enabled: true,
            ..SandboxConfig::default()
        },
    }
}

/// Without the sandbox, which forbids child processes: for the tests of what happens to them.
fn unsandboxed() -> ReplConfig {
    ReplConfig {
        sandbox: SandboxConfig {
            enabled: false,
            ..SandboxConfig::default()
        },
        ..cfg()
    }
}

fn snapshot(files: &[(&str, &str)]) -> Snapshot {
    Snapshot {
        root: "/ws".into(),
        files: files
            .iter()
            .map(|(p, t)| SourceFile {
                path: p.to_string(),
                text: t.to_string().into(),
            })
            .collect(),
        stats: IndexStats::default(),
    }
}

fn small_workspace() -> Arc<ContextBlob> {
    ContextBlob::write(&snapshot(&[
        ("README.md", "# Demo\nSee src/main.rs.\n"),
        ("src/main.rs", "fn main() {\n    println!(\"héllo\");\n}\n"),
        (
            "src/lib.rs",
            "pub fn add(a: i32, b: i32) -> i32 { a + b }\n",
        ),
    ]))
    .unwrap()
}

async fn start_with(cfg: ReplConfig) -> Repl {
    Repl::start(cfg, small_workspace()).await.unwrap()
}

async fn start() -> Repl {
    start_with(cfg()).await
}

/// Answers "answer to <prompt>", fails prompts containing "fail", after `delay`.
#[derive(Default)]
struct FakeSub {
    delay: Duration,
    calls: Mutex<Vec<Vec<String>>>,
}

impl SubCalls for FakeSub {
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            self.calls.lock().unwrap().push(prompts.clone());
            prompts
                .into_iter()
                .map(|p| {
                    if p.contains("fail") {
                        Err("model unavailable".to_string())
                    } else {
                        Ok(format!("answer to {p}"))
                    }
                })
                .collect()
        })
    }
}

async fn run(repl: &mut Repl, code: &str) -> CellOutput {
    repl.exec(code, &FakeSub::default(), None).await.unwrap()
}

/// Runs `code` and returns its stdout, failing on any error.
async fn ok(repl: &mut Repl, code: &str) -> String {
    let out = run(repl, code).await;
    assert_eq!(out.error, None, "cell failed: {code}\n{out:?}");
    assert!(!out.timed_out && out.worker_died.is_none(), "{out:?}");
    out.stdout
}

#[tokio::test]
async fn context_is_a_read_only_mapping() {
    let mut repl = start().await;
    let got = ok(
        &mut repl,
        r#"
import collections.abc
print(len(context), sorted(context))
print("src/main.rs" in context, "nope" in context, 3 in context)
print(context["src/main.rs"].splitlines()[1].strip())
print(context.get("nope", "default"), context.get("nope"))
print(isinstance(context, collections.abc.Mapping))
print(list(context.keys()), len(context.items()), sum(len(v) for v in context.values()))
print(dict(context)["README.md"].splitlines()[0])
print([p for p, t in context.items() if "add" in t])
print(repr(context))
"#,
    )
    .await;
    expect_test::expect![[r#"
        3 ['README.md', 'src/lib.rs', 'src/main.rs']
        True False False
        println!("héllo");
        default None
        True
        ['README.md', 'src/lib.rs', 'src/main.rs'] 3 105
        # Demo
        ['src/lib.rs']
        <context: 3 files, 106 bytes; read-only mapping path -> text>
    "#]]
    .assert_eq(&got);

    let out = run(&mut repl, "context['x.rs'] = 'y'").await;
    let err = out.error.unwrap();
    assert!(err.contains("TypeError: context is read-only"), "{err}");
    let out = run(&mut repl, "del context['README.md']").await;
    assert!(out.error.unwrap().contains("read-only"));
    let out = run(&mut repl, "context['main.rs']").await;
    let err = out.error.unwrap();
    assert!(
        err.contains("KeyError") && err.contains("did you mean \"src/main.rs\""),
        "{err}"
    );
    assert_eq!(ok(&mut repl, "len(context)").await, "3\n");
    repl.shutdown().await;
}

#[tokio::test]
async fn variables_persist_and_last_expression_is_printed() {
    let mut repl = start().await;
    assert_eq!(
        ok(&mut repl, "x = 41\ndef inc(v):\n    return v + 1").await,
        ""
    );
    assert_eq!(ok(&mut repl, "inc(x)").await, "42\n");
    assert_eq!(ok(&mut repl, "'a' * 3").await, "'aaa'\n");
    assert_eq!(ok(&mut repl, "print('once')").await, "once\n");
    assert_eq!(ok(&mut repl, "y = None\ny").await, "");
    assert_eq!(ok(&mut repl, "for i in range(2):\n    i").await, "");
    let shown = ok(&mut repl, "s = 'hi'\nitems = list(range(100))\nSHOW_VARS()").await;
    assert!(shown.contains("x: int = 41"), "{shown}");
    assert!(shown.contains("s: str, len 2 = 'hi'"), "{shown}");
    assert!(
        shown.contains("items: list, len 100 = [0, 1, 2, 3, 4, ...]"),
        "{shown}"
    );
    assert!(!shown.contains("llm_query"), "{shown}");
    repl.shutdown().await;
}

#[tokio::test]
async fn final_and_final_var() {
    let mut repl = start().await;
    let out = run(&mut repl, "FINAL(6 * 7)\nprint('not reached')").await;
    assert_eq!(out.final_answer.as_deref(), Some("42"));
    assert_eq!(out.stdout, "");
    assert_eq!(out.error, None);

    let out = run(
        &mut repl,
        "answer = 'the answer'\ntry:\n    FINAL_VAR('answer')\nexcept Exception:\n    print('swallowed')",
    )
    .await;
    assert_eq!(out.final_answer.as_deref(), Some("the answer"));
    assert_eq!(out.stdout, "");

    let out = run(
        &mut repl,
        "def f():\n    local = [1, 2]\n    FINAL_VAR('local')\nf()",
    )
    .await;
    assert_eq!(out.final_answer.as_deref(), Some("[1, 2]"));

    let out = run(&mut repl, "FINAL_VAR('missing')").await;
    assert_eq!(out.final_answer, None);
    let err = out.error.unwrap();
    assert!(
        err.contains("NameError") && err.contains("no variable named 'missing'"),
        "{err}"
    );

    let out = run(&mut repl, "FINAL_VAR(42)").await;
    assert!(
        out.error
            .unwrap()
            .contains("FINAL_VAR takes the name of a variable")
    );
    // Common slips of small models: passing the value instead of the name, or the answer's
    // parts as literals. The intent is plain: they are the answer.
    let out = run(&mut repl, "FINAL_VAR(answer)").await;
    assert_eq!(out.final_answer.as_deref(), Some("the answer"));
    let out = run(&mut repl, "FINAL_VAR('parse', 'src/lib.rs:12')").await;
    assert_eq!(out.final_answer.as_deref(), Some("parse, src/lib.rs:12"));

    assert_eq!(
        repl.get_var("answer").await.unwrap().as_deref(),
        Some("the answer")
    );
    assert_eq!(repl.get_var("nope").await.unwrap(), None);
    repl.shutdown().await;
}

#[tokio::test]
async fn sub_calls_go_through_the_parent() {
    let mut repl = Repl::start(
        ReplConfig {
            cell_timeout: Duration::from_secs(2),
            ..cfg()
        },
        small_workspace(),
    )
    .await
    .unwrap();
    let sub = FakeSub {
        delay: Duration::from_millis(1500),
        ..FakeSub::default()
    };
    let code = r#"
print(llm_query("hello"))
for r in llm_query_batched(["a", "please fail", 3]):
    print(r)
print(llm_query_batched([]))
"#;
    // Each sub-call takes 1.5 s and the cell timeout is 2 s: the clock pauses during sub-calls.
    let out = repl.exec(code, &sub, None).await.unwrap();
    assert_eq!(out.error, None, "{out:?}");
    assert!(!out.timed_out);
    assert_eq!(
        out.stdout,
        "answer to hello\nanswer to a\nError: model unavailable\nanswer to 3\n[]\n"
    );
    assert!(
        out.duration < Duration::from_millis(1500),
        "{:?}",
        out.duration
    );
    assert_eq!(
        *sub.calls.lock().unwrap(),
        vec![
            vec!["hello".to_string()],
            vec!["a".into(), "please fail".into(), "3".into()]
        ]
    );
    let out = repl
        .exec("llm_query_batched('one string')", &sub, None)
        .await
        .unwrap();
    assert!(out.error.unwrap().contains("takes a list of prompts"));
    repl.shutdown().await;
}

#[tokio::test]
async fn exceptions_and_syntax_errors_keep_the_worker() {
    let mut repl = start().await;
    let out = run(
        &mut repl,
        "kept = 1\ndef f():\n    raise ValueError('boom')\nf()",
    )
    .await;
    let err = out.error.unwrap();
    assert!(err.contains("ValueError: boom"), "{err}");
    assert!(err.contains("File \"<cell 1>\", line 3, in f"), "{err}");
    assert!(err.contains("raise ValueError('boom')"), "{err}");
    assert!(!err.contains("prelude"), "{err}");

    let out = run(&mut repl, "x = (\nprint(1)").await;
    let err = out.error.unwrap();
    assert!(err.contains("SyntaxError"), "{err}");
    assert!(err.contains("<cell 2>"), "{err}");

    let out = run(&mut repl, "raise KeyboardInterrupt").await;
    assert!(out.error.unwrap().contains("KeyboardInterrupt"));
    let out = run(&mut repl, "import sys\nsys.exit(3)").await;
    assert!(out.error.unwrap().contains("SystemExit: 3"));
    let out = run(&mut repl, "input()").await;
    assert!(out.error.unwrap().contains("EOFError"));
    let out = run(&mut repl, "print('partial')\n1/0").await;
    assert_eq!(out.stdout, "partial\n");
    assert!(out.error.unwrap().contains("ZeroDivisionError"));
    let out = run(&mut repl, "def r(n):\n    return r(n + 1)\nr(0)").await;
    let err = out.error.unwrap();
    assert!(err.contains("RecursionError") && err.len() < 9000, "{err}");

    assert_eq!(ok(&mut repl, "kept").await, "1\n");
    repl.shutdown().await;
}

#[tokio::test]
async fn huge_output_is_bounded_and_counted() {
    let mut repl = start().await;
    let started = Instant::now();
    let out = run(
        &mut repl,
        "for i in range(100_000):\n    print('x' * 999)\nprint('end')",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(out.output_bytes, 100_000_000 + 4);
    assert!(out.stdout.len() <= (1 << 20) + 100, "{}", out.stdout.len());
    assert!(out.stdout.starts_with("xxxx"));
    assert!(out.stdout.ends_with("xxx\nend\n"));
    assert!(out.stdout.contains("bytes of output dropped"));
    assert!(took < Duration::from_secs(20), "{took:?}");

    let started = Instant::now();
    let out = run(
        &mut repl,
        "import sys\nsys.stdout.write('y' * 100_000_000)\n_ = sys.stderr.write('warn\\n')",
    )
    .await;
    assert_eq!(out.output_bytes, 100_000_005);
    assert_eq!(out.stderr, "warn\n");
    assert!(out.stdout.len() <= (1 << 20) + 100);
    assert!(started.elapsed() < Duration::from_secs(10));
    repl.shutdown().await;
}

#[tokio::test]
async fn a_cell_that_runs_too_long_is_killed_and_the_worker_replaced() {
    let mut repl = start_with(ReplConfig {
        cell_timeout: Duration::from_secs(2),
        ..cfg()
    })
    .await;
    ok(&mut repl, "lost = 1").await;
    let first = repl.worker_pid().unwrap();
    let started = Instant::now();
    let out = run(&mut repl, "while True:\n    pass").await;
    assert!(out.timed_out, "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_ne!(repl.worker_pid().unwrap(), first);
    assert!(!process_alive(first), "the old worker is gone");
    assert_eq!(ok(&mut repl, "print(len(context))").await, "3\n");
    let out = run(&mut repl, "lost").await;
    assert!(out.error.unwrap().contains("NameError"));
    repl.shutdown().await;

    // Without the sandbox: a sleeping child process of the cell dies with the worker's process
    // group.
    let mut repl = start_with(ReplConfig {
        cell_timeout: Duration::from_secs(2),
        ..unsandboxed()
    })
    .await;
    let out = run(
        &mut repl,
        "import subprocess\nsubprocess.run(['sleep', '100'])",
    )
    .await;
    assert!(out.timed_out);
    repl.shutdown().await;
}

/// A cell that loops over llm_query: the cell clock pauses while sub-calls are answered, so
/// only the wall limit, which counts them, stops it (before the fix it ran for ever).
#[tokio::test]
async fn a_cell_looping_over_sub_calls_hits_the_wall_limit() {
    let mut repl = start_with(ReplConfig {
        cell_timeout: Duration::from_secs(60),
        cell_wall_timeout: Duration::from_secs(3),
        ..cfg()
    })
    .await;
    let sub = FakeSub {
        delay: Duration::from_millis(200),
        ..FakeSub::default()
    };
    let started = Instant::now();
    let out = repl
        .exec("while True:\n    llm_query('again')", &sub, None)
        .await
        .unwrap();
    assert!(out.timed_out && out.over_wall_time, "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        sub.calls.lock().unwrap().len() >= 5,
        "the loop made sub-calls"
    );
    // A fresh worker answers.
    assert_eq!(ok(&mut repl, "print(len(context))").await, "3\n");
    repl.shutdown().await;
}

fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie is dead; it only waits to be reaped.
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_worker_that_dies_is_replaced() {
    let mut repl = start().await;
    let out = run(&mut repl, "import os\nos._exit(1)").await;
    let why = out.worker_died.unwrap();
    assert!(why.contains("exited with status 1"), "{why}");
    assert_eq!(ok(&mut repl, "1 + 1").await, "2\n");

    let out = run(&mut repl, "import ctypes\nctypes.string_at(0)").await;
    let why = out.worker_died.unwrap();
    assert!(why.contains("SIGSEGV"), "{why}");
    assert!(
        why.contains("File \"<cell 2>\", line 2"),
        "the crash names the cell line: {why}"
    );
    assert_eq!(ok(&mut repl, "len(context)").await, "3\n");
    repl.shutdown().await;
}

#[tokio::test]
async fn overwritten_helpers_are_restored_and_reported() {
    let mut repl = start().await;
    let out = run(
        &mut repl,
        "context = 1\ndel llm_query\nFINAL = None\nimport sys\nsys.stdout = None",
    )
    .await;
    assert_eq!(out.error, None);
    assert_eq!(
        out.restored_helpers,
        ["context", "llm_query", "FINAL", "sys.stdout"]
    );
    assert_eq!(
        ok(
            &mut repl,
            "print(type(context).__name__, callable(llm_query))"
        )
        .await,
        "Context True\n"
    );
    assert!(run(&mut repl, "pass").await.restored_helpers.is_empty());
    let out = run(
        &mut repl,
        "import io\nsys.stdin = io.StringIO('x')\nsys.stderr = sys.stdout",
    )
    .await;
    assert_eq!(out.restored_helpers, ["sys.stderr", "sys.stdin"]);
    assert_eq!(
        ok(&mut repl, "import sys\nprint('back', file=sys.stderr)").await,
        ""
    );
    let out = run(&mut repl, "FINAL('done')").await;
    assert_eq!(out.final_answer.as_deref(), Some("done"));
    repl.shutdown().await;
}

#[tokio::test]
async fn writes_to_fd_1_do_not_corrupt_the_protocol() {
    // Unsandboxed, so that a child process can write to fd 1 too.
    let mut repl = start_with(unsandboxed()).await;
    let out = run(
        &mut repl,
        "import os\nos.write(1, b'garbage')\nos.write(1, b'\\x05\\x00\\x00\\x00{\"type\":\"done\"}')\nprint('ok')",
    )
    .await;
    assert_eq!(out.error, None);
    assert_eq!(out.stdout, "ok\n");
    let got = ok(
        &mut repl,
        "import subprocess\nsubprocess.run(['echo', 'from a child'])\nprint('still ok')",
    )
    .await;
    assert_eq!(got, "still ok\n");
    assert_eq!(ok(&mut repl, "2 * 21").await, "42\n");

    // Code that goes looking for the protocol's own fd breaks that worker, not the parent.
    let out = run(
        &mut repl,
        "import os\nfor fd in range(3, 16):\n    try:\n        os.write(fd, b'\\xff\\xff\\xff\\x7f')\n    except OSError:\n        pass\nimport time\ntime.sleep(5)",
    )
    .await;
    let why = out.worker_died.unwrap();
    assert!(
        why.contains("protocol error") && why.contains("larger than the limit"),
        "{why}"
    );
    assert_eq!(ok(&mut repl, "2 * 21").await, "42\n");
    repl.shutdown().await;
}

#[tokio::test]
async fn the_worker_runs_in_a_private_directory_with_a_clean_environment() {
    let mut repl = start().await;
    let got = ok(
        &mut repl,
        "import os\nprint(os.getcwd() == os.environ['HOME'] == os.environ['TMPDIR'])\nprint(sorted(os.environ))",
    )
    .await;
    assert_eq!(
        got,
        "True\n['HOME', 'LANG', 'LC_ALL', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', \
         'PYTHONIOENCODING', 'PYTHONNOUSERSITE', 'TMPDIR']\n"
    );
    let pid = repl.worker_pid().unwrap();
    drop(repl);
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(pid), "dropping the Repl kills the worker");
}

#[tokio::test]
async fn shutdown_takes_down_what_model_code_started() {
    let mut repl = start_with(unsandboxed()).await;
    let pid: u32 = ok(
        &mut repl,
        "import subprocess\np = subprocess.Popen(['sleep', '100'])\np.pid",
    )
    .await
    .trim()
    .parse()
    .unwrap();
    assert!(process_alive(pid));
    repl.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!process_alive(pid), "the background process is gone");
}

#[tokio::test]
async fn a_missing_blob_is_a_clear_start_error() {
    let blob = small_workspace();
    std::fs::remove_file(blob.path()).unwrap();
    let err = Repl::start(cfg(), blob).await.err().unwrap().to_string();
    assert!(
        err.contains("failed to start") && err.contains("cannot open"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_worker_binary_is_a_clear_error() {
    let err = Repl::start(
        ReplConfig {
            worker_exe: "/nonexistent/rlm-lsp".into(),
            ..cfg()
        },
        small_workspace(),
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("cannot start the Python REPL worker"),
        "{err}"
    );
}

/// `bench/repl_worker.sh`: cold start with a 100 MB workspace, and per-cell overhead.
#[tokio::test]
#[ignore = "benchmark; run bench/repl_worker.sh"]
#[allow(clippy::print_stdout)]
async fn bench_repl_worker() {
    let files = 10_000;
    let line = "let value = compute(alpha, beta, gamma); // synthetic workspace line .....\n";
    let mut text = line.repeat(100_000_000 / files / line.len() + 1);
    text.truncate(100_000_000 / files);
    let snap = Snapshot {
        root: "/bench".into(),
        files: (0..files)
            .map(|i| SourceFile {
                path: format!("src/module_{:03}/file_{i:05}.rs", i % 100),
                text: text.clone().into(),
            })
            .collect(),
        stats: IndexStats::default(),
    };
    let started = Instant::now();
    let blob = ContextBlob::write(&snap).unwrap();
    let write = started.elapsed();
    println!(
        "ContextBlob::write: {} files, {:.1} MB (10^6 bytes) in {:.1} ms",
        blob.files(),
        blob.bytes() as f64 / 1e6,
        write.as_secs_f64() * 1e3
    );
    drop(snap);

    let mut starts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let repl = Repl::start(cfg(), blob.clone()).await.unwrap();
        starts.push(started.elapsed());
        repl.shutdown().await;
    }
    starts.sort();
    println!(
        "cold start (spawn to Ready, 100 MB context): median {:.1} ms, min {:.1} ms, max {:.1} ms",
        starts[2].as_secs_f64() * 1e3,
        starts[0].as_secs_f64() * 1e3,
        starts[4].as_secs_f64() * 1e3
    );

    let mut repl = Repl::start(cfg(), blob.clone()).await.unwrap();
    let sub = FakeSub::default();
    for _ in 0..20 {
        repl.exec("pass", &sub, None).await.unwrap();
    }
    let n = 200;
    let started = Instant::now();
    for _ in 0..n {
        let out = repl.exec("pass", &sub, None).await.unwrap();
        assert!(out.error.is_none());
    }
    println!(
        "per-cell overhead (exec of `pass`, parent round trip): {:.3} ms average over {n} cells",
        started.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    let started = Instant::now();
    for _ in 0..n {
        repl.exec("r = llm_query('x')", &sub, None).await.unwrap();
    }
    println!(
        "llm_query round trip (instant fake model): {:.3} ms average over {n} cells",
        started.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    let started = Instant::now();
    let out = repl
        .exec("sum(len(t) for t in context.values())", &sub, None)
        .await
        .unwrap();
    println!(
        "first full scan of context (creates every str): {:.1} ms -> {}",
        started.elapsed().as_secs_f64() * 1e3,
        out.stdout.trim()
    );
    let started = Instant::now();
    repl.exec("sum(len(t) for t in context.values())", &sub, None)
        .await
        .unwrap();
    println!(
        "second full scan of context (cached str): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    repl.shutdown().await;
}
