//! One concurrency limit per model endpoint, shared by every call to it in the process: root
//! calls, sub-calls and child runs' root calls of every run, so several runs fanning out to one
//! vLLM cluster (or the one local model) together stay under its limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

/// A semaphore by base URL, with the limit it was last given.
type Limits = HashMap<String, (Arc<Semaphore>, usize)>;

static LIMITS: OnceLock<Mutex<Limits>> = OnceLock::new();

/// The semaphore for calls to `base_url`, with `limit` slots. Every caller of one endpoint gets
/// the same semaphore; a new limit (the settings changed) resizes it: slots are added at once,
/// and removed as they become free.
pub fn for_endpoint(base_url: &str, limit: usize) -> Arc<Semaphore> {
    let limit = limit.max(1);
    let mut map = LIMITS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let (sem, current) = map
        .entry(base_url.trim_end_matches('/').to_string())
        .or_insert_with(|| (Arc::new(Semaphore::new(limit)), limit));
    if limit > *current {
        sem.add_permits(limit - *current);
    } else if limit < *current {
        let sem = sem.clone();
        let fewer = (*current - limit) as u32;
        // Taken for good once free: calls in flight finish under the old limit.
        tokio::spawn(async move {
            if let Ok(p) = sem.acquire_many(fewer).await {
                p.forget();
            }
        });
    }
    *current = limit;
    sem.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_semaphore_per_endpoint_resized_by_a_new_limit() {
        let a = for_endpoint("http://h:1/v1", 4);
        let b = for_endpoint("http://h:1/v1/", 4);
        let c = for_endpoint("http://h:2/v1", 4);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(for_endpoint("http://h:3/v1", 0).available_permits(), 1);
        // Another limit for the same endpoint: the same semaphore, resized.
        let d = for_endpoint("http://h:1/v1", 6);
        assert!(Arc::ptr_eq(&a, &d));
        assert_eq!(d.available_permits(), 6);
        let held = d.clone().acquire_owned().await.unwrap();
        let e = for_endpoint("http://h:1/v1", 2);
        tokio::task::yield_now().await;
        assert_eq!(e.available_permits(), 1, "2 slots, one of them in use");
        drop(held);
        assert_eq!(e.available_permits(), 2);
    }
}
