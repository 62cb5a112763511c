//! The OpenAI-compatible chat completions API, as served by OpenAI, vLLM, SGLang, llama.cpp's
//! llama-server, Ollama, LM Studio and OpenRouter.

use super::{ChatMessage, Completion, LlmError, Usage};
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    endpoint: Endpoint,
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<UsageBody>,
}

#[derive(Deserialize)]
struct Choice {
    message: MessageBody,
}

#[derive(Deserialize)]
struct MessageBody {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    id: String,
}

impl ChatClient {
    pub fn new(endpoint: Endpoint) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        ChatClient { http, endpoint }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn url(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.endpoint.base_url.trim_end_matches('/'))
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.endpoint.api_key {
            Some(key) => req.bearer_auth(key),
            None => req,
        }
    }

    /// One chat completion, ending early at any of `stop`. Consecutive messages of one role are merged first: llama-server and
    /// some others reject two assistant (or user) messages in a row.
    pub async fn complete(
        &self,
        messages: &[ChatMessage],
        stop: &[&str],
    ) -> Result<Completion, LlmError> {
        let url = self.url("chat/completions");
        let mut body = json!({
            "model": self.endpoint.model,
            "messages": merge_same_role(messages),
            "max_tokens": self.endpoint.max_tokens,
            "temperature": self.endpoint.temperature,
            "stream": false,
        });
        if !stop.is_empty() {
            body["stop"] = json!(stop);
        }
        let started = Instant::now();
        let resp = self
            .authorized(self.http.post(&url).json(&body))
            .timeout(self.endpoint.timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        if !status.is_success() {
            return Err(self.status_error(&url, status.as_u16(), &text).await);
        }
        let parsed: ChatResponse =
            serde_json::from_str(&text).map_err(|e| LlmError::Malformed {
                url: url.clone(),
                detail: format!("{e}; body starts with {:?}", snippet(&text, 200)),
            })?;
        let choice = parsed
            .choices
            .into_iter()
            .next()
            .ok_or(LlmError::Malformed {
                url: url.clone(),
                detail: "no choices in the response".into(),
            })?;
        let usage = parsed
            .usage
            .map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            })
            .unwrap_or_default();
        Ok(Completion {
            text: choice.message.content.unwrap_or_default(),
            usage,
            latency: started.elapsed(),
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
            .map_err(|e| self.transport_error(&url, e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.transport_error(&url, e))?;
        if !status.is_success() {
            return Err(LlmError::Http {
                url,
                status: status.as_u16(),
                body: snippet(&text, 300),
            });
        }
        let list: ModelList = serde_json::from_str(&text).map_err(|e| LlmError::Malformed {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        Ok(list.data.into_iter().map(|m| m.id).collect())
    }

    fn transport_error(&self, url: &str, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                url: url.to_string(),
                secs: self.endpoint.timeout.as_secs(),
            }
        } else if e.is_connect() {
            LlmError::Unreachable {
                url: self.endpoint.base_url.clone(),
                detail: root_cause(&e),
            }
        } else if e.is_decode() || e.is_body() {
            LlmError::Malformed {
                url: url.to_string(),
                detail: root_cause(&e),
            }
        } else {
            LlmError::Disconnected {
                url: self.endpoint.base_url.clone(),
                detail: root_cause(&e),
            }
        }
    }

    async fn status_error(&self, url: &str, status: u16, body: &str) -> LlmError {
        match status {
            401 | 403 => LlmError::Unauthorized {
                url: url.to_string(),
                status,
                hint: match &self.endpoint.api_key_env {
                    Some(var) if self.endpoint.api_key.is_some() => format!(
                        "check the key in ${var} (named by --api-key-env / RLM_API_KEY_ENV)"
                    ),
                    _ => "set --api-key-env / RLM_API_KEY_ENV to the name of the environment variable that holds your key".into(),
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

fn merge_same_role(messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len());
    for m in messages {
        match out.last_mut() {
            Some(last) if last.role == m.role => {
                last.content.push_str("\n\n");
                last.content.push_str(&m.content);
            }
            _ => out.push(m.clone()),
        }
    }
    out
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

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
    fn merges_consecutive_roles() {
        let merged = merge_same_role(&[
            ChatMessage::system("s"),
            ChatMessage::user("a"),
            ChatMessage::user("b"),
            ChatMessage::assistant("c"),
        ]);
        let roles: Vec<_> = merged.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(roles, ["s", "a\n\nb", "c"]);
    }

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
