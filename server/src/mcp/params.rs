//! The parameters of the MCP tools; their doc comments are the JSON Schema descriptions agents
//! read.

use rmcp::schemars;
use serde::Deserialize;

/// Roots a call may name instead of the server's.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct RootsParam {
    /// Workspace roots to use instead of the server's (the first is the main one); absolute, or
    /// relative to the server's directory
    #[serde(default)]
    pub roots: Option<Vec<String>>,
    /// Read-only roots to add, such as a dependency's sources or a site-packages
    #[serde(default)]
    pub extra_roots: Option<Vec<String>>,
}

/// Budgets a call may set for its run (over the server's; 0 lifts a limit).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct BudgetParam {
    /// Root-model turns before the run must answer
    #[serde(default)]
    pub max_iterations: Option<u32>,
    /// Sub-calls (llm_query) the run may make
    #[serde(default)]
    pub max_sub_calls: Option<u32>,
    /// Prompt plus completion tokens of every model call
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Dollars, for the models the price table prices
    #[serde(default)]
    pub max_cost: Option<f64>,
    /// Seconds the run may take
    #[serde(default)]
    pub max_wall_secs: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AskParams {
    /// The question about the codebase
    pub question: String,
    #[serde(flatten)]
    pub roots: RootsParam,
    #[serde(flatten)]
    pub budget: BudgetParam,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExplainParams {
    /// A workspace path, as search and citations give it (relative to the workspace root)
    pub path: String,
    /// 1-based line
    pub line: u32,
    /// 1-based column, in characters
    pub column: u32,
    #[serde(flatten)]
    pub roots: RootsParam,
    #[serde(flatten)]
    pub budget: BudgetParam,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PlanRefactorParams {
    /// The change to make, in words
    pub instruction: String,
    /// The file the user is in, if any (a workspace path)
    #[serde(default)]
    pub path: Option<String>,
    /// The 1-based line the user is at, if any
    #[serde(default)]
    pub line: Option<u32>,
    #[serde(flatten)]
    pub roots: RootsParam,
    #[serde(flatten)]
    pub budget: BudgetParam,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchParams {
    /// Words, names or a phrase to rank code chunks by (BM25 over paths, names and text)
    pub query: String,
    /// How many results (default 10, at most 100)
    #[serde(default)]
    pub k: Option<usize>,
    #[serde(flatten)]
    pub roots: RootsParam,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DefinitionsParams {
    /// A name, matched exactly (else ignoring case); `Parent::name` or `Parent.name` also
    /// filters on the enclosing type
    pub name: String,
    /// How many definitions to return (default 50, at most 1000); `total` says how many there are
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(flatten)]
    pub roots: RootsParam,
}
