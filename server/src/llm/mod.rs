//! Model backends: the OpenAI-compatible chat API (OpenAI, vLLM, SGLang, llama.cpp, Ollama, ...),
//! Anthropic's Messages API, and the shared local llama-server used when nothing is configured.

mod anthropic;
pub mod cache;
mod client;
pub mod limits;
pub mod local;
mod openai;
pub mod pricing;
pub mod scripted;

pub use client::{ChatClient, RetryPolicy};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where and how to reach one model.
#[derive(Clone)]
pub struct Endpoint {
    /// Base URL ending in `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// Name of the environment variable the key came from, for error messages (never the key).
    pub api_key_env: Option<String>,
    pub timeout: Duration,
    pub max_tokens: u32,
    pub temperature: f32,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key itself is never printed.
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Which wire format an endpoint speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// The OpenAI-compatible chat completions API.
    #[default]
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl std::str::FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "openai" | "openai-compatible" => Ok(Provider::OpenAi),
            "anthropic" => Ok(Provider::Anthropic),
            other => Err(format!(
                "unknown backend {other:?}: use openai or anthropic"
            )),
        }
    }
}

/// Tokens as the server reported them (zero when it reports none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All input tokens, cached or not.
    pub prompt_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.cached_tokens += o.cached_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// One answered chat request.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
    /// From the first attempt to the answer, waits between retries included.
    pub latency: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Answered from the response cache: no model was called and no tokens were spent.
    pub from_cache: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(
        "no model server at {url}: {detail}. Start one (scripts/setup.sh sets up the local model) or point --base-url / RLM_BASE_URL at a running OpenAI-compatible server"
    )]
    Unreachable { url: String, detail: String },
    #[error("the model server at {url} dropped the request: {detail}. Is it still running?")]
    Disconnected { url: String, detail: String },
    #[error("{url} rejected the API key (HTTP {status}): {hint}")]
    Unauthorized {
        url: String,
        status: u16,
        hint: String,
    },
    #[error(
        "model '{model}' is not served at {url} (HTTP 404): {body}. Check --model / RLM_MODEL{available}"
    )]
    UnknownModel {
        model: String,
        url: String,
        body: String,
        available: String,
    },
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} did not answer within {secs} s; the model may be overloaded, or raise the timeout"
    )]
    Timeout { url: String, secs: u64 },
    #[error("{url} returned a response that is not a chat completion: {detail}")]
    Malformed { url: String, detail: String },
    #[error("{last} (gave up after {retries} retries)")]
    GaveUp { retries: u32, last: Box<LlmError> },
    #[error("{0}")]
    Config(String),
    /// The shared local model stopped (its message says why and what to do).
    #[error("{0}")]
    LocalModel(String),
}

/// `s` trimmed, cut to `max` characters (marked `...`), for error messages.
fn snippet(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let ep = Endpoint {
            base_url: "http://x/v1".into(),
            model: "m".into(),
            api_key: Some("sk-secret".into()),
            api_key_env: Some("OPENAI_API_KEY".into()),
            timeout: Duration::from_secs(1),
            max_tokens: 1,
            temperature: 0.0,
        };
        let dbg = format!("{ep:?}");
        assert!(!dbg.contains("sk-secret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }
}
