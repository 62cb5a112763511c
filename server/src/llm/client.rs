//! The chat client shared by every backend: sending, retries with backoff, and errors that say
//! what to do. The wire formats live in `openai.rs` and `anthropic.rs`.

use super::cache::ResponseCache;
use super::{
    ChatMessage, Completion, Endpoint, LlmError, Provider, Usage, anthropic, local, openai, snippet,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When and how long to retry a failed call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// First backoff; doubled each retry, with ±50% jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): the server's `Retry-After` when it gave
    /// one (capped), else exponential backoff with jitter.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max_delay.max(Duration::from_secs(120)));
        }
        let exp = self.base_delay.saturating_mul(1u32 << retry.min(16));
        let capped = exp.min(self.max_delay);
        // Jitter in [0.5, 1.5): clients that failed together do not retry together.
        capped.mul_f64(0.5 + jitter())
    }
}

/// A pseudo-random number in [0, 1), good enough for jitter, without a dependency.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What a cached answer is keyed by; serialized as the JSON object
/// `{"endpoint", "model", "provider", "body"}` in this order (the keys of existing caches).
#[derive(serde::Serialize)]
struct CacheKey<'a> {
    /// The base URL without a trailing `/`, or the scope that stands for it.
    endpoint: &'a str,
    model: &'a str,
    provider: Provider,
    body: &'a Value,
}

/// One failed attempt: the error, and whether another attempt may succeed.
struct Failure {
    error: LlmError,
    retriable: bool,
    retry_after: Option<Duration>,
    /// The server may be gone or restarting (refused, reset, 503): a local model's keeper may
    /// be starting llama-server again.
    server_down: bool,
}

#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    provider: Provider,
    retry: RetryPolicy,
    cache: Option<Arc<ResponseCache>>,
    /// Names the endpoint in cache keys in place of its base URL (see `with_cache_scope`).
    cache_scope: Option<String>,
    /// Cache sampled (temperature > 0) calls too, not only greedy ones.
    cache_sampled: bool,
}

impl ChatClient {
    /// An OpenAI-compatible client with the default retry policy.
    pub fn new(endpoint: Endpoint) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        ChatClient {
            http,
            endpoint,
            provider: Provider::OpenAi,
            retry: RetryPolicy::default(),
            cache: None,
            cache_scope: None,
            cache_sampled: false,
        }
    }

    /// Answers repeated requests from `cache`: greedy ones always, sampled ones if `sampled`.
    pub fn with_cache(mut self, cache: Arc<ResponseCache>, sampled: bool) -> Self {
        self.cache = Some(cache);
        self.cache_sampled = sampled;
        self
    }

    /// Keys cached answers by `scope` instead of the base URL: for a server whose port changes
    /// from run to run while its model does not (the shared local model).
    pub fn with_cache_scope(mut self, scope: impl Into<String>) -> Self {
        self.cache_scope = Some(scope.into());
        self
    }

    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    fn url(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.endpoint.base_url.trim_end_matches('/'))
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (self.provider, &self.endpoint.api_key) {
            (Provider::Anthropic, Some(key)) => req
                .header("x-api-key", key)
                .header("anthropic-version", anthropic::API_VERSION),
            (Provider::Anthropic, None) => req.header("anthropic-version", anthropic::API_VERSION),
            (Provider::OpenAi, Some(key)) => req.bearer_auth(key),
            (Provider::OpenAi, None) => req,
        }
    }

    /// One chat completion, ending early at any of `stop`; retried on rate limits, server errors,
    /// dropped connections and timeouts, never on a request the server refused as wrong.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        stop: &[&str],
    ) -> Result<Completion, LlmError> {
        let (path, body) = match self.provider {
            Provider::OpenAi => (
                "chat/completions",
                openai::request(&self.endpoint, messages, stop),
            ),
            Provider::Anthropic => (
                "messages",
                anthropic::request(&self.endpoint, messages, stop),
            ),
        };
        let url = self.url(path);
        let started = Instant::now();
        let cache = self
            .cache
            .as_ref()
            .filter(|_| self.endpoint.temperature == 0.0 || self.cache_sampled);
        // Another server (or model) is another answer: the key names the endpoint too.
        let key = cache.map(|_| {
            ResponseCache::key(&CacheKey {
                endpoint: match &self.cache_scope {
                    Some(scope) => scope,
                    None => self.endpoint.base_url.trim_end_matches('/'),
                },
                model: &self.endpoint.model,
                provider: self.provider,
                body: &body,
            })
        });
        // The cache is files: read and written off the async threads, which other calls need.
        if let (Some(cache), Some(key)) = (cache, &key)
            && let Some((text, _)) = {
                let (cache, key) = (cache.clone(), key.clone());
                tokio::task::spawn_blocking(move || cache.get(&key))
                    .await
                    .ok()
                    .flatten()
            }
        {
            return Ok(Completion {
                text,
                usage: Usage::default(),
                latency: started.elapsed(),
                retries: 0,
                from_cache: true,
            });
        }
        let mut retries = 0;
        loop {
            match self.attempt(&url, &body).await {
                Ok((text, usage)) => {
                    if let (Some(cache), Some(key)) = (cache, key) {
                        let (cache, text) = (cache.clone(), text.clone());
                        let put = move || cache.put(&key, &text, usage);
                        if let Err(e) = tokio::task::spawn_blocking(put).await {
                            tracing::warn!("response cache: the write failed: {e}");
                        }
                    }
                    return Ok(Completion {
                        text,
                        usage,
                        latency: started.elapsed(),
                        retries,
                        from_cache: false,
                    });
                }
                Err(f) if f.retriable && retries < self.retry.max_retries => {
                    if f.server_down
                        && let Some(recovered) = self.local_model_back().await
                    {
                        // The shared local model: its keeper restarts llama-server once, on
                        // the same port; send the request again as soon as it is loaded.
                        recovered?;
                        tracing::warn!(
                            "model call failed ({}); the local model is serving again: retry {} of {}",
                            f.error,
                            retries + 1,
                            self.retry.max_retries
                        );
                        retries += 1;
                        continue;
                    }
                    let wait = self.retry.delay(retries, f.retry_after);
                    tracing::warn!(
                        "model call failed ({}); retry {} of {} in {:.1} s",
                        f.error,
                        retries + 1,
                        self.retry.max_retries,
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                Err(f) if retries > 0 => {
                    return Err(LlmError::GaveUp {
                        retries,
                        last: Box::new(f.error),
                    });
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// For a call to the shared local model whose server went away: `Some(Ok)` once it serves
    /// again (its keeper restarted it), `Some(Err)` when it stopped for good, `None` when this
    /// endpoint is no local model of this process.
    async fn local_model_back(&self) -> Option<Result<(), LlmError>> {
        let url = self.endpoint.base_url.clone();
        let waited = tokio::task::spawn_blocking(move || local::wait_until_serving(&url))
            .await
            .ok()??;
        Some(waited.map_err(|e| LlmError::LocalModel(e.to_string())))
    }

    async fn attempt(&self, url: &str, body: &Value) -> Result<(String, Usage), Failure> {
        let resp = self
            .authorized(self.http.post(url).json(body))
            .timeout(self.endpoint.timeout)
            .send()
            .await
            .map_err(|e| self.transport_failure(url, e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = resp
            .text()
            .await
            .map_err(|e| self.transport_failure(url, e))?;
        if !(200..300).contains(&status) {
            return Err(Failure {
                retriable: matches!(status, 408 | 409 | 429 | 500..=599),
                error: self.status_error(url, status, &text).await,
                retry_after,
                server_down: status == 503,
            });
        }
        let parsed = match self.provider {
            Provider::OpenAi => openai::response(&text),
            Provider::Anthropic => anthropic::response(&text),
        };
        parsed.map_err(|detail| Failure {
            error: LlmError::Malformed {
                url: url.to_string(),
                detail,
            },
            // A well-formed error is the server's answer; a broken body may be a one-off.
            retriable: true,
            retry_after: None,
            server_down: false,
        })
    }

    /// The model ids the server lists under `/models` (used to pick a default and to explain a 404).
    pub async fn list_models(&self) -> Result<Vec<String>, LlmError> {
        let url = self.url("models");
        let resp = self
            .authorized(self.http.get(&url))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| self.transport_failure(&url, e).error)?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.transport_failure(&url, e).error)?;
        if !status.is_success() {
            return Err(LlmError::Http {
                url,
                status: status.as_u16(),
                body: snippet(&text, 300),
            });
        }
        let list: Value = serde_json::from_str(&text).map_err(|e| LlmError::Malformed {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        Ok(list["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn transport_failure(&self, url: &str, e: reqwest::Error) -> Failure {
        let error = if e.is_timeout() {
            LlmError::Timeout {
                url: url.to_string(),
                secs: self.endpoint.timeout.as_secs(),
            }
        } else if e.is_connect() {
            LlmError::Unreachable {
                url: self.endpoint.base_url.clone(),
                detail: root_cause(&e),
            }
        } else if e.is_decode() {
            LlmError::Malformed {
                url: url.to_string(),
                detail: root_cause(&e),
            }
        } else {
            LlmError::Disconnected {
                url: self.endpoint.base_url.clone(),
                detail: root_cause(&e),
            }
        };
        let server_down = matches!(
            error,
            LlmError::Unreachable { .. } | LlmError::Disconnected { .. }
        );
        Failure {
            error,
            retriable: true,
            retry_after: None,
            server_down,
        }
    }

    async fn status_error(&self, url: &str, status: u16, body: &str) -> LlmError {
        match status {
            401 | 403 => LlmError::Unauthorized {
                url: url.to_string(),
                status,
                hint: match &self.endpoint.api_key_env {
                    Some(var) if self.endpoint.api_key.is_some() => {
                        format!("check the key in ${var}, the one named for this endpoint")
                    }
                    _ => "name the environment variable that holds this endpoint's key with --api-key-env / RLM_API_KEY_ENV (--sub-api-key-env / RLM_SUB_API_KEY_ENV or --child-api-key-env / RLM_CHILD_API_KEY_ENV for a sub or child model at another URL)".into(),
                },
            },
            404 => {
                let available = match self.list_models().await {
                    Ok(ids) if !ids.is_empty() => format!("; the server has: {}", ids.join(", ")),
                    _ => String::new(),
                };
                LlmError::UnknownModel {
                    model: self.endpoint.model.clone(),
                    url: url.to_string(),
                    body: snippet(body, 300),
                    available,
                }
            }
            _ => LlmError::Http {
                url: url.to_string(),
                status,
                body: snippet(body, 500),
            },
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from model APIs and treated as absent).
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cache_scope_stands_for_the_base_url() {
        use crate::llm::ChatMessage;
        use crate::llm::scripted::{ScriptedServer, Step, SubRule};
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ResponseCache::new(dir.path().to_path_buf(), 1 << 20));
        let start =
            |reply: &str| ScriptedServer::start(vec![Step::Reply(reply.into())], SubRule::Echo);
        // One local model before and after a restart on another port: one scope.
        let (before, after) = (
            start("first").await.unwrap(),
            start("second").await.unwrap(),
        );
        let client = |s: &ScriptedServer| {
            s.client()
                .with_cache(cache.clone(), false)
                .with_cache_scope("local/scripted")
        };
        let q = [ChatMessage::system("s"), ChatMessage::user("q")];
        let first = client(&before).complete(&q, &[]).await.unwrap();
        let again = client(&after).complete(&q, &[]).await.unwrap();
        assert_eq!((first.text.as_str(), first.from_cache), ("first", false));
        assert_eq!((again.text.as_str(), again.from_cache), ("first", true));
        assert!(after.requests().is_empty());
    }

    #[test]
    fn cache_keys_keep_their_form() {
        let body =
            serde_json::json!({"messages": [{"content": "q", "role": "user"}], "model": "m"});
        let key = ResponseCache::key(&CacheKey {
            endpoint: "http://h/v1",
            model: "m",
            provider: Provider::OpenAi,
            body: &body,
        });
        let written = r#"{"endpoint":"http://h/v1","model":"m","provider":"openai","body":{"messages":[{"content":"q","role":"user"}],"model":"m"}}"#;
        let expected: String = {
            use sha2::Digest;
            sha2::Sha256::digest(written.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(key, expected);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let p = RetryPolicy::default();
        for retry in 0..4 {
            let d = p.delay(retry, None).as_secs_f64();
            let nominal = 0.5 * f64::from(1u32 << retry);
            assert!(
                d >= nominal * 0.5 && d < nominal * 1.5,
                "retry {retry}: {d}"
            );
        }
        assert!(p.delay(20, None) < Duration::from_secs(45));
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
