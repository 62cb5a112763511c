//! An on-disk, size-capped cache of model responses, keyed by everything that determines the
//! answer: endpoint (base URL), backend, model, messages and sampling parameters. Used for
//! sub-calls at temperature 0 (greedy decoding repeats itself); sampled calls are not cached
//! unless asked.

use super::Usage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::SystemTime;

#[derive(Debug)]
pub struct ResponseCache {
    dir: PathBuf,
    max_bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    text: String,
    usage: Usage,
}

impl ResponseCache {
    /// A cache in `dir` holding at most about `max_bytes`; the oldest entries go first.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        ResponseCache { dir, max_bytes }
    }

    /// The key of a request: a SHA-256 over its canonical JSON.
    pub fn key(request: &serde_json::Value) -> String {
        let digest = Sha256::digest(request.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(key)
    }

    pub fn get(&self, key: &str) -> Option<(String, Usage)> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        // Touch it, so eviction keeps what is used.
        if let Ok(f) = std::fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some((e.text, e.usage))
    }

    /// Stores a response; failures only cost a future cache miss, so they are logged, not raised.
    pub fn put(&self, key: &str, text: &str, usage: Usage) {
        let path = self.path(key);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
            let tmp = path.with_extension("tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&Entry {
                    text: text.to_string(),
                    usage,
                })?,
            )?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::warn!("response cache: cannot write {}: {e}", path.display());
            return;
        }
        self.evict();
    }

    /// Removes the least recently used entries while the cache is over its cap.
    fn evict(&self) {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        let Ok(shards) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for shard in shards.flatten() {
            for e in std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(m) = e.metadata() {
                    entries.push((
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        m.len(),
                        e.path(),
                    ));
                }
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_and_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::new(dir.path().to_path_buf(), 400);
        let usage = Usage {
            prompt_tokens: 3,
            cached_tokens: 0,
            completion_tokens: 1,
        };
        let k1 = ResponseCache::key(&json!({"model": "m", "messages": ["a"]}));
        let k2 = ResponseCache::key(&json!({"model": "m", "messages": ["b"]}));
        assert_ne!(k1, k2);
        assert_eq!(cache.get(&k1), None);
        cache.put(&k1, "first", usage);
        assert_eq!(cache.get(&k1), Some(("first".to_string(), usage)));
        // Entries of ~150 bytes under a 400-byte cap: the oldest ones go.
        std::thread::sleep(std::time::Duration::from_millis(20));
        for i in 0..5 {
            let k = ResponseCache::key(&json!({"i": i}));
            cache.put(&k, &"x".repeat(60), usage);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(cache.get(&k1), None, "the oldest entry was evicted");
        assert!(cache.get(&ResponseCache::key(&json!({"i": 4}))).is_some());
        let _ = k2;
    }
}
