//! An API key goes only to the endpoint it was named for (root, sub or child model), never over
//! plain http:// to another machine unless the user allows it; cached answers are kept apart per
//! endpoint. Everything runs against scripted model servers on loopback; nothing else is
//! contacted.

use clap::{Args, FromArgMatches};
use rlm_lsp::config::ModelSettings;
use rlm_lsp::llm::ChatMessage;
use rlm_lsp::llm::cache::ResponseCache;
use rlm_lsp::llm::scripted::{ScriptedServer, Step, SubRule};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings from command-line flags alone: the test process's own `RLM_*` variables are ignored.
fn settings(args: &[&str]) -> ModelSettings {
    let cmd = ModelSettings::augment_args(clap::Command::new("t").no_binary_name(true))
        .mut_args(|a| a.env(None::<&'static str>));
    let matches = cmd
        .try_get_matches_from(args)
        .unwrap_or_else(|e| panic!("{e}"));
    ModelSettings::from_arg_matches(&matches).unwrap()
}

/// The environment the API-key variables are read from.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| vars.get(k).cloned()
}

async fn server(replies: &[&str]) -> ScriptedServer {
    let steps = replies.iter().map(|r| Step::Reply(r.to_string())).collect();
    ScriptedServer::start(steps, SubRule::Echo).await.unwrap()
}

fn root_messages() -> Vec<ChatMessage> {
    vec![ChatMessage::system("s"), ChatMessage::user("q")]
}

/// The `Authorization` header of each request the server received (listing models included).
fn authorizations(server: &ScriptedServer) -> Vec<Option<String>> {
    let heads = server.model_list_heads().into_iter();
    heads
        .chain(server.request_heads())
        .map(|head| {
            head.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("authorization")
                    .then(|| value.trim().to_string())
            })
        })
        .collect()
}

fn all_requests_carry(server: &ScriptedServer, auth: Option<&str>) {
    let seen = authorizations(server);
    assert!(!seen.is_empty(), "{} got no request", server.base_url());
    for got in &seen {
        assert_eq!(got.as_deref(), auth, "{}: {seen:?}", server.base_url());
    }
}

#[tokio::test]
async fn the_root_key_goes_to_no_other_endpoint() {
    let (a, b, c) = (
        server(&["root answer"]).await,
        server(&[]).await,
        server(&["child answer"]).await,
    );
    let s = settings(&[
        "--base-url",
        &a.base_url(),
        "--api-key-env",
        "ROOT_KEY",
        "--sub-base-url",
        &b.base_url(),
        "--child-base-url",
        &c.base_url(),
        "--response-cache",
        "off",
    ]);
    // No model is named: each server is asked for its models, with the key it is due.
    let r = s
        .resolve_with_env(env(&[("ROOT_KEY", "sk-root")]))
        .await
        .unwrap();
    let m = &r.models;
    assert_eq!(
        m.root.complete(&root_messages(), &[]).await.unwrap().text,
        "root answer"
    );
    let sub = m.sub.complete(&[ChatMessage::user("hi")], &[]).await;
    assert_eq!(sub.unwrap().text, "echo: hi");
    let child = m.child_root.as_ref().unwrap();
    let answer = child.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!(answer.text, "child answer");
    all_requests_carry(&a, Some("Bearer sk-root"));
    all_requests_carry(&b, None);
    all_requests_carry(&c, None);
}

#[tokio::test]
async fn sub_and_child_endpoints_get_their_own_keys() {
    let (a, b, c) = (
        server(&["root answer"]).await,
        server(&[]).await,
        server(&["child answer"]).await,
    );
    let s = settings(&[
        "--base-url",
        &a.base_url(),
        "--api-key-env",
        "ROOT_KEY",
        "--sub-base-url",
        &b.base_url(),
        "--sub-api-key-env",
        "SUB_KEY",
        "--child-base-url",
        &c.base_url(),
        "--child-api-key-env",
        "CHILD_KEY",
        "--response-cache",
        "off",
    ]);
    let keys = env(&[
        ("ROOT_KEY", "sk-root"),
        ("SUB_KEY", "sk-sub"),
        ("CHILD_KEY", "sk-child"),
    ]);
    let r = s.resolve_with_env(keys).await.unwrap();
    let m = &r.models;
    m.root.complete(&root_messages(), &[]).await.unwrap();
    m.sub
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap();
    let child = m.child_root.as_ref().unwrap();
    child.complete(&root_messages(), &[]).await.unwrap();
    all_requests_carry(&a, Some("Bearer sk-root"));
    all_requests_carry(&b, Some("Bearer sk-sub"));
    all_requests_carry(&c, Some("Bearer sk-child"));

    // A sub key that is named but not set is an error naming its own flag.
    let err = s
        .resolve_with_env(env(&[("ROOT_KEY", "sk-root"), ("CHILD_KEY", "sk-child")]))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--sub-api-key-env"), "{err}");
    assert!(err.contains("export SUB_KEY=<your key>"), "{err}");
}

#[tokio::test]
async fn endpoints_at_the_root_url_share_its_key() {
    let a = server(&["root answer", "child answer"]).await;
    // The same base URL, spelt with a trailing slash.
    let same = format!("{}/", a.base_url());
    let s = settings(&[
        "--base-url",
        &a.base_url(),
        "--api-key-env",
        "ROOT_KEY",
        "--sub-base-url",
        &same,
        "--child-base-url",
        &same,
        "--response-cache",
        "off",
    ]);
    let r = s
        .resolve_with_env(env(&[("ROOT_KEY", "sk-root")]))
        .await
        .unwrap();
    let m = &r.models;
    m.root.complete(&root_messages(), &[]).await.unwrap();
    m.sub
        .complete(&[ChatMessage::user("hi")], &[])
        .await
        .unwrap();
    let child = m.child_root.as_ref().unwrap();
    child.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!(a.request_heads().len(), 3);
    all_requests_carry(&a, Some("Bearer sk-root"));
}

/// A documentation address (TEST-NET-1): never contacted, as these tests name the models.
const REMOTE_HTTP: &str = "http://192.0.2.1:9/v1";

#[tokio::test]
async fn a_key_over_plain_http_to_another_host_needs_the_opt_in() {
    let keys = || env(&[("ROOT_KEY", "sk-root"), ("SUB_KEY", "sk-sub")]);
    let root_remote = [
        "--base-url",
        REMOTE_HTTP,
        "--model",
        "m",
        "--api-key-env",
        "ROOT_KEY",
        "--response-cache",
        "off",
    ];
    let t = Instant::now();
    let err = settings(&root_remote)
        .resolve_with_env(keys())
        .await
        .err()
        .expect("a key over plain http to another host was accepted")
        .to_string();
    assert!(err.contains("$ROOT_KEY"), "{err}");
    assert!(err.contains(REMOTE_HTTP), "{err}");
    assert!(err.contains("https://"), "{err}");
    assert!(err.contains("--allow-insecure-http"), "{err}");
    assert!(err.contains("RLM_ALLOW_INSECURE_HTTP=1"), "{err}");
    assert!(!err.contains("sk-root"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // With the opt-in it goes ahead (the model is named, so nothing is contacted).
    let allowed = [&root_remote[..], &["--allow-insecure-http"]].concat();
    settings(&allowed).resolve_with_env(keys()).await.unwrap();

    // The check comes before anything is contacted: here the root server gets no request.
    let a = server(&[]).await;
    let sub_remote = [
        "--base-url",
        &a.base_url(),
        "--api-key-env",
        "ROOT_KEY",
        "--sub-base-url",
        REMOTE_HTTP,
        "--sub-api-key-env",
        "SUB_KEY",
        "--response-cache",
        "off",
    ];
    let err = settings(&sub_remote)
        .resolve_with_env(keys())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("$SUB_KEY") && err.contains("sub model"),
        "{err}"
    );
    assert!(authorizations(&a).is_empty(), "{err}");

    // No key, nothing to leak: a plain-http sub model on another host is fine without one.
    let no_key = [
        &sub_remote[..6],
        &["--sub-model", "m", "--response-cache", "off"],
    ]
    .concat();
    settings(&no_key).resolve_with_env(keys()).await.unwrap();

    // https anywhere, and http to this machine, need no opt-in.
    for url in [
        "https://192.0.2.1:9/v1",
        "http://localhost:9/v1",
        "http://127.0.0.2:9/v1",
        "http://[::1]:9/v1",
    ] {
        let args = [
            "--base-url",
            url,
            "--model",
            "m",
            "--api-key-env",
            "ROOT_KEY",
        ];
        let args = [&args[..], &["--response-cache", "off"]].concat();
        let resolved = settings(&args).resolve_with_env(keys()).await;
        assert!(resolved.is_ok(), "{url}: {:?}", resolved.err());
    }
}

#[tokio::test]
async fn cached_answers_are_kept_apart_per_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(ResponseCache::new(dir.path().to_path_buf(), 1 << 20));
    // Two servers, one model name ("scripted"), one prompt, one cache directory.
    let (a, b) = (server(&["from A"]).await, server(&["from B"]).await);
    let from_a = a.client().with_cache(cache.clone(), false);
    let from_b = b.client().with_cache(cache.clone(), false);
    let first = from_a.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((first.text.as_str(), first.from_cache), ("from A", false));
    let second = from_b.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!(
        (second.text.as_str(), second.from_cache),
        ("from B", false),
        "the second server's answer came from the first server's cache"
    );
    assert_eq!(b.requests().len(), 1);
    // Each endpoint's answer is still cached for it.
    let again = from_a.complete(&root_messages(), &[]).await.unwrap();
    assert_eq!((again.text.as_str(), again.from_cache), ("from A", true));
    assert_eq!(a.requests().len(), 1);
}
