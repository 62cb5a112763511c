//! The OpenAI-compatible chat completions wire format, as served by OpenAI, vLLM, SGLang,
//! llama.cpp's llama-server, Ollama, LM Studio and OpenRouter.

use super::{ChatMessage, Endpoint, Usage, snippet};
use serde_json::{Value, json};

/// The request body. Consecutive messages of one role are merged first: llama-server and others
/// reject two assistant (or user) messages in a row. OpenAI's own reasoning models take
/// `max_completion_tokens` and no temperature; everyone else takes `max_tokens`.
pub(super) fn request(ep: &Endpoint, messages: &[ChatMessage], stop: &[&str]) -> Value {
    let mut body = json!({
        "model": ep.model,
        "messages": merge_same_role(messages),
        "stream": false,
    });
    if is_openai_reasoning_model(&ep.model) {
        body["max_completion_tokens"] = json!(ep.max_tokens);
    } else {
        body["max_tokens"] = json!(ep.max_tokens);
        body["temperature"] = json!(ep.temperature);
        if !stop.is_empty() {
            body["stop"] = json!(stop);
        }
    }
    body
}

/// o1/o3/o4 and gpt-5 models reject `max_tokens`, `temperature` and `stop`.
fn is_openai_reasoning_model(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"]
        .iter()
        .any(|p| m == *p || m.starts_with(&format!("{p}-")))
}

/// The text and usage of a response; `Err` says what is wrong with the body. A missing `usage`
/// (some servers) counts as zero; reasoning text without content is not an answer.
pub(super) fn response(body: &str) -> Result<(String, Usage), String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("{e}; body starts with {:?}", snippet(body, 200)))?;
    let choice = v["choices"]
        .get(0)
        .ok_or_else(|| format!("no choices in the response: {}", snippet(body, 200)))?;
    let text = choice["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let u = &v["usage"];
    let usage = Usage {
        prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
        cached_tokens: u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0),
    };
    Ok((text, usage))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn endpoint(model: &str) -> Endpoint {
        Endpoint {
            base_url: "http://x/v1".into(),
            model: model.into(),
            api_key: None,
            api_key_env: None,
            timeout: Duration::from_secs(1),
            max_tokens: 100,
            temperature: 0.0,
        }
    }

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
    fn reasoning_models_get_max_completion_tokens() {
        let msgs = [ChatMessage::user("q")];
        let b = request(&endpoint("o3-mini"), &msgs, &["\nOutput:"]);
        assert_eq!(b["max_completion_tokens"], 100);
        assert!(b.get("max_tokens").is_none() && b.get("stop").is_none());
        let b = request(&endpoint("qwen2.5-coder"), &msgs, &["\nOutput:"]);
        assert_eq!(
            (b["max_tokens"].as_u64(), b["stop"][0].as_str()),
            (Some(100), Some("\nOutput:"))
        );
        assert!(!is_openai_reasoning_model("gpt-4o"));
        assert!(is_openai_reasoning_model("openai/gpt-5-mini"));
    }

    #[test]
    fn responses_with_and_without_usage() {
        let (t, u) = response(r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":5}}}"#).unwrap();
        assert_eq!(
            (
                t.as_str(),
                u.prompt_tokens,
                u.completion_tokens,
                u.cached_tokens
            ),
            ("hi", 7, 2, 5)
        );
        let (_, u) = response(r#"{"choices":[{"message":{"content":"hi"}}]}"#).unwrap();
        assert_eq!(u, Usage::default());
        assert!(
            response(r#"{"choices":[]}"#)
                .unwrap_err()
                .contains("no choices")
        );
        assert!(response("<html>").unwrap_err().contains("body starts with"));
    }
}
