//! Model and run configuration. The command line and the language server read the same
//! environment variables (`RLM_BASE_URL`, `RLM_MODEL`, ...); with no endpoint configured the
//! shared local model is used.

use crate::engine::{Budget, EngineConfig, Models};
use crate::llm::cache::ResponseCache;
use crate::llm::local::{LocalServer, LocalServerHandle};
use crate::llm::pricing::PriceTable;
use crate::llm::{ChatClient, Endpoint, LlmError, Provider, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;

/// Where the models are. Every field can also come from its environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelSettings {
    /// OpenAI-compatible base URL of the root model, ending in /v1 [default: the local model]
    #[arg(long, env = "RLM_BASE_URL")]
    pub base_url: Option<String>,
    /// Root model name [default: the only model the server lists]
    #[arg(long, env = "RLM_MODEL")]
    pub model: Option<String>,
    /// Base URL of the sub model used by llm_query [default: the root's]
    #[arg(long, env = "RLM_SUB_BASE_URL")]
    pub sub_base_url: Option<String>,
    /// Sub model name [default: the root's]
    #[arg(long, env = "RLM_SUB_MODEL")]
    pub sub_model: Option<String>,
    /// Root model of child runs started by rlm_query: an OpenAI-compatible base URL, or `local`
    /// for the shared local model [default: the root's]
    #[arg(long, env = "RLM_CHILD_BASE_URL")]
    pub child_base_url: Option<String>,
    /// Model name of child runs [default: the only model the child's server lists]
    #[arg(long, env = "RLM_CHILD_MODEL")]
    pub child_model: Option<String>,
    /// Name of the environment variable holding the root endpoint's API key (e.g.
    /// OPENAI_API_KEY); never the key itself. Sent only to the root's base URL
    #[arg(long, env = "RLM_API_KEY_ENV")]
    pub api_key_env: Option<String>,
    /// Name of the variable holding the sub endpoint's API key [default: the root's key when
    /// the sub model is at the root's base URL, else none]
    #[arg(long, env = "RLM_SUB_API_KEY_ENV")]
    pub sub_api_key_env: Option<String>,
    /// Name of the variable holding the child endpoint's API key [default: the key of the root
    /// or sub endpoint at the same base URL, else none]
    #[arg(long, env = "RLM_CHILD_API_KEY_ENV")]
    pub child_api_key_env: Option<String>,
    /// Send API keys over plain http:// to hosts other than this machine (readable on the
    /// network path) [default: refused; loopback is always allowed]
    #[arg(
        long,
        env = "RLM_ALLOW_INSECURE_HTTP",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_insecure_http: bool,
    /// Sub-calls in flight at once [default: 8, or 1 for the local model]
    #[arg(long, env = "RLM_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Seconds to wait for one model reply
    #[arg(long, env = "RLM_TIMEOUT_SECS", default_value_t = 600)]
    pub timeout_secs: u64,
    /// Wire format: openai (any OpenAI-compatible server) or anthropic [default: anthropic for
    /// an anthropic.com URL, else openai]
    #[arg(long, env = "RLM_BACKEND")]
    pub backend: Option<Provider>,
    /// Retries of a failed model call (rate limits, server errors, dropped connections, timeouts)
    #[arg(long, env = "RLM_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
    /// Sub-call response cache on disk: on (greedy calls only), all (sampled too) or off
    #[arg(long, env = "RLM_RESPONSE_CACHE", default_value = "on")]
    pub response_cache: CacheMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CacheMode {
    /// Cache sub-calls made at temperature 0 (their answers repeat).
    #[default]
    On,
    /// Cache sampled sub-calls too.
    All,
    Off,
}

/// The limits and safety switches of a run: command-line flags, `RLM_*` variables, and (by the
/// camelCase names of the fields) the language server's settings. A run gets limits a user
/// would accept unless told otherwise; `0` lifts a limit.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunLimits {
    /// Seconds one code cell may compute before its worker is killed (its model calls not
    /// counted)
    #[arg(
        long = "cell-timeout",
        env = "RLM_CELL_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub cell_timeout_secs: u64,
    /// Seconds one code cell may take in all, its sub-calls included
    #[arg(long, env = "RLM_CELL_WALL_SECS", default_value_t = crate::repl::DEFAULT_CELL_WALL_SECS)]
    pub cell_wall_secs: u64,
    /// Depth of child RLM runs `rlm_query` may start (0: rlm_query is a plain model call)
    #[arg(long, env = "RLM_MAX_DEPTH", default_value_t = 2)]
    pub max_depth: u32,
    /// Stop (with a partial answer) after this many sub-calls; 0: no limit
    #[arg(long, env = "RLM_MAX_SUB_CALLS", default_value_t = Budget::DEFAULT_MAX_SUB_CALLS)]
    pub max_sub_calls: u32,
    /// Stop after this many child runs (rlm_query); 0: no limit
    #[arg(long, env = "RLM_MAX_CHILD_RUNS", default_value_t = Budget::DEFAULT_MAX_CHILD_RUNS)]
    pub max_child_runs: u32,
    /// Stop after this many tokens (prompt plus completion, every model); 0: no limit
    #[arg(long, env = "RLM_MAX_TOKENS", default_value_t = 0)]
    pub max_tokens: u64,
    /// Stop after spending this many dollars on priced models (server/data/prices.json,
    /// RLM_PRICES); 0: no limit
    #[arg(long, env = "RLM_MAX_COST", default_value_t = Budget::DEFAULT_MAX_COST_USD)]
    pub max_cost: f64,
    /// Stop after this many seconds; 0: no limit
    #[arg(long, env = "RLM_MAX_WALL_SECS", default_value_t = Budget::DEFAULT_MAX_WALL_SECS)]
    pub max_wall_secs: u64,
    /// Run model-written code WITHOUT the sandbox, with your full rights (for systems without
    /// Landlock or seccomp; see docs/security.md)
    #[arg(
        long,
        env = crate::repl::UNSAFE_NO_SANDBOX_ENV,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub unsafe_no_sandbox: bool,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            cell_timeout_secs: 60,
            cell_wall_secs: crate::repl::DEFAULT_CELL_WALL_SECS,
            max_depth: 2,
            max_sub_calls: Budget::DEFAULT_MAX_SUB_CALLS,
            max_child_runs: Budget::DEFAULT_MAX_CHILD_RUNS,
            max_tokens: 0,
            max_cost: Budget::DEFAULT_MAX_COST_USD,
            max_wall_secs: Budget::DEFAULT_MAX_WALL_SECS,
            unsafe_no_sandbox: false,
        }
    }
}

impl RunLimits {
    /// The budget these limits give a run (0 is no limit).
    pub fn budget(&self) -> Budget {
        let some = |n: u64| (n > 0).then_some(n);
        Budget {
            max_sub_calls: (self.max_sub_calls > 0).then_some(self.max_sub_calls),
            max_child_runs: (self.max_child_runs > 0).then_some(self.max_child_runs),
            max_tokens: some(self.max_tokens),
            max_cost_usd: (self.max_cost > 0.0).then_some(self.max_cost),
            max_wall: some(self.max_wall_secs).map(Duration::from_secs),
        }
    }

    /// Writes the limits into an engine configuration, with the price table they are costed by.
    pub fn apply(&self, cfg: &mut EngineConfig) -> anyhow::Result<()> {
        cfg.repl.cell_timeout = Duration::from_secs(self.cell_timeout_secs.max(1));
        cfg.repl.cell_wall_timeout = Duration::from_secs(self.cell_wall_secs.max(1));
        cfg.max_depth = self.max_depth;
        cfg.budget = self.budget();
        cfg.prices = PriceTable::load().map_err(|e| anyhow::anyhow!("price table: {e}"))?;
        if self.unsafe_no_sandbox {
            cfg.repl.sandbox.enabled = false;
        }
        Ok(())
    }

    /// Sets the field named `key` (camelCase) from a settings value; `null` puts back the one
    /// of `fallback` (the environment's). `Ok(false)` when no field has that name.
    pub fn set(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        fallback: &RunLimits,
    ) -> Result<bool, String> {
        set_by_name(self, key, value, fallback)
    }
}

/// Sets the field of `target` whose serialized (camelCase) name is `key` from a settings value;
/// `null` puts back `fallback`'s. `Ok(false)` when no field has that name; a value of the wrong
/// type changes nothing.
fn set_by_name<T: serde::Serialize + serde::de::DeserializeOwned>(
    target: &mut T,
    key: &str,
    value: &serde_json::Value,
    fallback: &T,
) -> Result<bool, String> {
    let mut obj = serde_json::to_value(&*target).map_err(|e| e.to_string())?;
    let Some(map) = obj.as_object_mut() else {
        return Ok(false);
    };
    if !map.contains_key(key) {
        return Ok(false);
    }
    let value = if value.is_null() {
        serde_json::to_value(fallback).map_err(|e| e.to_string())?[key].clone()
    } else {
        value.clone()
    };
    map.insert(key.to_string(), value);
    *target = serde_json::from_value(obj).map_err(|e| format!("{key}: {e}"))?;
    Ok(true)
}

/// How refactor plans are checked: the user's own command (never the model's), run on a
/// scratch copy with the plan applied, and how many times the model may repair a plan.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckSettings {
    /// A command that checks a plan, run with `sh -c` in a scratch copy of the first writable
    /// root with the plan applied (e.g. `cargo check --offline`, `tsc --noEmit`,
    /// `python -m pyflakes .`); none by default
    #[arg(long, env = "RLM_CHECK_COMMAND")]
    pub check_command: Option<String>,
    /// Seconds the check command may run
    #[arg(long, env = "RLM_CHECK_TIMEOUT_SECS", default_value_t = 300)]
    pub check_timeout_secs: u64,
    /// Times a plan that has no edit that applies, or fails the check, goes back to the model
    #[arg(long, env = "RLM_CHECK_REPAIRS", default_value_t = 2)]
    pub check_repairs: u32,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            check_command: None,
            check_timeout_secs: 300,
            check_repairs: 2,
        }
    }
}

impl CheckSettings {
    /// As [`RunLimits::set`].
    pub fn set(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        fallback: &CheckSettings,
    ) -> Result<bool, String> {
        set_by_name(self, key, value, fallback)
    }

    /// The check of a refactor run over `snapshot`.
    pub fn plan_check(
        &self,
        snapshot: Arc<crate::workspace::Snapshot>,
    ) -> crate::engine::PlanCheck {
        let command = self
            .check_command
            .as_ref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| crate::engine::check_command::CheckCommand {
                command: c.clone(),
                timeout: Duration::from_secs(self.check_timeout_secs.max(1)),
            });
        crate::engine::PlanCheck::new(snapshot, command, self.check_repairs)
    }
}

/// Size cap of the on-disk sub-call response cache.
const RESPONSE_CACHE_BYTES: u64 = 256 << 20;

/// Models ready to use, plus the local server they may be holding open.
pub struct ResolvedModels {
    pub models: Models,
    pub concurrency: usize,
    /// Whether the default local model is in use (it shapes the prompt and window budgets).
    pub local: bool,
    /// Keeps the shared local llama-server alive for as long as this value lives.
    _local_servers: Vec<LocalServerHandle>,
}

const MAX_TOKENS: u32 = 1024;

/// An API key, and the variable it was read from (none for the local server's own key).
#[derive(Clone)]
struct ApiKey {
    key: String,
    var: Option<String>,
}

impl ModelSettings {
    /// Resolves endpoints: explicit ones as given, otherwise the shared local model (started on
    /// first use). Each endpoint gets only its own API key, read from the variable named for it.
    pub async fn resolve(&self) -> Result<ResolvedModels, anyhow::Error> {
        self.resolve_with_env(|var| std::env::var(var).ok()).await
    }

    /// [`resolve`](Self::resolve), reading the API-key variables through `env`.
    pub async fn resolve_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedModels, anyhow::Error> {
        let read = |var: &Option<String>, names: &str| -> anyhow::Result<Option<ApiKey>> {
            let Some(var) = var else { return Ok(None) };
            match env(var) {
                Some(k) if !k.trim().is_empty() => Ok(Some(ApiKey {
                    key: k.trim().to_string(),
                    var: Some(var.clone()),
                })),
                _ => anyhow::bail!(
                    "{names} names the variable {var}, but {var} is not set or empty: export {var}=<your key>"
                ),
            }
        };
        let root_env_key = read(&self.api_key_env, "RLM_API_KEY_ENV / --api-key-env")?;
        let sub_own_key = read(
            &self.sub_api_key_env,
            "RLM_SUB_API_KEY_ENV / --sub-api-key-env",
        )?;
        let child_own_key = read(
            &self.child_api_key_env,
            "RLM_CHILD_API_KEY_ENV / --child-api-key-env",
        )?;
        let child_url = self.child_base_url.as_deref().filter(|u| *u != "local");
        for url in [
            self.base_url.as_deref(),
            self.sub_base_url.as_deref(),
            child_url,
        ]
        .into_iter()
        .flatten()
        {
            check_base_url(url)?;
        }
        // A key goes only to the endpoint it was named for; an endpoint without one of its own
        // uses the key of an endpoint at the same base URL. Decided, and checked, before
        // anything is contacted. (No URL here means the local model, which has its own key.)
        let mut known: Vec<(&str, &Option<ApiKey>)> = Vec::new();
        if let Some(url) = self.base_url.as_deref() {
            known.push((url, &root_env_key));
        } else if let Some(var) = &self.api_key_env {
            tracing::warn!(
                "RLM_API_KEY_ENV / --api-key-env names {var}, but the root model is the local one, which has its own key: {var} is sent nowhere (--sub-api-key-env and --child-api-key-env name the keys of a sub or child endpoint)"
            );
        }
        let sub_url_given = self.sub_base_url.as_deref().or(self.base_url.as_deref());
        let sub_key_given = sub_url_given.and_then(|url| key_for(url, &sub_own_key, &known));
        if let Some(url) = sub_url_given {
            known.push((url, &sub_key_given));
        }
        let child_key = child_url.and_then(|url| key_for(url, &child_own_key, &known));
        let endpoints = [
            ("root", self.base_url.as_deref(), &root_env_key),
            ("sub", sub_url_given, &sub_key_given),
            ("child", child_url, &child_key),
        ];
        for (role, url, key) in endpoints {
            if let (Some(url), Some(key)) = (url, key) {
                check_key_transport(role, url, key, self.allow_insecure_http)?;
            }
        }

        let timeout = Duration::from_secs(self.timeout_secs.max(1));
        let endpoint = |base_url: String, model: String, key: Option<ApiKey>| Endpoint {
            base_url,
            model,
            api_key_env: key.as_ref().and_then(|k| k.var.clone()),
            api_key: key.map(|k| k.key),
            timeout,
            max_tokens: MAX_TOKENS,
            temperature: 0.0,
        };

        let retry = RetryPolicy {
            max_retries: self.max_retries,
            ..RetryPolicy::default()
        };
        let provider_for = |url: &str| {
            self.backend.unwrap_or(if url.contains("anthropic.com") {
                Provider::Anthropic
            } else {
                Provider::OpenAi
            })
        };
        let client = |ep: Endpoint| {
            let provider = provider_for(&ep.base_url);
            ChatClient::new(ep)
                .with_provider(provider)
                .with_retry(retry)
        };
        let (root_url, root_model, root_key, local_server) = match &self.base_url {
            Some(url) => {
                let model = match &self.model {
                    Some(m) => m.clone(),
                    None => {
                        only_model(&client(endpoint(
                            url.clone(),
                            String::new(),
                            root_env_key.clone(),
                        )))
                        .await?
                    }
                };
                (url.clone(), model, root_env_key.clone(), None)
            }
            None => {
                // May start the server and wait for the model to load (off the async runtime).
                let handle = LocalServer::acquire().await?;
                let model = self
                    .model
                    .clone()
                    .unwrap_or_else(|| handle.model_name().to_string());
                let key = handle.api_key().map(|k| ApiKey {
                    key: k.to_string(),
                    var: None,
                });
                (handle.base_url().to_string(), model, key, Some(handle))
            }
        };
        let sub_url = self
            .sub_base_url
            .clone()
            .unwrap_or_else(|| root_url.clone());
        // Without a URL the sub model is the local server's too: its own key, unless one is named.
        let sub_key = match sub_url_given {
            Some(_) => sub_key_given.clone(),
            None => sub_own_key.clone().or_else(|| root_key.clone()),
        };
        let sub_model = match (&self.sub_model, &self.sub_base_url) {
            (Some(m), _) => m.clone(),
            (None, Some(url)) if !same_endpoint(url, &root_url) => {
                only_model(&client(endpoint(
                    url.clone(),
                    String::new(),
                    sub_key.clone(),
                )))
                .await?
            }
            _ => root_model.clone(),
        };
        let local = local_server.is_some();
        // The local server's port changes from run to run; its model file does not.
        let cache_scope = (sub_url_given.is_none()).then(|| format!("local/{sub_model}"));
        let mut sub = client(endpoint(sub_url, sub_model, sub_key));
        if self.response_cache != CacheMode::Off
            && let Ok(dir) = crate::llm::local::user_cache_dir()
        {
            let cache = ResponseCache::new(dir.join("responses"), RESPONSE_CACHE_BYTES);
            sub = sub.with_cache(Arc::new(cache), self.response_cache == CacheMode::All);
            if let Some(scope) = cache_scope {
                sub = sub.with_cache_scope(scope);
            }
        }
        let mut handles: Vec<LocalServerHandle> = local_server.into_iter().collect();
        let child_root = match self.child_base_url.as_deref() {
            None => None,
            Some("local") => {
                let handle = LocalServer::acquire().await?;
                let model = self
                    .child_model
                    .clone()
                    .unwrap_or_else(|| handle.model_name().to_string());
                let key = handle.api_key().map(|k| ApiKey {
                    key: k.to_string(),
                    var: None,
                });
                let ep = endpoint(handle.base_url().to_string(), model, key);
                handles.push(handle);
                Some(client(ep))
            }
            Some(url) => {
                let model = match &self.child_model {
                    Some(m) => m.clone(),
                    None => {
                        only_model(&client(endpoint(
                            url.to_string(),
                            String::new(),
                            child_key.clone(),
                        )))
                        .await?
                    }
                };
                Some(client(endpoint(url.to_string(), model, child_key)))
            }
        };
        Ok(ResolvedModels {
            models: Models {
                root: client(endpoint(root_url, root_model, root_key)),
                sub,
                child_root,
            },
            // Two llama-server slots: one keeps the root conversation's prompt cache warm.
            concurrency: self.concurrency.unwrap_or(if local { 1 } else { 8 }),
            local,
            _local_servers: handles,
        })
    }
}

impl ResolvedModels {
    /// Engine budgets sized for the model: the 1.5B local model has a 16K-token slot.
    pub fn engine_config(&self, max_iterations: u32) -> EngineConfig {
        let mut cfg = EngineConfig {
            max_iterations,
            sub_concurrency: self.concurrency,
            ..EngineConfig::default()
        };
        if self.local {
            cfg.max_context_chars = 36_000;
            cfg.sub_model_chars = 20_000;
            cfg.max_output_chars = 2_000;
        } else {
            cfg.max_context_chars = 200_000;
            cfg.sub_model_chars = 100_000;
            cfg.max_output_chars = 6_000;
        }
        cfg
    }
}

fn check_base_url(url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        anyhow::bail!(
            "base URL {url:?} must start with http:// or https:// (e.g. http://127.0.0.1:8080/v1)"
        );
    }
    Ok(())
}

/// The key sent to `url`: its own if one is named, else that of a known endpoint at the same
/// base URL.
fn key_for(url: &str, own: &Option<ApiKey>, known: &[(&str, &Option<ApiKey>)]) -> Option<ApiKey> {
    own.clone().or_else(|| {
        known
            .iter()
            .find(|(other, _)| same_endpoint(url, other))
            .and_then(|(_, key)| (*key).clone())
    })
}

/// Whether two base URLs name one endpoint (`HTTP://Host:80/v1/` is `http://host/v1`).
fn same_endpoint(a: &str, b: &str) -> bool {
    let norm = |u: &str| match reqwest::Url::parse(u) {
        Ok(parsed) => parsed.as_str().trim_end_matches('/').to_string(),
        Err(_) => u.trim_end_matches('/').to_string(),
    };
    norm(a) == norm(b)
}

/// A key sent over plain http:// can be read by anyone on the network path: only to this
/// machine, unless the user allowed it.
fn check_key_transport(role: &str, url: &str, key: &ApiKey, allow: bool) -> anyhow::Result<()> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        // Nothing is sent to a URL that does not parse; the request reports it.
        return Ok(());
    };
    if allow || parsed.scheme() != "http" || is_loopback(&parsed) {
        return Ok(());
    }
    let which = match &key.var {
        Some(var) => format!("the API key in ${var}"),
        None => "the API key".to_string(),
    };
    anyhow::bail!(
        "refusing to send {which} to the {role} model at {url} over plain http://, where anyone on the network path can read it: use an https:// URL, or, on a network you trust, allow it with --allow-insecure-http / RLM_ALLOW_INSECURE_HTTP=1 (allowInsecureHttp in the editor's settings)"
    )
}

/// `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// With no model named, a server that serves exactly one (llama-server, a single vLLM model) is
/// unambiguous.
async fn only_model(client: &ChatClient) -> Result<String, anyhow::Error> {
    let url = &client.endpoint().base_url;
    let ids = client.list_models().await?;
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("{url} lists no models; name one with --model / RLM_MODEL"),
        many => Err(LlmError::Config(format!(
            "{url} serves several models ({}); choose one with --model / RLM_MODEL",
            many.join(", ")
        ))
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn run_limits_default_to_the_documented_ceilings() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        #[command(no_binary_name = true)]
        struct Cli {
            #[command(flatten)]
            limits: RunLimits,
        }
        let parsed = Cli::try_parse_from(Vec::<String>::new()).unwrap().limits;
        // Unless the test environment sets RLM_* limits, the flags default to Default.
        if std::env::vars().all(|(k, _)| !k.starts_with("RLM_")) {
            assert_eq!(parsed, RunLimits::default());
        }
        let b = RunLimits::default().budget();
        assert_eq!(b.max_sub_calls, Some(500));
        assert_eq!(b.max_child_runs, Some(50));
        assert_eq!(b.max_wall, Some(Duration::from_secs(1800)));
        assert_eq!(b.max_cost_usd, Some(2.0));
        assert_eq!(b.max_tokens, None);
        let none = RunLimits {
            max_sub_calls: 0,
            max_cost: 0.0,
            max_wall_secs: 0,
            ..RunLimits::default()
        }
        .budget();
        assert_eq!(
            (none.max_sub_calls, none.max_cost_usd, none.max_wall),
            (None, None, None)
        );
    }

    #[test]
    fn run_limits_take_settings_by_name() {
        let env = RunLimits::default();
        let mut l = RunLimits::default();
        assert_eq!(l.set("maxSubCalls", &serde_json::json!(7), &env), Ok(true));
        assert_eq!(l.max_sub_calls, 7);
        assert_eq!(
            l.set("maxSubCalls", &serde_json::Value::Null, &env),
            Ok(true)
        );
        assert_eq!(l.max_sub_calls, 500);
        assert_eq!(l.set("baseUrl", &serde_json::json!("x"), &env), Ok(false));
        assert!(l.set("maxCost", &serde_json::json!("lots"), &env).is_err());
        assert_eq!(l, env, "a refused value changes nothing");
    }
}
