//! Model and run settings: `initializationOptions` (camelCase names of the `RLM_*` variables),
//! else the environment, else the defaults (the shared local model).

use crate::config::{CacheMode, CheckSettings, ModelSettings, RunLimits};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The environment's settings, parsed by the same clap definitions as the command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(no_binary_name = true)]
pub struct Settings {
    #[command(flatten)]
    pub models: ModelSettings,
    #[arg(long, env = "RLM_MAX_ITERATIONS", default_value_t = 20)]
    pub max_iterations: u32,
    #[command(flatten)]
    pub limits: RunLimits,
    #[command(flatten)]
    pub check: CheckSettings,
    /// Read-only roots walked with the workspace folders: dependency sources, a site-packages.
    #[arg(long, env = "RLM_EXTRA_ROOTS", value_delimiter = ':')]
    pub extra_roots: Vec<PathBuf>,
    /// Open each answer as a Markdown document (`window/showDocument`): for editors that do
    /// not show a command's result, such as Helix.
    #[arg(skip)]
    pub answer_document: bool,
}

impl Settings {
    /// The environment's settings; where they are invalid, the defaults (and the error).
    pub fn from_env() -> (Settings, Option<String>) {
        use clap::Parser as _;
        match Settings::try_parse_from(Vec::<String>::new()) {
            Ok(s) => (s, None),
            Err(e) => (
                Settings::default_values(),
                Some(format!(
                    "invalid RLM_* environment, using the defaults: {e}"
                )),
            ),
        }
    }

    fn default_values() -> Settings {
        Settings {
            models: ModelSettings {
                timeout_secs: 600,
                max_retries: 3,
                ..ModelSettings::default()
            },
            max_iterations: 20,
            limits: RunLimits::default(),
            check: CheckSettings::default(),
            extra_roots: Vec::new(),
            answer_document: false,
        }
    }

    /// These settings with the client's `initializationOptions` over them. Unknown names and
    /// values of the wrong type are errors: the caller keeps the settings it had.
    pub fn overlay(&self, options: &Value) -> Result<Settings, String> {
        let Some(obj) = options.as_object() else {
            return if options.is_null() {
                Ok(self.clone())
            } else {
                Err("initializationOptions must be an object".into())
            };
        };
        let mut s = self.clone();
        // `null` puts a setting back to what the environment (or the default) says.
        let env = Settings::from_env().0;
        for (key, v) in obj {
            if s.limits.set(key, v, &env.limits)? || s.check.set(key, v, &env.check)? {
                continue;
            }
            let m = &mut s.models;
            match key.as_str() {
                "baseUrl" => m.base_url = opt_str(key, v)?,
                "model" => m.model = opt_str(key, v)?,
                "subBaseUrl" => m.sub_base_url = opt_str(key, v)?,
                "subModel" => m.sub_model = opt_str(key, v)?,
                "childBaseUrl" => m.child_base_url = opt_str(key, v)?,
                "childModel" => m.child_model = opt_str(key, v)?,
                "apiKeyEnv" => m.api_key_env = opt_str(key, v)?,
                "subApiKeyEnv" => m.sub_api_key_env = opt_str(key, v)?,
                "childApiKeyEnv" => m.child_api_key_env = opt_str(key, v)?,
                "allowInsecureHttp" => {
                    m.allow_insecure_http =
                        opt_bool(key, v)?.unwrap_or(env.models.allow_insecure_http)
                }
                "concurrency" => m.concurrency = opt_u64(key, v)?.map(|n| n as usize),
                "timeoutSecs" => {
                    m.timeout_secs = opt_u64(key, v)?.unwrap_or(env.models.timeout_secs)
                }
                "maxRetries" => {
                    m.max_retries = opt_u64(key, v)?.map_or(env.models.max_retries, |n| n as u32)
                }
                "backend" => {
                    m.backend = opt_str(key, v)?
                        .map(|b| b.parse())
                        .transpose()
                        .map_err(|e| format!("{key}: {e}"))?
                }
                "responseCache" => {
                    m.response_cache = match opt_str(key, v)?.as_deref() {
                        None | Some("on") => CacheMode::On,
                        Some("all") => CacheMode::All,
                        Some("off") => CacheMode::Off,
                        Some(o) => return Err(format!("{key}: {o:?} is not on, all or off")),
                    }
                }
                "maxIterations" => {
                    s.max_iterations = opt_u64(key, v)?.map_or(env.max_iterations, |n| n as u32)
                }
                "extraRoots" => s.extra_roots = extra_roots(key, v)?,
                "answerDocument" => s.answer_document = opt_bool(key, v)?.unwrap_or(false),
                other => return Err(format!("unknown setting {other:?}")),
            }
        }
        Ok(s)
    }

    /// The settings as shown by `rlm.status`: names only, never a key (keys live in the
    /// variables `apiKeyEnv`, `subApiKeyEnv` and `childApiKeyEnv` name); user information in
    /// URLs is hidden.
    pub fn redacted(&self) -> Value {
        let m = &self.models;
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        let mut v = json!({
            "baseUrl": url(&m.base_url),
            "model": m.model,
            "subBaseUrl": url(&m.sub_base_url),
            "subModel": m.sub_model,
            "childBaseUrl": url(&m.child_base_url),
            "childModel": m.child_model,
            "apiKeyEnv": m.api_key_env,
            "subApiKeyEnv": m.sub_api_key_env,
            "childApiKeyEnv": m.child_api_key_env,
            "allowInsecureHttp": m.allow_insecure_http,
            "concurrency": m.concurrency,
            "timeoutSecs": m.timeout_secs,
            "backend": m.backend,
            "maxRetries": m.max_retries,
            "responseCache": format!("{:?}", m.response_cache).to_lowercase(),
            "maxIterations": self.max_iterations,
            "extraRoots": self.extra_roots,
            "answerDocument": self.answer_document,
        });
        if let Some(obj) = v.as_object_mut() {
            for part in [
                serde_json::to_value(&self.limits),
                serde_json::to_value(&self.check),
            ] {
                if let Ok(serde_json::Value::Object(fields)) = part {
                    obj.extend(fields);
                }
            }
        }
        v
    }
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

fn opt_str(key: &str, v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(format!("{key} must be a string")),
    }
}

fn opt_u64(key: &str, v: &Value) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key} must be a non-negative integer")),
    }
}

fn opt_bool(key: &str, v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("{key} must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_takes_camel_case_names_and_rejects_unknown_ones() {
        let base = Settings::default_values();
        let s = base
            .overlay(&json!({"baseUrl": "http://u:p@h/v1", "model": "m", "maxIterations": 3}))
            .unwrap();
        assert_eq!(s.models.model.as_deref(), Some("m"));
        assert_eq!(s.max_iterations, 3);
        assert_eq!(s.redacted()["baseUrl"], "http://***@h/v1");
        assert!(base.overlay(&json!({"nope": 1})).is_err());
        assert!(base.overlay(&json!({"maxIterations": "x"})).is_err());
        // null puts a setting back (here: the default, as no RLM_MAX_ITERATIONS is set).
        let reset = s
            .overlay(&json!({"maxIterations": null, "model": null}))
            .unwrap();
        assert_eq!(reset.max_iterations, Settings::from_env().0.max_iterations);
        assert_eq!(reset.models.model, None);
        let dir = tempfile::tempdir().unwrap();
        let roots = json!({"extraRoots": [dir.path()]});
        assert_eq!(base.overlay(&roots).unwrap().extra_roots, [dir.path()]);
        let err = |v: Value| base.overlay(&json!({ "extraRoots": v })).unwrap_err();
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
        let base = Settings::default_values();
        let s = base
            .overlay(&json!({
                "apiKeyEnv": "ROOT_KEY",
                "subApiKeyEnv": "SUB_KEY",
                "childApiKeyEnv": "CHILD_KEY",
                "allowInsecureHttp": true,
            }))
            .unwrap();
        assert_eq!(s.models.sub_api_key_env.as_deref(), Some("SUB_KEY"));
        assert_eq!(s.models.child_api_key_env.as_deref(), Some("CHILD_KEY"));
        assert!(s.models.allow_insecure_http);
        // rlm.status shows the names of the variables (the keys are never settings).
        let shown = s.redacted();
        assert_eq!(shown["apiKeyEnv"], "ROOT_KEY");
        assert_eq!(shown["subApiKeyEnv"], "SUB_KEY");
        assert_eq!(shown["childApiKeyEnv"], "CHILD_KEY");
        assert_eq!(shown["allowInsecureHttp"], true);
        assert!(base.overlay(&json!({"allowInsecureHttp": "yes"})).is_err());
        assert!(base.overlay(&json!({"subApiKeyEnv": 1})).is_err());
        let reset = s
            .overlay(&json!({"subApiKeyEnv": null, "allowInsecureHttp": null}))
            .unwrap();
        assert_eq!(reset.models.sub_api_key_env, None);
        let env = Settings::from_env().0.models;
        assert_eq!(reset.models.allow_insecure_http, env.allow_insecure_http);
    }
}
