//! Anthropic's Messages API, natively: the system prompt as its own field, strict user/assistant
//! alternation, and prompt caching of the stable prefix (the system prompt and earlier turns).

use super::{ChatMessage, Endpoint, Role, Usage, snippet};
use serde_json::{Value, json};

pub(super) const API_VERSION: &str = "2023-06-01";

/// The request body. Cache breakpoints go on the system prompt and on the newest user turn: the
/// next turn's prefix then reads everything before it from the cache.
pub(super) fn request(ep: &Endpoint, messages: &[ChatMessage], stop: &[&str]) -> Value {
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut turns: Vec<(Role, String)> = Vec::new();
    for m in messages.iter().filter(|m| m.role != Role::System) {
        match turns.last_mut() {
            Some((role, text)) if *role == m.role => {
                text.push_str("\n\n");
                text.push_str(&m.content);
            }
            _ => turns.push((m.role, m.content.clone())),
        }
    }
    // The API requires the first turn to be the user's.
    if turns.first().is_some_and(|(r, _)| *r == Role::Assistant) {
        turns.insert(0, (Role::User, "(continue)".into()));
    }
    let last_user = turns.iter().rposition(|(r, _)| *r == Role::User);
    let msgs: Vec<Value> = turns
        .iter()
        .enumerate()
        .map(|(i, (role, text))| {
            let mut block = json!({"type": "text", "text": text});
            if Some(i) == last_user {
                block["cache_control"] = json!({"type": "ephemeral"});
            }
            json!({
                "role": if *role == Role::User { "user" } else { "assistant" },
                "content": [block],
            })
        })
        .collect();
    let mut body = json!({
        "model": ep.model,
        "max_tokens": ep.max_tokens,
        "temperature": ep.temperature,
        "messages": msgs,
    });
    if !system.is_empty() {
        body["system"] = json!([{
            "type": "text",
            "text": system.join("\n\n"),
            "cache_control": {"type": "ephemeral"},
        }]);
    }
    if !stop.is_empty() {
        body["stop_sequences"] = json!(stop);
    }
    body
}

/// Text and usage. Anthropic counts cached input apart from `input_tokens`; here prompt tokens
/// are all input tokens, and `cached_tokens` those read from the cache.
pub(super) fn response(body: &str) -> Result<(String, Usage), String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("{e}; body starts with {:?}", snippet(body, 200)))?;
    let content = v["content"]
        .as_array()
        .ok_or_else(|| format!("no content in the response: {}", snippet(body, 200)))?;
    let text: String = content
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .collect();
    let u = &v["usage"];
    let n = |k: &str| u[k].as_u64().unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    Ok((
        text,
        Usage {
            prompt_tokens: n("input_tokens") + n("cache_creation_input_tokens") + cached,
            completion_tokens: n("output_tokens"),
            cached_tokens: cached,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use std::time::Duration;

    #[test]
    fn request_shape_with_cache_breakpoints() {
        let ep = Endpoint {
            base_url: "https://api.anthropic.com/v1".into(),
            model: "claude-sonnet-4-5".into(),
            api_key: None,
            api_key_env: None,
            timeout: Duration::from_secs(1),
            max_tokens: 256,
            temperature: 0.0,
        };
        let body = request(
            &ep,
            &[
                ChatMessage::system("You write code."),
                ChatMessage::user("Question"),
                ChatMessage::assistant("```repl\nprint(1)\n```"),
                ChatMessage::user("Output: 1"),
                ChatMessage::user("Now answer."),
            ],
            &["\nOutput:"],
        );
        expect![[r#"
            {
              "model": "claude-sonnet-4-5",
              "max_tokens": 256,
              "temperature": 0.0,
              "messages": [
                {
                  "role": "user",
                  "content": [
                    {
                      "type": "text",
                      "text": "Question"
                    }
                  ]
                },
                {
                  "role": "assistant",
                  "content": [
                    {
                      "type": "text",
                      "text": "```repl\nprint(1)\n```"
                    }
                  ]
                },
                {
                  "role": "user",
                  "content": [
                    {
                      "type": "text",
                      "text": "Output: 1\n\nNow answer.",
                      "cache_control": {
                        "type": "ephemeral"
                      }
                    }
                  ]
                }
              ],
              "system": [
                {
                  "type": "text",
                  "text": "You write code.",
                  "cache_control": {
                    "type": "ephemeral"
                  }
                }
              ],
              "stop_sequences": [
                "\nOutput:"
              ]
            }"#]]
        .assert_eq(&serde_json::to_string_pretty(&body).unwrap());
    }

    #[test]
    fn usage_counts_cached_input() {
        let (text, u) = response(
            r#"{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],
                "usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":900,"output_tokens":5}}"#,
        )
        .unwrap();
        assert_eq!(text, "ab");
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.completion_tokens),
            (1010, 900, 5)
        );
        assert!(
            response(r#"{"type":"error"}"#)
                .unwrap_err()
                .contains("no content")
        );
    }
}
