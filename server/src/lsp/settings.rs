//! The language server's settings: [`RunSettings`] (by the camelCase names of the `RLM_*`
//! variables) and what only the server has. `initializationOptions` and configuration changes
//! are laid over the command line's (`rlm-lsp serve --max-iterations 8`), which default to the
//! environment's; nothing here names a setting but the few with rules beyond their type.

use crate::config::RunSettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// The environment's settings, parsed by the same clap definitions as the command line.
#[derive(Debug, Clone, clap::Parser, Serialize, Deserialize)]
#[command(no_binary_name = true)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunSettings,
    /// Read-only roots walked with the workspace folders: dependency sources, a site-packages.
    #[arg(long, env = "RLM_EXTRA_ROOTS", value_delimiter = ':')]
    pub extra_roots: Vec<PathBuf>,
    /// Open each answer as a Markdown document (`window/showDocument`): for editors that do
    /// not show a command's result, such as Helix.
    #[arg(skip)]
    pub answer_document: bool,
}

impl Default for Settings {
    fn default() -> Self {
        crate::config::flag_defaults()
    }
}

impl Settings {
    /// The environment's settings; where they are invalid, the defaults (and the error).
    pub fn from_env() -> (Settings, Option<String>) {
        use clap::Parser as _;
        match Settings::try_parse_from(Vec::<String>::new()) {
            Ok(s) => (s, None),
            Err(e) => (
                Settings::default(),
                Some(format!(
                    "invalid RLM_* environment, using the defaults: {e}"
                )),
            ),
        }
    }

    /// These settings with the client's `initializationOptions` (or configuration change) over
    /// them, key by key; `null` puts a setting back to what the environment (or the default)
    /// says. Unknown names and values of the wrong type are errors naming the key: the caller
    /// keeps the settings it had.
    pub fn overlay(&self, options: &Value, base: &Settings) -> Result<Settings, String> {
        let Some(given) = options.as_object() else {
            return if options.is_null() {
                Ok(self.clone())
            } else {
                Err("initializationOptions must be an object".into())
            };
        };
        let mut merged = by_name(self)?;
        let env = by_name(base)?;
        let mut next = self.clone();
        for (key, value) in given {
            // Every setting serializes, so the names it has are the settings there are.
            let Some(env_value) = env.get(key) else {
                return Err(format!("unknown setting {key:?}"));
            };
            let value = if value.is_null() {
                env_value.clone()
            } else {
                check(key, value)?;
                value.clone()
            };
            merged.insert(key.clone(), value);
            next = serde_json::from_value(Value::Object(merged.clone()))
                .map_err(|e| format!("{key}: {e}"))?;
        }
        Ok(next)
    }

    /// The settings as shown by `rlm.status`: every setting by name, with user information in
    /// URLs hidden, and the value of anything named like a secret (`...Key`, `...Token`)
    /// replaced. API keys are never settings: they live in the variables `apiKeyEnv`,
    /// `subApiKeyEnv` and `childApiKeyEnv` name.
    pub fn redacted(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        redact(&mut v, "");
        v
    }
}

/// The settings as a JSON object, by name.
fn by_name(s: &Settings) -> Result<Map<String, Value>, String> {
    match serde_json::to_value(s) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("the settings are not an object".into()),
        Err(e) => Err(format!("the settings do not serialize: {e}")),
    }
}

/// Rules beyond a setting's type.
fn check(key: &str, value: &Value) -> Result<(), String> {
    match key {
        "extraRoots" => extra_roots(key, value).map(drop),
        _ => Ok(()),
    }
}

/// Hides secrets in `v`, the value of the setting `key`.
fn redact(v: &mut Value, key: &str) {
    match v {
        Value::String(s) if is_secret_name(key) => *s = "***".into(),
        Value::String(s) => *s = redact_url(s),
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, key)),
        Value::Object(map) => map.iter_mut().for_each(|(k, v)| redact(v, k)),
        _ => {}
    }
}

/// `apiKey`, `token`, `password`, ... (but not `apiKeyEnv`, a variable's name, or `maxTokens`).
fn is_secret_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["key", "token", "secret", "password"]
        .iter()
        .any(|s| key.ends_with(s))
}

pub(super) fn redact_url(u: &str) -> String {
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(at)) if at > s && !u[s + 3..at].contains('/') => {
            format!("{}://***@{}", &u[..s], &u[at + 1..])
        }
        _ => u.to_string(),
    }
}

/// Extra roots must be existing directories given by absolute paths: a relative one would
/// depend on the server's working directory, which the user does not see.
fn extra_roots(key: &str, v: &Value) -> Result<Vec<PathBuf>, String> {
    let Some(items) = v.as_array() else {
        return if v.is_null() {
            Ok(Vec::new())
        } else {
            Err(format!("{key} must be an array of directory paths"))
        };
    };
    items
        .iter()
        .map(|item| {
            let p = PathBuf::from(
                item.as_str()
                    .ok_or_else(|| format!("{key} must be an array of directory paths"))?,
            );
            if !p.is_absolute() {
                Err(format!("{key}: {} is not an absolute path", p.display()))
            } else if !p.is_dir() {
                Err(format!("{key}: {} is not a directory", p.display()))
            } else {
                Ok(p)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `null` puts back: the environment (no command-line settings in these tests).
    fn environment() -> Settings {
        Settings::from_env().0
    }

    #[test]
    fn overlay_takes_camel_case_names_and_rejects_unknown_ones() {
        let base = Settings::default();
        let s = base
            .overlay(
                &json!({"baseUrl": "http://u:p@h/v1", "model": "m", "maxIterations": 3}),
                &environment(),
            )
            .unwrap();
        assert_eq!(s.run.models.model.as_deref(), Some("m"));
        assert_eq!(s.run.limits.max_iterations, 3);
        assert_eq!(s.redacted()["baseUrl"], "http://***@h/v1");
        assert!(base.overlay(&json!({"nope": 1}), &environment()).is_err());
        assert!(
            base.overlay(&json!({"maxIterations": "x"}), &environment())
                .is_err()
        );
        // null puts a setting back (here: the default, as no RLM_MAX_ITERATIONS is set).
        let reset = s
            .overlay(
                &json!({"maxIterations": null, "model": null}),
                &environment(),
            )
            .unwrap();
        assert_eq!(
            reset.run.limits.max_iterations,
            Settings::from_env().0.run.limits.max_iterations
        );
        assert_eq!(reset.run.models.model, None);
        let dir = tempfile::tempdir().unwrap();
        let roots = json!({"extraRoots": [dir.path()]});
        assert_eq!(
            base.overlay(&roots, &environment()).unwrap().extra_roots,
            [dir.path()]
        );
        let err = |v: Value| {
            base.overlay(&json!({ "extraRoots": v }), &environment())
                .unwrap_err()
        };
        assert_eq!(
            err(json!(["rel/dir"])),
            "extraRoots: rel/dir is not an absolute path"
        );
        assert_eq!(
            err(json!(["/no/such/dir"])),
            "extraRoots: /no/such/dir is not a directory"
        );
        assert_eq!(
            err(json!("/tmp")),
            "extraRoots must be an array of directory paths"
        );
    }

    #[test]
    fn per_endpoint_key_names_and_the_http_opt_in() {
        let base = Settings::default();
        let s = base
            .overlay(
                &json!({
                    "apiKeyEnv": "ROOT_KEY",
                    "subApiKeyEnv": "SUB_KEY",
                    "childApiKeyEnv": "CHILD_KEY",
                    "allowInsecureHttp": true,
                }),
                &environment(),
            )
            .unwrap();
        assert_eq!(s.run.models.sub_api_key_env.as_deref(), Some("SUB_KEY"));
        assert_eq!(s.run.models.child_api_key_env.as_deref(), Some("CHILD_KEY"));
        assert!(s.run.models.allow_insecure_http);
        // rlm.status shows the names of the variables (the keys are never settings).
        let shown = s.redacted();
        assert_eq!(shown["apiKeyEnv"], "ROOT_KEY");
        assert_eq!(shown["subApiKeyEnv"], "SUB_KEY");
        assert_eq!(shown["childApiKeyEnv"], "CHILD_KEY");
        assert_eq!(shown["allowInsecureHttp"], true);
        assert!(
            base.overlay(&json!({"allowInsecureHttp": "yes"}), &environment())
                .is_err()
        );
        assert!(
            base.overlay(&json!({"subApiKeyEnv": 1}), &environment())
                .is_err()
        );
        let reset = s
            .overlay(
                &json!({"subApiKeyEnv": null, "allowInsecureHttp": null}),
                &environment(),
            )
            .unwrap();
        assert_eq!(reset.run.models.sub_api_key_env, None);
        let env = Settings::from_env().0.run.models;
        assert_eq!(
            reset.run.models.allow_insecure_http,
            env.allow_insecure_http
        );
    }

    #[test]
    fn every_setting_is_taken_by_name_and_null_puts_back_the_environments() {
        let env = Settings::from_env().0;
        let base = Settings::default();
        let s = base
            .overlay(
                &json!({"maxSubCalls": 7, "checkRepairs": 5, "responseCache": "off"}),
                &environment(),
            )
            .unwrap();
        assert_eq!(s.run.limits.max_sub_calls, 7);
        assert_eq!(s.run.check.check_repairs, 5);
        assert_eq!(s.run.models.response_cache, crate::config::CacheMode::Off);
        let reset = s
            .overlay(
                &json!({"maxSubCalls": null, "responseCache": null}),
                &environment(),
            )
            .unwrap();
        assert_eq!(reset.run.limits.max_sub_calls, env.run.limits.max_sub_calls);
        assert_eq!(
            reset.run.models.response_cache,
            env.run.models.response_cache
        );
        // A wrong value names its key, and the caller keeps what it had.
        let err = base
            .overlay(&json!({"maxCost": "lots"}), &environment())
            .unwrap_err();
        assert!(err.starts_with("maxCost: "), "{err}");
        assert_eq!(
            base.overlay(&json!({"nope": 1}), &environment())
                .unwrap_err(),
            "unknown setting \"nope\""
        );
        assert!(
            base.overlay(&json!({"maxIterations": -1}), &environment())
                .is_err()
        );
        assert!(
            base.overlay(&json!({"backend": "carrier pigeon"}), &environment())
                .is_err()
        );
        assert!(base.overlay(&json!([1]), &environment()).is_err());
        // Every setting the server shows is one it takes.
        let shown = base.redacted();
        let keys = shown.as_object().unwrap();
        assert!(keys.len() >= 30, "{keys:?}");
        let mut given = by_name(&base).unwrap();
        given.retain(|_, v| !v.is_null()); // null would be the environment's
        let same = base.overlay(&Value::Object(given), &environment()).unwrap();
        assert_eq!(same.run, base.run);
    }

    #[test]
    fn redaction_hides_url_credentials_and_anything_named_like_a_secret() {
        let mut v = json!({
            "baseUrl": "https://user:pw@host/v1",
            "checkCommand": "curl -s https://u:p@example.com/hook && cargo check",
            "apiKeyEnv": "OPENAI_API_KEY",
            "maxTokens": 5,
            "sessionToken": "abc",
            "nested": {"apiKey": "sk-1"},
            "roots": ["/a", "/b"],
        });
        redact(&mut v, "");
        assert_eq!(v["baseUrl"], "https://***@host/v1");
        assert_eq!(
            v["checkCommand"],
            "curl -s https://***@example.com/hook && cargo check"
        );
        assert_eq!(
            v["apiKeyEnv"], "OPENAI_API_KEY",
            "a variable's name, not a key"
        );
        assert_eq!(v["maxTokens"], 5);
        assert_eq!(v["sessionToken"], "***");
        assert_eq!(v["nested"]["apiKey"], "***");
        assert_eq!(v["roots"], json!(["/a", "/b"]));
    }

    /// The protocol lists every setting by name, and the README every variable.
    #[test]
    fn the_docs_list_every_setting() {
        let protocol = include_str!("../../../docs/protocol.md");
        let readme = include_str!("../../../README.md");
        let shown = Settings::default().redacted();
        for key in shown.as_object().unwrap().keys() {
            assert!(
                protocol.contains(&format!("`{key}`")),
                "docs/protocol.md does not list the setting `{key}`"
            );
        }
        use clap::CommandFactory as _;
        for arg in Settings::command().get_arguments() {
            if let Some(var) = arg.get_env() {
                let var = var.to_string_lossy();
                assert!(
                    readme.contains(&*var),
                    "README.md does not name the variable {var}"
                );
            }
        }
    }
}
