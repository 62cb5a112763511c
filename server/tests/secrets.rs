//! API keys are never written anywhere. `rlm-lsp serve` (and `rlm-lsp ask`) run with a root, a
//! sub and a child model, each on a scripted server with a key of its own read from the
//! variable its setting names (`apiKeyEnv`, `subApiKeyEnv`, `childApiKeyEnv`, set through the
//! environment or through the editor's settings). Runs that read the worker's environment, make
//! sub-calls and child runs, explain, plan a refactor checked by a command, and a run cancelled
//! mid-cell; then no key appears in any message the editor got (answers, trajectories,
//! `rlm.status`, progress), the server's log at `RLM_LOG=trace`, any file it wrote (answer
//! documents, the response cache, the temp directory), the CLI's trajectory file, the worker's
//! environment (`/proc/PID/environ` and what a cell prints), the check command's environment,
//! or what the models were sent; and each key did reach its own endpoint, in the
//! `Authorization` header.

mod support;

use rlm_lsp::llm::scripted::{KeyedStep, ScriptedServer, Step, SubRule};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::{
    LspClient, SMALL_WORKSPACE, cell, repl_workers, root_model_replied, write_workspace,
};
use tokio::io::AsyncReadExt;

const ROOT_KEY: &str = "sk-rlmtest-ROOT-5f1c0a9e";
const SUB_KEY: &str = "sk-rlmtest-SUB-82bd4e17";
const CHILD_KEY: &str = "sk-rlmtest-CHILD-c3a7f260";
const ROOT_VAR: &str = "RLMTEST_ROOT_KEY";
const SUB_VAR: &str = "RLMTEST_SUB_KEY";
const CHILD_VAR: &str = "RLMTEST_CHILD_KEY";

/// Each key, and a piece of it that would still give it away (cut, or as part of a header).
fn secrets() -> Vec<&'static str> {
    vec![
        ROOT_KEY,
        SUB_KEY,
        CHILD_KEY,
        "ROOT-5f1c0a9e",
        "SUB-82bd4e17",
        "CHILD-c3a7f260",
    ]
}

/// A cell that prints the worker's environment, makes a sub-call and a child run, and answers
/// with all three.
const TELL_ALL: &str = "import os\nenv = dict(os.environ)\nprint(env)\n\
                        s = llm_query('what is alpha?')\nc = rlm_query('what is beta?')\n\
                        FINAL('env: ' + repr(env) + ' sub: ' + s + ' child: ' + c)";

fn root_script() -> Vec<KeyedStep> {
    let plan = "Rename alpha to first.\n```edit a.rs\n<<<<<<< SEARCH\nfn alpha() -> u32 {\n\
                =======\nfn first() -> u32 {\n>>>>>>> REPLACE\n```\n";
    vec![
        (Some("secretask".into()), cell(TELL_ALL)),
        (
            Some("Explain the symbol `alpha`".into()),
            Step::Reply("FINAL(alpha returns 42)".into()),
        ),
        (
            Some("secretrefactor".into()),
            cell(&format!("FINAL({plan:?})")),
        ),
        (
            Some("secretsleep".into()),
            cell("import os\nprint(dict(os.environ))\nimport time\ntime.sleep(120)"),
        ),
        (Some("secretcli".into()), cell(TELL_ALL)),
    ]
}

/// The three model servers.
struct Models {
    root: ScriptedServer,
    sub: ScriptedServer,
    child: ScriptedServer,
}

impl Models {
    async fn start() -> Models {
        let child_steps = (0..4).map(|_| cell("FINAL('the child answer')")).collect();
        Models {
            root: ScriptedServer::start_keyed(root_script(), SubRule::Echo)
                .await
                .unwrap(),
            sub: ScriptedServer::start(Vec::new(), SubRule::Echo)
                .await
                .unwrap(),
            child: ScriptedServer::start(child_steps, SubRule::Echo)
                .await
                .unwrap(),
        }
    }

    /// The model settings by the names of the editor's settings (`RLM_*` variables in the
    /// environment's case).
    fn settings(&self, check_env_file: &Path) -> Vec<(&'static str, &'static str, String)> {
        vec![
            ("baseUrl", "RLM_BASE_URL", self.root.base_url()),
            ("model", "RLM_MODEL", "scripted".into()),
            ("apiKeyEnv", "RLM_API_KEY_ENV", ROOT_VAR.into()),
            ("subBaseUrl", "RLM_SUB_BASE_URL", self.sub.base_url()),
            ("subModel", "RLM_SUB_MODEL", "scripted".into()),
            ("subApiKeyEnv", "RLM_SUB_API_KEY_ENV", SUB_VAR.into()),
            ("childBaseUrl", "RLM_CHILD_BASE_URL", self.child.base_url()),
            ("childModel", "RLM_CHILD_MODEL", "scripted".into()),
            ("childApiKeyEnv", "RLM_CHILD_API_KEY_ENV", CHILD_VAR.into()),
            ("responseCache", "RLM_RESPONSE_CACHE", "all".into()),
            (
                "checkCommand",
                "RLM_CHECK_COMMAND",
                format!("env > {}", check_env_file.display()),
            ),
        ]
    }

    /// Every request each server got carried its own key, and no body held any key.
    fn check_requests(&self) {
        for (server, key, name) in [
            (&self.root, ROOT_KEY, "root"),
            (&self.sub, SUB_KEY, "sub"),
            (&self.child, CHILD_KEY, "child"),
        ] {
            let heads = server.request_heads();
            assert!(!heads.is_empty(), "the {name} model was asked");
            let want = format!("Bearer {key}");
            for head in heads.iter().chain(&server.model_list_heads()) {
                let auth = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("authorization")
                        .then(|| v.trim().to_string())
                });
                assert_eq!(auth.as_deref(), Some(want.as_str()), "{name}: {head}");
            }
            for body in server.requests() {
                assert_no_secret(
                    &format!("what the {name} model was sent"),
                    &body.to_string(),
                );
            }
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(s), "{what} holds {s:?}");
    }
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => {
                    out.push((p.clone(), std::fs::read(&p).unwrap_or_default()))
                }
                _ => {}
            }
        }
    }
    out
}

fn assert_no_secret_in_files(dir: &Path) -> usize {
    let files = files_under(dir);
    for (path, bytes) in &files {
        assert_no_secret(
            &format!("{}", path.display()),
            &String::from_utf8_lossy(bytes),
        );
    }
    files.len()
}

/// A command with only the keys, `PATH` and what the embedded Python may need, plus `extra`.
fn command(
    exe_args: &[&str],
    cwd: &Path,
    tmp: &Path,
    extra: &[(&str, String)],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_rlm-lsp"));
    cmd.args(exe_args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(ROOT_VAR, ROOT_KEY)
        .env(SUB_VAR, SUB_KEY)
        .env(CHILD_VAR, CHILD_KEY)
        .env("RLM_CACHE_DIR", tmp.join("cache"))
        .env("TMPDIR", tmp.join("tmp"))
        .env("RLM_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in ["PYTHONHOME", "LD_LIBRARY_PATH"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    std::fs::create_dir_all(tmp.join("tmp")).unwrap();
    cmd
}

/// Reads a pipe to its end in the background.
fn collect(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out).await;
        out
    })
}

/// The settings through the environment (`RLM_*`) or through `initializationOptions`.
#[derive(Clone, Copy, Debug)]
enum Through {
    Environment,
    EditorSettings,
}

async fn serve_and_check(through: Through) {
    let (_dir, root) = write_workspace(SMALL_WORKSPACE);
    let tmp_dir = tempfile::tempdir().unwrap();
    let tmp = tmp_dir.path();
    let models = Models::start().await;
    let check_env = tmp.join("check-env.txt");
    let settings = models.settings(&check_env);
    let (env, mut options): (Vec<(&str, String)>, serde_json::Map<String, Value>) = match through {
        Through::Environment => (
            settings
                .iter()
                .map(|(_, var, v)| (*var, v.clone()))
                .collect(),
            serde_json::Map::new(),
        ),
        Through::EditorSettings => (
            Vec::new(),
            settings
                .iter()
                .map(|(name, _, v)| (name.to_string(), json!(v)))
                .collect(),
        ),
    };
    options.insert("answerDocument".into(), json!(true));
    options.insert("maxIterations".into(), json!(3));

    let mut server = command(&["serve"], &root, tmp, &env).spawn().unwrap();
    let stderr = collect(server.stderr.take().unwrap());
    let pid = server.id().unwrap();
    let mut c = LspClient::new(server.stdout.take().unwrap(), server.stdin.take().unwrap());
    c.initialize(&root, Value::Object(options)).await;
    let mut seen: Vec<Value> = Vec::new();
    let a_rs = format!("file://{}", root.join("a.rs").display());

    let r = c
        .command("rlm.ask", json!({"question": "Tell all. (secretask)"}))
        .await;
    let answer = r["result"]["answer"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(answer.contains("sub: echo: what is alpha?"), "{r}");
    assert!(answer.contains("child: the child answer"), "{r}");
    // The cell did see the worker's environment: HOME is its private directory.
    assert!(answer.contains("'HOME'"), "{answer}");
    seen.push(r);

    let r = c
        .command(
            "rlm.explain",
            json!({"uri": a_rs, "position": {"line": 5, "character": 6}}),
        )
        .await;
    assert_eq!(r["result"]["answer"], "alpha returns 42", "{r}");
    seen.push(r);

    let r = c
        .command(
            "rlm.planRefactor",
            json!({"instruction": "Rename alpha. (secretrefactor)"}),
        )
        .await;
    assert_eq!(r["result"]["check"]["passed"], true, "the check ran: {r}");
    seen.push(r);

    // A run whose cell sleeps: its worker's environment as the kernel has it.
    let req = c
        .start_request(
            "workspace/executeCommand",
            json!({"command": "rlm.ask", "arguments": [{"question": "Sleep. (secretsleep)", "id": "sleep"}]}),
        )
        .await;
    c.read_until(|m| root_model_replied(m, "sleep")).await;
    let workers = repl_workers(pid);
    assert_eq!(workers.len(), 1, "{workers:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", workers[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
    assert!(environ.contains("HOME="), "{environ}");
    assert_no_secret("the worker's environment", &environ);
    let r = c.command("rlm.cancel", json!({"id": "sleep"})).await;
    assert_eq!(r["result"]["cancelled"], true, "{r}");
    seen.push(c.wait_response(req).await);

    let r = c.command("rlm.status", json!({})).await;
    assert!(r["result"]["endpoints"]["root"].is_object(), "{r}");
    seen.push(r);

    c.shutdown().await;
    server.wait().await.unwrap();
    // Progress, messages and the server's requests (answer documents shown) too.
    seen.append(&mut c.notifications);
    seen.extend(c.responses.drain(..));
    drop(c);
    let log = String::from_utf8_lossy(&stderr.await.unwrap()).into_owned();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is verbose"
    );

    for msg in &seen {
        assert_no_secret(
            &format!("{through:?}: a message to the editor"),
            &msg.to_string(),
        );
    }
    assert_no_secret(&format!("{through:?}: the server's log"), &log);
    let check = std::fs::read_to_string(&check_env).expect("the check command ran");
    assert!(check.contains("PATH="), "{check}");
    assert_no_secret(
        &format!("{through:?}: the check command's environment"),
        &check,
    );
    let answers = files_under(&tmp.join("cache/answers"));
    assert!(!answers.is_empty(), "answer documents were written");
    let cached = files_under(&tmp.join("cache/responses"));
    assert!(!cached.is_empty(), "sub-call answers were cached");
    let files = assert_no_secret_in_files(tmp);
    models.check_requests();
    support::note(
        "secrets",
        &format!(
            "{through:?}: {} messages, {} bytes of log, {files} files ({} answer documents, {} \
             cached responses), the worker's and the check's environment: no key",
            seen.len(),
            log.len(),
            answers.len(),
            cached.len(),
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_written_anywhere_with_keys_named_in_the_environment() {
    serve_and_check(Through::Environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_is_written_anywhere_with_keys_named_in_the_editor_settings() {
    serve_and_check(Through::EditorSettings).await;
}

/// `rlm-lsp ask` with a trajectory file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_no_key_in_its_trajectory_output_or_log() {
    let (_dir, root) = write_workspace(SMALL_WORKSPACE);
    let tmp_dir = tempfile::tempdir().unwrap();
    let tmp = tmp_dir.path();
    let models = Models::start().await;
    let mut env: Vec<(&str, String)> = models
        .settings(&tmp.join("check-env.txt"))
        .into_iter()
        .map(|(_, var, v)| (var, v))
        .collect();
    env.push(("RLM_MAX_ITERATIONS", "3".into()));
    let trajectory = tmp.join("run.jsonl");
    let mut cmd = command(
        &[
            "ask",
            "--json",
            "--trajectory",
            trajectory.to_str().unwrap(),
            "Tell all. (secretcli)",
        ],
        &root,
        tmp,
        &env,
    );
    cmd.stdin(Stdio::null());
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("the child answer"), "{stdout}");
    assert_no_secret("the CLI's output", &stdout);
    assert_no_secret("the CLI's log", &stderr);
    let t = std::fs::read_to_string(&trajectory).unwrap();
    assert!(t.contains("echo: what is alpha?"), "{t}");
    let files = assert_no_secret_in_files(tmp);
    models.check_requests();
    support::note(
        "secrets",
        &format!(
            "rlm-lsp ask: {} bytes of output, {} of log, {} of trajectory, {files} files: no key",
            stdout.len(),
            stderr.len(),
            t.len()
        ),
    );
}
