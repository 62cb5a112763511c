//! What a run may spend, and what it has spent: sub-calls, tokens, dollars and wall time, shared
//! by a run and its child runs, with an account per depth, role and model.

use crate::llm::Usage;
use crate::llm::pricing::PriceTable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Limits of one run (children included). `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// Model calls made from the REPL (`llm_query`, and `rlm_query` past the last depth).
    pub max_sub_calls: Option<u32>,
    /// Child runs started by `rlm_query`, at every depth.
    pub max_child_runs: Option<u32>,
    /// Prompt plus completion tokens of every call.
    pub max_tokens: Option<u64>,
    /// Dollars, counted for the models the price table knows.
    pub max_cost_usd: Option<f64>,
    pub max_wall: Option<Duration>,
}

impl Budget {
    /// Default limit on sub-calls: a wide fan-out (the paper's runs make hundreds), not an
    /// endless loop.
    pub const DEFAULT_MAX_SUB_CALLS: u32 = 500;
    pub const DEFAULT_MAX_CHILD_RUNS: u32 = 50;
    /// Default wall time: a long run of the local model on two cores, with room to spare.
    pub const DEFAULT_MAX_WALL_SECS: u64 = 30 * 60;
    /// Default dollars per question, for priced models.
    pub const DEFAULT_MAX_COST_USD: f64 = 2.0;
}

/// Which limit ended a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    SubCalls,
    ChildRuns,
    Tokens,
    Cost,
    WallTime,
}

impl BudgetKind {
    pub fn describe(self, b: &Budget) -> String {
        match self {
            BudgetKind::SubCalls => format!("max sub-calls ({})", b.max_sub_calls.unwrap_or(0)),
            BudgetKind::ChildRuns => {
                format!("max child runs ({})", b.max_child_runs.unwrap_or(0))
            }
            BudgetKind::Tokens => format!("max tokens ({})", b.max_tokens.unwrap_or(0)),
            BudgetKind::Cost => format!("max cost (${:.2})", b.max_cost_usd.unwrap_or(0.0)),
            BudgetKind::WallTime => format!(
                "max wall time ({} s)",
                b.max_wall.unwrap_or_default().as_secs()
            ),
        }
    }
}

/// What a run tree has spent so far: the engine reports it after every model call
/// (`Event::Spent`), and progress reports read it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Spent {
    /// Sub-calls answered (`llm_query`, and `rlm_query` past the last depth).
    pub sub_calls: u32,
    /// Child runs started (`rlm_query`).
    pub child_runs: u32,
    /// Prompt plus completion tokens of every call.
    pub tokens: u64,
    /// Dollars; `None` once a model the price table does not know was used.
    pub cost_usd: Option<f64>,
}

/// Usage of one model at one depth in one role.
#[derive(Debug, Clone, Serialize)]
pub struct ModelUsage {
    /// `root` or `sub`.
    pub role: String,
    pub model: String,
    /// 0 for the run itself, 1 for its child runs (`rlm_query`), ...
    pub depth: u32,
    pub calls: u32,
    #[serde(flatten)]
    pub usage: Usage,
    /// Dollars, when the price table knows the model.
    pub cost_usd: Option<f64>,
    /// Total time spent waiting for this model's answers.
    pub latency_ms: u64,
}

/// The spending of a run tree, shared by the run and its children.
pub(crate) struct Account {
    pub(crate) budget: Budget,
    prices: PriceTable,
    started: Instant,
    sub_calls: AtomicU32,
    child_runs: AtomicU32,
    ledger: Mutex<BTreeMap<(u32, String, String), ModelUsage>>,
}

impl Account {
    pub(crate) fn new(budget: Budget, prices: PriceTable) -> Self {
        Account {
            budget,
            prices,
            started: Instant::now(),
            sub_calls: AtomicU32::new(0),
            child_runs: AtomicU32::new(0),
            ledger: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one answered call.
    pub(crate) fn charge(
        &self,
        depth: u32,
        role: &str,
        model: &str,
        usage: Usage,
        latency: Duration,
    ) {
        let cost = self.prices.cost(model, &usage);
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let entry = ledger
            .entry((depth, role.to_string(), model.to_string()))
            .or_insert_with(|| ModelUsage {
                role: role.to_string(),
                model: model.to_string(),
                depth,
                calls: 0,
                usage: Usage::default(),
                cost_usd: Some(0.0),
                latency_ms: 0,
            });
        entry.calls += 1;
        entry.usage += usage;
        entry.latency_ms += latency.as_millis() as u64;
        entry.cost_usd = match (entry.cost_usd, cost) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }

    /// Takes one sub-call from the budget, or says which limit forbids it.
    pub(crate) fn take_sub_call(&self) -> Result<(), BudgetKind> {
        self.take(
            &self.sub_calls,
            self.budget.max_sub_calls,
            BudgetKind::SubCalls,
        )
    }

    /// Takes one child run from the budget, or says which limit forbids it.
    pub(crate) fn take_child_run(&self) -> Result<(), BudgetKind> {
        self.take(
            &self.child_runs,
            self.budget.max_child_runs,
            BudgetKind::ChildRuns,
        )
    }

    fn take(
        &self,
        count: &AtomicU32,
        max: Option<u32>,
        kind: BudgetKind,
    ) -> Result<(), BudgetKind> {
        if let Some(k) = self.exceeded() {
            return Err(k);
        }
        let n = count.fetch_add(1, Ordering::Relaxed);
        match max {
            Some(max) if n >= max => Err(kind),
            _ => Ok(()),
        }
    }

    /// The first limit already reached, if any (sub-calls count as reached when all are used).
    pub(crate) fn exceeded(&self) -> Option<BudgetKind> {
        let b = &self.budget;
        if b.max_wall.is_some_and(|w| self.started.elapsed() >= w) {
            return Some(BudgetKind::WallTime);
        }
        let (tokens, cost) = self.totals();
        if b.max_tokens.is_some_and(|m| tokens >= m) {
            return Some(BudgetKind::Tokens);
        }
        if b.max_cost_usd.is_some_and(|m| cost >= m) {
            return Some(BudgetKind::Cost);
        }
        if b.max_sub_calls
            .is_some_and(|m| self.sub_calls.load(Ordering::Relaxed) > m)
        {
            return Some(BudgetKind::SubCalls);
        }
        if b.max_child_runs
            .is_some_and(|m| self.child_runs.load(Ordering::Relaxed) > m)
        {
            return Some(BudgetKind::ChildRuns);
        }
        None
    }

    /// Wall time left, if there is a limit.
    pub(crate) fn remaining_wall(&self) -> Option<Duration> {
        self.budget
            .max_wall
            .map(|w| w.saturating_sub(self.started.elapsed()))
    }

    /// What the run tree has spent so far, for progress reports.
    pub(crate) fn spent(&self) -> Spent {
        let ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = Spent {
            sub_calls: 0,
            child_runs: self.child_runs.load(Ordering::Relaxed),
            tokens: 0,
            cost_usd: Some(0.0),
        };
        for u in ledger.values() {
            if u.role == "sub" {
                s.sub_calls += u.calls;
            }
            s.tokens += u.usage.prompt_tokens + u.usage.completion_tokens;
            s.cost_usd = s.cost_usd.zip(u.cost_usd).map(|(a, b)| a + b);
        }
        s
    }

    /// Tokens and dollars spent so far (unpriced models count as free).
    pub(crate) fn totals(&self) -> (u64, f64) {
        let ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        ledger.values().fold((0, 0.0), |(t, c), u| {
            (
                t + u.usage.prompt_tokens + u.usage.completion_tokens,
                c + u.cost_usd.unwrap_or(0.0),
            )
        })
    }

    pub(crate) fn usage(&self) -> Vec<ModelUsage> {
        let ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        // Depth first, then root before sub.
        ledger.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            cached_tokens: 0,
            completion_tokens: c,
        }
    }

    #[test]
    fn limits_are_reported_in_order() {
        let prices = PriceTable::parse(r#"{"m": {"input": 1000000, "output": 0}}"#).unwrap();
        let a = Account::new(
            Budget {
                max_sub_calls: Some(2),
                max_child_runs: Some(1),
                max_tokens: Some(100),
                max_cost_usd: Some(50.0),
                max_wall: None,
            },
            prices,
        );
        assert_eq!(a.exceeded(), None);
        assert_eq!(a.take_sub_call(), Ok(()));
        assert_eq!(a.take_sub_call(), Ok(()));
        assert_eq!(a.take_sub_call(), Err(BudgetKind::SubCalls));
        // Sub-calls past the limit mark the budget as reached; child runs have their own count.
        let b = Account::new(
            Budget {
                max_child_runs: Some(1),
                ..Budget::default()
            },
            PriceTable::default(),
        );
        assert_eq!(b.take_sub_call(), Ok(()));
        assert_eq!(b.take_child_run(), Ok(()));
        assert_eq!(b.take_child_run(), Err(BudgetKind::ChildRuns));
        assert_eq!(b.exceeded(), Some(BudgetKind::ChildRuns));
        a.charge(0, "root", "m", usage(40, 0), Duration::ZERO);
        // 40 tokens at $1 each.
        assert_eq!(a.totals(), (40, 40.0));
        a.charge(1, "sub", "m", usage(20, 5), Duration::ZERO);
        assert_eq!(a.exceeded(), Some(BudgetKind::Cost));
        let u = a.usage();
        assert_eq!(
            u.iter()
                .map(|u| (u.depth, u.role.as_str()))
                .collect::<Vec<_>>(),
            [(0, "root"), (1, "sub")]
        );
        assert_eq!(BudgetKind::Cost.describe(&a.budget), "max cost ($50.00)");
    }

    #[test]
    fn wall_time_runs_out() {
        let a = Account::new(
            Budget {
                max_wall: Some(Duration::from_millis(1)),
                ..Budget::default()
            },
            PriceTable::default(),
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(a.exceeded(), Some(BudgetKind::WallTime));
        assert_eq!(a.remaining_wall(), Some(Duration::ZERO));
    }
}
