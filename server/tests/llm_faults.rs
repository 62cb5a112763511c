//! Model calls against a scripted server that injects faults: what is retried, how long the
//! client waits, and what the error says when it gives up.

use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use rlm_lsp::llm::{ChatClient, ChatMessage, Endpoint, LlmError, Provider, RetryPolicy};
use std::time::{Duration, Instant};

const FAST: RetryPolicy = RetryPolicy {
    max_retries: 2,
    base_delay: Duration::from_millis(20),
    max_delay: Duration::from_millis(100),
};

async fn client(steps: Vec<Step>, timeout: Duration) -> (ChatClient, ScriptedServer) {
    let server = ScriptedServer::start(steps, SubRule::Echo).await.unwrap();
    let ep = Endpoint {
        base_url: server.base_url(),
        model: "scripted".into(),
        api_key: Some("sk-test".into()),
        api_key_env: Some("TEST_KEY".into()),
        timeout,
        max_tokens: 64,
        temperature: 0.0,
    };
    (ChatClient::new(ep).with_retry(FAST), server)
}

fn root_messages() -> Vec<ChatMessage> {
    vec![ChatMessage::system("s"), ChatMessage::user("q")]
}

fn root_requests(server: &ScriptedServer) -> usize {
    server.requests().len()
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let (c, server) = client(
        vec![Step::RateLimited(1), Step::Reply("ok".into())],
        Duration::from_secs(5),
    )
    .await;
    let t = Instant::now();
    let r = c.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((r.text.as_str(), r.retries), ("ok", 1));
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(r.latency >= Duration::from_secs(1));
    assert_eq!(root_requests(&server), 2);
}

#[tokio::test]
async fn server_error_then_success() {
    let (c, server) = client(
        vec![
            Step::Status(503, "overloaded".into()),
            Step::Reply("ok".into()),
        ],
        Duration::from_secs(5),
    )
    .await;
    let r = c.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((r.text.as_str(), r.retries), ("ok", 1));
    assert_eq!(root_requests(&server), 2);
}

#[tokio::test]
async fn slow_responses_time_out_then_give_up() {
    let slow = || Step::Delayed(Duration::from_secs(2), "late".into());
    let (c, server) = client(vec![slow(), slow(), slow()], Duration::from_millis(300)).await;
    let t = Instant::now();
    let err = c.complete(&root_messages(), &[]).await.unwrap_err();
    let waited = t.elapsed();
    assert!(
        matches!(&err, LlmError::GaveUp { retries: 2, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("did not answer within"), "{msg}");
    assert!(msg.ends_with("(gave up after 2 retries)"), "{msg}");
    // Three attempts of 300 ms plus two short backoffs; never the server's 2 s.
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(root_requests(&server), 3);
}

#[tokio::test]
async fn reset_connection_is_retried() {
    let (c, _server) = client(
        vec![Step::Hangup, Step::Reply("ok".into())],
        Duration::from_secs(5),
    )
    .await;
    let r = c.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((r.text.as_str(), r.retries), ("ok", 1));
}

#[tokio::test]
async fn truncated_and_invalid_bodies_are_errors_not_crashes() {
    let (c, _server) = client(
        vec![Step::Truncated, Step::Reply("ok".into())],
        Duration::from_secs(5),
    )
    .await;
    let r = c.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((r.text.as_str(), r.retries), ("ok", 1));

    let (c, server) = client(
        vec![Step::Garbage, Step::Garbage, Step::Garbage],
        Duration::from_secs(5),
    )
    .await;
    let err = c
        .complete(&root_messages(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a chat completion"), "{err}");
    assert!(err.contains("gave up after 2 retries"), "{err}");
    assert_eq!(root_requests(&server), 3);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_say_what_to_fix() {
    let (c, server) = client(
        vec![
            Step::Status(401, "bad key".into()),
            Step::Reply("never".into()),
        ],
        Duration::from_secs(5),
    )
    .await;
    let t = Instant::now();
    let err = c
        .complete(&root_messages(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(err.contains("rejected the API key (HTTP 401)"), "{err}");
    assert!(err.contains("check the key in $TEST_KEY"), "{err}");
    assert!(!err.contains("sk-test"), "the key leaked: {err}");
    assert_eq!(root_requests(&server), 1);

    let (c, server) = client(
        vec![Step::Status(400, "context length exceeded".into())],
        Duration::from_secs(5),
    )
    .await;
    let err = c
        .complete(&root_messages(), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("context length exceeded"),
        "{err}"
    );
    assert_eq!(root_requests(&server), 1);
}

#[tokio::test]
async fn anthropic_requests_carry_its_headers_and_cache_breakpoints() {
    let (c, server) = client(vec![Step::Reply("hello".into())], Duration::from_secs(5)).await;
    let c = c.with_provider(Provider::Anthropic);
    let r = c
        .complete(
            &[
                ChatMessage::system("stable system prompt"),
                ChatMessage::user("q1"),
                ChatMessage::assistant("a1"),
                ChatMessage::user("q2"),
            ],
            &["\nOutput:"],
        )
        .await
        .unwrap();
    assert_eq!(r.text, "hello");
    let head = server.request_heads().pop().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("post /v1/messages "), "{head}");
    assert!(head.contains("x-api-key: sk-test"), "{head}");
    assert!(head.contains("anthropic-version: 2023-06-01"), "{head}");
    assert!(!head.contains("authorization"), "{head}");
    let body = server.requests().pop().unwrap();
    assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(
        body["messages"][2]["content"][0]["cache_control"]["type"],
        "ephemeral"
    );
    assert!(
        body["messages"][0]["content"][0]
            .get("cache_control")
            .is_none()
    );
    assert_eq!(body["stop_sequences"][0], "\nOutput:");
}

#[tokio::test]
async fn greedy_calls_are_answered_from_the_cache_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let cache = std::sync::Arc::new(rlm_lsp::llm::cache::ResponseCache::new(
        dir.path().to_path_buf(),
        1 << 20,
    ));
    let (c, server) = client(vec![Step::Reply("fresh".into())], Duration::from_secs(5)).await;
    let c = c.with_cache(cache, false);
    let first = c.complete(&root_messages(), &[]).await.unwrap();
    let second = c.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((first.text.as_str(), first.from_cache), ("fresh", false));
    assert_eq!((second.text.as_str(), second.from_cache), ("fresh", true));
    assert_eq!(second.usage, rlm_lsp::llm::Usage::default());
    assert_eq!(
        root_requests(&server),
        1,
        "the second call never reached the server"
    );
    // Another prompt is another key.
    let err = c
        .complete(&[ChatMessage::system("s"), ChatMessage::user("other")], &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("script exhausted"), "{err}");
}

#[tokio::test]
async fn keyed_script_answers_each_conversation_from_its_own_steps() {
    // The JSON form editor tests give `rlm-lsp __scripted-model`.
    let (root, sub) = rlm_lsp::llm::scripted::script_from_json(
        r#"{"root": [{"when": "alpha", "reply": "A"}, {"when": "beta", "reply": "B"},
                     {"reply": "any"}, {"status": 503, "body": "down"}]}"#,
    )
    .unwrap();
    let server = ScriptedServer::start_keyed(root, sub).await.unwrap();
    let c = server.client().with_retry(RetryPolicy {
        max_retries: 0,
        ..FAST
    });
    let ask = |q: &'static str| {
        let c = c.clone();
        async move {
            // The key is looked for after the system prompt only.
            let m = vec![ChatMessage::system("alpha beta"), ChatMessage::user(q)];
            c.complete(&m, &[])
                .await
                .map(|r| r.text)
                .map_err(|e| e.to_string())
        }
    };
    assert_eq!(ask("beta?").await.unwrap(), "B");
    assert_eq!(ask("alpha?").await.unwrap(), "A");
    assert_eq!(ask("gamma?").await.unwrap(), "any");
    assert!(ask("gamma?").await.unwrap_err().contains("503"));
    assert!(
        ask("gamma?")
            .await
            .unwrap_err()
            .contains("script exhausted")
    );
    let bad = rlm_lsp::llm::scripted::script_from_json(r#"{"root": [{"when": "x"}]}"#);
    assert_eq!(bad.unwrap_err(), "step 0: needs \"reply\" or \"status\"");
}
