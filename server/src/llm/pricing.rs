//! What model calls cost, from a price table shipped as data (`server/data/prices.json`) and
//! overridable with `RLM_PRICES=/path/to/prices.json`.

use super::Usage;
use serde::Deserialize;
use std::collections::BTreeMap;

const BUILTIN: &str = include_str!("../../data/prices.json");

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Price {
    pub input: f64,
    #[serde(default)]
    pub cached_input: Option<f64>,
    pub output: f64,
}

#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

impl PriceTable {
    /// The built-in table, with `RLM_PRICES` entries on top when that variable names a file.
    pub fn load() -> Result<Self, String> {
        let mut t = Self::parse(BUILTIN).map_err(|e| format!("built-in price table: {e}"))?;
        if let Some(path) = std::env::var_os("RLM_PRICES") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("RLM_PRICES={}: {e}", path.to_string_lossy()))?;
            let extra = Self::parse(&text)
                .map_err(|e| format!("RLM_PRICES={}: {e}", path.to_string_lossy()))?;
            t.prices.extend(extra.prices);
        }
        Ok(t)
    }

    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut prices = BTreeMap::new();
        for (model, v) in raw {
            if model.starts_with('_') {
                continue;
            }
            let p: Price =
                serde_json::from_value(v).map_err(|e| format!("price of {model}: {e}"))?;
            prices.insert(model.to_ascii_lowercase(), p);
        }
        Ok(PriceTable { prices })
    }

    /// The price of `model`: the entry whose name is the longest prefix of the model's name
    /// (`claude-sonnet-4-5-20250929` is priced as `claude-sonnet-4`), ignoring a `provider/` part.
    pub fn price(&self, model: &str) -> Option<Price> {
        let m = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        self.prices
            .iter()
            .filter(|(k, _)| m.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| *p)
    }

    /// Cost in USD, or `None` for a model the table does not know.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        let p = self.price(model)?;
        let cached = usage.cached_tokens.min(usage.prompt_tokens) as f64;
        let fresh = usage.prompt_tokens as f64 - cached;
        Some(
            (fresh * p.input
                + cached * p.cached_input.unwrap_or(p.input)
                + usage.completion_tokens as f64 * p.output)
                / 1e6,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_cached_tokens_are_cheaper() {
        let t = PriceTable::parse(BUILTIN).unwrap();
        assert_eq!(t.price("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(t.price("openai/gpt-4o").unwrap().input, 2.5);
        assert!(t.price("mystery-model").is_none());
        let u = Usage {
            prompt_tokens: 1_000_000,
            cached_tokens: 500_000,
            completion_tokens: 100_000,
        };
        let c = t.cost("claude-sonnet-4-5-20250929", &u).unwrap();
        assert!((c - (1.5 + 0.15 + 1.5)).abs() < 1e-9, "{c}");
    }

    #[test]
    fn overrides_parse_and_errors_name_the_model() {
        let t = PriceTable::parse(r#"{"my-model": {"input": 1, "output": 2}}"#).unwrap();
        let u = Usage {
            prompt_tokens: 1_000_000,
            cached_tokens: 0,
            completion_tokens: 0,
        };
        assert_eq!(t.cost("my-model", &u), Some(1.0));
        let err = PriceTable::parse(r#"{"bad": {"input": "x"}}"#).unwrap_err();
        assert!(err.starts_with("price of bad"), "{err}");
    }
}
