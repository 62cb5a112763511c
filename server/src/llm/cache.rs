//! An on-disk, size-capped cache of model responses, keyed by everything that determines the
//! answer: endpoint (base URL), backend, model, messages and sampling parameters. Used for
//! sub-calls at temperature 0 (greedy decoding repeats itself); sampled calls are not cached
//! unless asked.

use super::Usage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::SystemTime;

/// A sweep takes the cache down to this share of its cap, so that the next one waits until
/// that much more has been written: sweeping costs a listing of the whole directory.
const SWEEP_TO: f64 = 0.875;

#[derive(Debug)]
pub struct ResponseCache {
    dir: PathBuf,
    max_bytes: u64,
    tally: Arc<Tally>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    text: String,
    usage: Usage,
}

/// What this process knows of the cache's size, so that a `put` lists the directory only when
/// the cache may be over its cap (and then on a thread of its own), not every time.
#[derive(Debug, Default)]
struct Tally {
    state: Mutex<TallyState>,
    /// Signalled when a sweep ends.
    swept: Condvar,
}

#[derive(Debug, Default)]
struct TallyState {
    /// Bytes in the directory at the last sweep plus those this process wrote since; `None`
    /// before the first sweep. Other processes' writes are counted at the next sweep.
    bytes: Option<u64>,
    /// A sweep is running; `written` counts what was written meanwhile.
    sweeping: bool,
    written: u64,
}

impl Tally {
    fn lock(&self) -> MutexGuard<'_, TallyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResponseCache {
    /// A cache in `dir` holding at most about `max_bytes`; the least recently used entries go
    /// first.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        ResponseCache {
            dir,
            max_bytes,
            tally: Arc::default(),
        }
    }

    /// The key of a request: a SHA-256 over its canonical JSON (hashed as it is written, never
    /// held as a string: a request may carry a large prompt).
    pub fn key(request: &impl Serialize) -> String {
        let mut hasher = HashWriter(Sha256::new());
        // Writing to a hasher cannot fail; a value that cannot be JSON has no key to share.
        let _ = serde_json::to_writer(&mut hasher, request);
        let digest = hasher.0.finalize();
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
    /// When the cache may be over its cap, a sweep on a thread of its own removes the least
    /// recently used entries (the first `put` of a process sweeps, to learn the cache's size).
    pub fn put(&self, key: &str, text: &str, usage: Usage) {
        let path = self.path(key);
        let write = || -> std::io::Result<u64> {
            std::fs::create_dir_all(path.parent().unwrap_or(&self.dir))?;
            let tmp = path.with_extension("tmp");
            let entry = serde_json::to_vec(&Entry {
                text: text.to_string(),
                usage,
            })?;
            std::fs::write(&tmp, &entry)?;
            std::fs::rename(&tmp, &path)?;
            Ok(entry.len() as u64)
        };
        let len = match write() {
            Ok(len) => len,
            Err(e) => {
                // A cache that cannot be written costs misses, not the run: said once.
                super::local::warn_cache_unwritable(&path, &e, "sub-call answers are not cached");
                return;
            }
        };
        let mut st = self.tally.lock();
        if st.sweeping {
            st.written += len;
            return;
        }
        let bytes = st.bytes.map(|b| b + len);
        st.bytes = bytes;
        if bytes.is_some_and(|b| b <= self.max_bytes) {
            return;
        }
        st.sweeping = true;
        st.written = 0;
        drop(st);
        let (dir, max, tally) = (self.dir.clone(), self.max_bytes, self.tally.clone());
        let spawned = std::thread::Builder::new()
            .name("response-cache-sweep".into())
            .spawn(move || sweep(&dir, max, &tally));
        if let Err(e) = spawned {
            tracing::warn!("response cache: cannot start a sweep: {e}");
            self.tally.lock().sweeping = false;
        }
    }

    /// Waits for a running sweep to end.
    #[cfg(test)]
    fn wait_for_sweep(&self) {
        let mut st = self.tally.lock();
        while st.sweeping {
            st = self.tally.swept.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Feeds what is written to it to a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lists the cache and, when it is over `max_bytes`, removes the least recently used entries
/// until it holds `SWEEP_TO` of that; then records its size in `tally`.
fn sweep(dir: &Path, max_bytes: u64, tally: &Tally) {
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for shard in std::fs::read_dir(dir).into_iter().flatten().flatten() {
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
    if total > max_bytes {
        let target = (max_bytes as f64 * SWEEP_TO) as u64;
        entries.sort();
        for (_, len, path) in entries {
            if total <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
    let mut st = tally.lock();
    // What was written during the listing may be in it too: counted twice, which only brings
    // the next sweep forward.
    st.bytes = Some(total + st.written);
    st.written = 0;
    st.sweeping = false;
    tally.swept.notify_all();
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
            cache.wait_for_sweep();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(cache.get(&k1), None, "the oldest entry was evicted");
        assert!(cache.get(&ResponseCache::key(&json!({"i": 4}))).is_some());
        let _ = k2;
    }

    #[test]
    fn a_put_under_the_cap_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::new(dir.path().to_path_buf(), 1 << 20);
        let usage = Usage::default();
        // The first put of a process sweeps, to learn the size of the cache.
        cache.put("aa01", "one", usage);
        cache.wait_for_sweep();
        let after_first = cache.tally.lock().bytes.expect("swept");
        cache.put("aa02", "two", usage);
        let st = cache.tally.lock();
        assert!(!st.sweeping, "no sweep while under the cap");
        assert_eq!(st.bytes, Some(2 * after_first));
    }

    #[test]
    fn keys_are_the_sha256_of_the_json() {
        let request = json!({"endpoint": "http://h/v1", "body": {"messages": ["a"]}});
        let expected: String = Sha256::digest(request.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(ResponseCache::key(&request), expected);
    }
}
