//! Everything a run can be told, in one type: [`RunSettings`] (models, limits, refactor checks).
//! Each setting is one field, which is at once a command-line flag (clap), an `RLM_*`
//! environment variable, and a camelCase key of the language server's settings (serde). The
//! command line (`ask`, `refactor`, `explain`, `mcp`, `acp`), the language server
//! (`lsp::Settings` flattens it) and `rlm-eval` all take it, and turn it into an engine
//! configuration in one place ([`RunLimits::engine_config`]). With no endpoint configured the
//! shared local model is used.

mod resolve;

pub use resolve::ResolvedModels;

use crate::engine::{Budget, EngineConfig};
use crate::llm::Provider;
use crate::llm::pricing::PriceTable;
use crate::repl::{ReplConfig, SandboxConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Everything a run can be told. Its defaults are those of the flags ([`Default`] parses an
/// empty command line, ignoring the environment).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSettings {
    #[command(flatten)]
    #[serde(flatten)]
    pub models: ModelSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: RunLimits,
    /// How refactor plans are checked (`--check-command`, `RLM_CHECK_COMMAND`, repairs).
    #[command(flatten)]
    #[serde(flatten)]
    pub check: CheckSettings,
}

/// Where the models are.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    #[serde(default, deserialize_with = "from_str")]
    pub backend: Option<Provider>,
    /// Retries of a failed model call (rate limits, server errors, dropped connections, timeouts)
    #[arg(long, env = "RLM_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
    /// Sub-call response cache on disk: on (greedy calls only), all (sampled too) or off
    #[arg(long, env = "RLM_RESPONSE_CACHE", default_value = "on")]
    pub response_cache: CacheMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// Cache sub-calls made at temperature 0 (their answers repeat).
    #[default]
    On,
    /// Cache sampled sub-calls too.
    All,
    Off,
}

/// The limits and safety switches of a run. A run gets limits a user would accept unless told
/// otherwise; `0` lifts a limit.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLimits {
    /// Root-model turns before the run must answer
    #[arg(long, env = "RLM_MAX_ITERATIONS", default_value_t = 20)]
    pub max_iterations: u32,
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

/// How refactor plans are checked: the user's own command (never the model's), run on a
/// scratch copy with the plan applied, and how many times the model may repair a plan.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSettings {
    /// A command that checks a refactor plan, run with `sh -c` in a scratch copy of the first
    /// writable root with the plan applied (e.g. `cargo check --offline`, `tsc --noEmit`,
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

/// The defaults of the flags: an empty command line, the environment ignored. (The defaults are
/// written once, on the flags.)
pub fn flag_defaults<T: clap::Args + clap::FromArgMatches>() -> T {
    let cmd = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|a| a.env(None::<&'static str>));
    cmd.try_get_matches_from(std::iter::empty::<String>())
        .and_then(|m| T::from_arg_matches(&m))
        .unwrap_or_else(|e| panic!("the settings' defaults do not parse: {e}"))
}

impl Default for RunSettings {
    fn default() -> Self {
        flag_defaults()
    }
}

impl Default for ModelSettings {
    fn default() -> Self {
        flag_defaults()
    }
}

impl Default for RunLimits {
    fn default() -> Self {
        flag_defaults()
    }
}

impl Default for CheckSettings {
    fn default() -> Self {
        flag_defaults()
    }
}

/// A setting parsed by its `FromStr`, as the command line does (`backend` takes `OpenAI` and
/// `openai-compatible` too).
fn from_str<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err: std::fmt::Display>,
{
    Option::<String>::deserialize(d)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
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

    /// The engine configuration of a run with these limits: `sized` (what the models allow,
    /// see [`ResolvedModels::sized`], and what the front end owns, such as the worker's
    /// executable) with the limits over it, costed by the price table. The one place a setting
    /// becomes engine configuration.
    pub fn engine_config(&self, sized: EngineConfig) -> anyhow::Result<EngineConfig> {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Ok(EngineConfig {
            max_iterations: self.max_iterations,
            max_depth: self.max_depth,
            budget: self.budget(),
            prices: PriceTable::load().map_err(|e| anyhow::anyhow!("price table: {e}"))?,
            repl: ReplConfig {
                cell_timeout: secs(self.cell_timeout_secs),
                cell_wall_timeout: secs(self.cell_wall_secs),
                sandbox: SandboxConfig {
                    enabled: sized.repl.sandbox.enabled && !self.unsafe_no_sandbox,
                    ..sized.repl.sandbox
                },
                ..sized.repl
            },
            ..sized
        })
    }
}

impl CheckSettings {
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
            settings: RunSettings,
        }
        let parsed = Cli::try_parse_from(Vec::<String>::new()).unwrap().settings;
        // Unless the test environment sets RLM_* variables, the flags default to Default.
        if std::env::vars().all(|(k, _)| !k.starts_with("RLM_")) {
            assert_eq!(parsed, RunSettings::default());
        }
        let d = RunSettings::default();
        assert_eq!((d.models.timeout_secs, d.models.max_retries), (600, 3));
        assert_eq!(d.models.response_cache, CacheMode::On);
        assert_eq!((d.limits.max_iterations, d.limits.max_depth), (20, 2));
        assert_eq!(
            (d.check.check_timeout_secs, d.check.check_repairs),
            (300, 2)
        );
        let b = d.limits.budget();
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
    fn the_engine_config_is_the_sized_one_with_the_limits_over_it() {
        let sized = EngineConfig {
            max_context_chars: 1234,
            sub_concurrency: 3,
            ..EngineConfig::default()
        };
        let limits = RunLimits {
            max_iterations: 7,
            max_depth: 0,
            cell_timeout_secs: 0,
            unsafe_no_sandbox: true,
            ..RunLimits::default()
        };
        let cfg = limits.engine_config(sized.clone()).unwrap();
        assert_eq!((cfg.max_context_chars, cfg.sub_concurrency), (1234, 3));
        assert_eq!((cfg.max_iterations, cfg.max_depth), (7, 0));
        assert_eq!(
            cfg.repl.cell_timeout,
            Duration::from_secs(1),
            "at least a second"
        );
        assert_eq!(cfg.repl.worker_exe, sized.repl.worker_exe);
        assert!(!cfg.repl.sandbox.enabled);
        assert_eq!(cfg.budget, limits.budget());
    }

    #[test]
    fn settings_serialize_by_camel_case_names_and_back() {
        let s = RunSettings {
            models: ModelSettings {
                backend: Some(Provider::Anthropic),
                response_cache: CacheMode::All,
                ..ModelSettings::default()
            },
            ..RunSettings::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["backend"], "anthropic");
        assert_eq!(v["responseCache"], "all");
        assert_eq!(v["maxIterations"], 20);
        assert_eq!(v["checkRepairs"], 2);
        assert_eq!(serde_json::from_value::<RunSettings>(v).unwrap(), s);
        // `backend` reads as the flag does.
        let mut v = serde_json::to_value(&s).unwrap();
        v["backend"] = "OpenAI-compatible".into();
        let back: RunSettings = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back.models.backend, Some(Provider::OpenAi));
        v["backend"] = "nope".into();
        let err = serde_json::from_value::<RunSettings>(v).unwrap_err();
        assert!(err.to_string().contains("unknown backend"), "{err}");
    }
}
