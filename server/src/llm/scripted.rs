//! A scripted OpenAI-compatible chat server on loopback, for deterministic tests of the loop and
//! for injecting faults. It stands beside the real local model in tests, never instead of it.
//!
//! Root requests (those with a system message) take the next step of the script; sub-calls (no
//! system message) are answered by a rule. Every request body is kept for assertions.

use super::{ChatClient, Endpoint};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer to a root request.
#[derive(Debug, Clone)]
pub enum Step {
    /// Reply with this assistant text.
    Reply(String),
    /// Reply with this text after a delay.
    Delayed(Duration, String),
    /// Answer with an HTTP status and body.
    Status(u16, String),
    /// A 200 whose body is not JSON.
    Garbage,
    /// Close the connection without answering.
    Hangup,
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// A 200 that promises more body than it sends, then closes.
    Truncated,
}

/// How sub-calls are answered.
#[derive(Debug, Clone)]
pub enum SubRule {
    /// `"echo: " + prompt`.
    Echo,
    /// Fail (HTTP 500) for prompts containing this text; echo the rest.
    FailIfContains(String),
    /// Echo after a fixed delay (a model with a known latency, for fan-out benchmarks).
    Latency(Duration),
    /// Recorded answers per prompt, in order (replay of a trajectory); `Err` is a failed call.
    Recorded(HashMap<String, VecDeque<Result<String, String>>>),
    /// Every sub-call gets this HTTP status and message (a 4xx is never retried): the
    /// evaluation's `rlm-no-subcalls` ablation points the sub model here.
    Refuse(u16, String),
}

/// The root replies and sub-call answers recorded in a JSONL trajectory, to re-run it without a
/// model (`rlm-lsp ask --replay FILE`).
pub fn replay_script(trajectory: &str) -> Result<(Vec<Step>, SubRule), String> {
    let mut root = Vec::new();
    let mut sub: HashMap<String, VecDeque<Result<String, String>>> = HashMap::new();
    for (i, line) in trajectory.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e: Value =
            serde_json::from_str(line).map_err(|err| format!("line {}: {err}", i + 1))?;
        match e["type"].as_str() {
            Some("root_message") if e["role"] == "assistant" => {
                root.push(Step::Reply(
                    e["content"].as_str().unwrap_or_default().to_string(),
                ));
            }
            Some("sub_call") => {
                let prompt = e["prompt"].as_str().unwrap_or_default().to_string();
                let answer = match (e["response"].as_str(), e["error"].as_str()) {
                    (Some(r), _) => Ok(r.to_string()),
                    (None, err) => Err(err.unwrap_or("recorded failure").to_string()),
                };
                sub.entry(prompt).or_default().push_back(answer);
            }
            _ => {}
        }
    }
    if root.is_empty() {
        return Err("the trajectory has no root model replies to replay".into());
    }
    Ok((root, SubRule::Recorded(sub)))
}

/// A step with an optional key (see `ScriptedServer::start_keyed`).
pub type KeyedStep = (Option<String>, Step);

/// A script from JSON, for `rlm-lsp __scripted-model FILE` (editor tests run it as a process):
/// `{"root": [{"when": "KEY", "reply": "TEXT", "delay_ms": 0} | {"status": 500, "body": "..."}],
///   "sub": "echo"}`.
pub fn script_from_json(text: &str) -> Result<(Vec<KeyedStep>, SubRule), String> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| format!("the script is not JSON: {e}"))?;
    let steps = v["root"]
        .as_array()
        .ok_or("the script needs a \"root\" array of steps")?;
    let mut root = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let key = s["when"].as_str().map(str::to_string);
        let step = match (s["reply"].as_str(), s["status"].as_u64()) {
            (Some(text), _) => match s["delay_ms"].as_u64() {
                Some(ms) if ms > 0 => Step::Delayed(Duration::from_millis(ms), text.to_string()),
                _ => Step::Reply(text.to_string()),
            },
            (None, Some(code)) => Step::Status(
                u16::try_from(code).map_err(|_| format!("step {i}: bad status {code}"))?,
                s["body"].as_str().unwrap_or("scripted failure").to_string(),
            ),
            _ => return Err(format!("step {i}: needs \"reply\" or \"status\"")),
        };
        root.push((key, step));
    }
    let sub = match v["sub"].as_str().unwrap_or("echo") {
        "echo" => SubRule::Echo,
        other => return Err(format!("unknown sub rule {other:?} (only \"echo\")")),
    };
    Ok((root, sub))
}

/// `rlm-lsp __scripted-model [--port PORT] FILE [IGNORED...]`: serves the script on loopback (on
/// `PORT`, else a free port), prints `{"base_url": ...}` on one line of stdout, and serves until
/// killed. Arguments after the file are ignored, so a script standing in for llama-server can
/// pass its whole command line along (the local model's fault tests).
pub const SCRIPTED_SUBCOMMAND: &str = "__scripted-model";

#[allow(clippy::print_stdout, clippy::print_stderr)] // a process entry point: this is its output
pub fn scripted_main(args: Vec<String>) -> i32 {
    let run = async {
        let usage = "usage: rlm-lsp __scripted-model [--port PORT] SCRIPT.json";
        let (port, path) = match args.as_slice() {
            [flag, port, path, ..] if flag == "--port" => (
                port.parse::<u16>()
                    .map_err(|e| format!("--port {port:?}: {e}"))?,
                path,
            ),
            [path, ..] => (0, path),
            [] => return Err(usage.to_string()),
        };
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let (root, sub) = script_from_json(&text)?;
        let server = ScriptedServer::start_keyed_on(port, root, sub)
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", json!({"base_url": server.base_url()}));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
        Ok::<(), String>(())
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match rt.block_on(run) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

struct State {
    /// Steps with an optional key: a keyed step answers only a request whose conversation
    /// (the messages after the system prompt) contains the key.
    root: VecDeque<KeyedStep>,
    sub: SubRule,
    requests: Vec<Value>,
    heads: Vec<String>,
    /// Request heads of the `GET /models` requests.
    list_heads: Vec<String>,
    /// Chat requests being answered now, and the most there ever were at once.
    in_flight: usize,
    max_in_flight: usize,
}

#[derive(Clone)]
pub struct ScriptedServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Starts serving on a free loopback port. When the script runs out, root requests get
    /// HTTP 500 "script exhausted".
    pub async fn start(root: Vec<Step>, sub: SubRule) -> std::io::Result<Self> {
        Self::start_keyed(root.into_iter().map(|s| (None, s)).collect(), sub).await
    }

    /// Like `start`, but each root request takes the first remaining step whose key occurs in
    /// its conversation (or that has no key), so several runs in any order each get their own
    /// script: editor tests ask, explain and refactor against one server.
    pub async fn start_keyed(root: Vec<KeyedStep>, sub: SubRule) -> std::io::Result<Self> {
        Self::start_keyed_on(0, root, sub).await
    }

    /// `start_keyed` on a given loopback port (0: a free one).
    pub async fn start_keyed_on(
        port: u16,
        root: Vec<KeyedStep>,
        sub: SubRule,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            root: root.into(),
            sub,
            requests: Vec::new(),
            heads: Vec::new(),
            list_heads: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        Ok(ScriptedServer {
            addr,
            state,
            task: Arc::new(task),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A client of this server (model `scripted`, 30 s timeout), for tests and benchmarks.
    pub fn client(&self) -> ChatClient {
        ChatClient::new(Endpoint {
            base_url: self.base_url(),
            model: "scripted".into(),
            api_key: None,
            api_key_env: None,
            timeout: Duration::from_secs(30),
            max_tokens: 256,
            temperature: 0.0,
        })
    }

    /// Bodies of all chat requests so far.
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .clone()
    }

    /// Request lines and headers of all chat requests so far.
    pub fn request_heads(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .heads
            .clone()
    }

    /// Request lines and headers of all `GET /models` requests so far.
    pub fn model_list_heads(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list_heads
            .clone()
    }

    /// Stops accepting connections (a model server that went away).
    /// The most chat requests this server was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .max_in_flight
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn serve(mut sock: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    loop {
        let Some((head, body)) = read_request(&mut sock).await? else {
            return Ok(());
        };
        let first = head.lines().next().unwrap_or_default().to_string();
        if first.starts_with("GET ") && first.contains("/models") {
            (state.lock().unwrap_or_else(|e| e.into_inner()))
                .list_heads
                .push(head.clone());
            write_json(
                &mut sock,
                200,
                &json!({"object": "list", "data": [{"id": "scripted"}]}).to_string(),
            )
            .await?;
            continue;
        }
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let anthropic = first.contains("/messages");
        let messages = req["messages"].as_array().cloned().unwrap_or_default();
        let is_root = req.get("system").is_some() || messages.iter().any(|m| m["role"] == "system");
        let step = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.in_flight += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
            st.requests.push(req.clone());
            st.heads.push(head.clone());
            if is_root {
                let conversation: String = messages
                    .iter()
                    .filter(|m| m["role"] != "system")
                    .filter_map(|m| m["content"].as_str())
                    .collect();
                let pos = st
                    .root
                    .iter()
                    .position(|(key, _)| key.as_deref().is_none_or(|k| conversation.contains(k)));
                pos.and_then(|i| st.root.remove(i))
                    .map(|(_, step)| step)
                    .unwrap_or(Step::Status(500, "script exhausted".into()))
            } else {
                let prompt = messages
                    .last()
                    .and_then(|m| m["content"].as_str())
                    .unwrap_or_default();
                match &mut st.sub {
                    SubRule::FailIfContains(s) if prompt.contains(s.as_str()) => {
                        Step::Status(500, "scripted sub-call failure".into())
                    }
                    SubRule::Latency(d) => Step::Delayed(*d, format!("echo: {prompt}")),
                    SubRule::Refuse(code, message) => Step::Status(*code, message.clone()),
                    SubRule::Recorded(answers) => {
                        match answers.get_mut(prompt).and_then(VecDeque::pop_front) {
                            Some(Ok(text)) => Step::Reply(text),
                            Some(Err(e)) => Step::Status(500, e),
                            None => Step::Status(500, "this prompt is not in the recording".into()),
                        }
                    }
                    _ => Step::Reply(format!("echo: {prompt}")),
                }
            }
        };
        // Counted out however the answer ends (hang-ups and write errors included).
        let _busy = Busy(state.clone());
        let reply = |text: &str| {
            if anthropic {
                anthropic_message(text, &messages)
            } else {
                completion(text, &messages)
            }
        };
        match step {
            Step::Reply(text) => write_json(&mut sock, 200, &reply(&text)).await?,
            Step::Delayed(d, text) => {
                tokio::time::sleep(d).await;
                write_json(&mut sock, 200, &reply(&text)).await?
            }
            Step::RateLimited(secs) => {
                let body = r#"{"error":{"message":"rate limited"}}"#;
                let msg = format!(
                    "HTTP/1.1 429 X\r\nretry-after: {secs}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(msg.as_bytes()).await?;
            }
            Step::Truncated => {
                let msg = "HTTP/1.1 200 X\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"choices\": [";
                sock.write_all(msg.as_bytes()).await?;
                return Ok(());
            }
            Step::Status(code, body) => {
                write_json(
                    &mut sock,
                    code,
                    &json!({"error": {"message": body}}).to_string(),
                )
                .await?
            }
            Step::Garbage => write_json(&mut sock, 200, "<html>not json</html>").await?,
            Step::Hangup => return Ok(()),
        }
    }
}

/// One chat request being answered (see `State::in_flight`).
struct Busy(Arc<Mutex<State>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).in_flight -= 1;
    }
}

fn completion(text: &str, messages: &[Value]) -> String {
    let prompt_chars: usize = messages
        .iter()
        .map(|m| m["content"].as_str().map_or(0, str::len))
        .sum();
    json!({
        "id": "scripted",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_chars / 4, "completion_tokens": text.len() / 4}
    })
    .to_string()
}

fn anthropic_message(text: &str, messages: &[Value]) -> String {
    let prompt_chars: usize = messages
        .iter()
        .map(|m| m["content"].to_string().len())
        .sum();
    json!({
        "id": "scripted",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": prompt_chars / 4, "output_tokens": text.len() / 4,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    })
    .to_string()
}

async fn read_request(sock: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, body)))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn write_json(sock: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // One write: a head and a body in two segments meet delayed ACKs and cost 40 ms a reply.
    sock.write_all(format!("{head}{body}").as_bytes()).await?;
    sock.flush().await
}
