//! Resolving [`ModelSettings`] into models ready to use: explicit endpoints as given, else the
//! shared local model; each endpoint with only its own API key.

use super::{CacheMode, ModelSettings};
use crate::engine::{EngineConfig, Models};
use crate::llm::cache::ResponseCache;
use crate::llm::local::{LocalServer, LocalServerHandle};
use crate::llm::{ChatClient, Endpoint, LlmError, Provider, RetryPolicy};
use std::sync::Arc;
use std::time::Duration;

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
            // Model edits run in the check command, outside the sandbox: never with the key.
            crate::engine::check_command::hide_variable(var);
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
    /// The engine sized for the models (windows, concurrency), before any run setting: the 1.5B
    /// local model has a 16K-token slot. [`RunLimits::engine_config`](super::RunLimits) puts
    /// the limits over it.
    pub fn sized(&self) -> EngineConfig {
        let (max_context_chars, sub_model_chars, max_output_chars) = if self.local {
            (36_000, 20_000, 2_000)
        } else {
            (200_000, 100_000, 6_000)
        };
        EngineConfig {
            sub_concurrency: self.concurrency,
            max_context_chars,
            sub_model_chars,
            max_output_chars,
            ..EngineConfig::default()
        }
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
