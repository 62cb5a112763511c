//! One concurrency limit per model endpoint, shared by every run in the process: several runs
//! fanning out to one vLLM cluster together stay under its limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

/// Semaphores by (base URL, limit).
type Limits = HashMap<(String, usize), Arc<Semaphore>>;

static LIMITS: OnceLock<Mutex<Limits>> = OnceLock::new();

/// The semaphore for calls to `base_url` with `limit` slots. The same endpoint and limit always
/// get the same semaphore; a run configured with another limit gets its own.
pub fn for_endpoint(base_url: &str, limit: usize) -> Arc<Semaphore> {
    let limit = limit.max(1);
    let mut map = LIMITS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry((base_url.trim_end_matches('/').to_string(), limit))
        .or_insert_with(|| Arc::new(Semaphore::new(limit)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_per_endpoint_and_limit() {
        let a = for_endpoint("http://h:1/v1", 4);
        let b = for_endpoint("http://h:1/v1/", 4);
        let c = for_endpoint("http://h:2/v1", 4);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(for_endpoint("http://h:3/v1", 0).available_permits(), 1);
    }
}
