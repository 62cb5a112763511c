//! The workspace text serialized once per snapshot into one file that workers map into memory.
//!
//! # Format (all integers u64 little-endian, offsets from the start of the file)
//!
//! ```text
//! magic      8 bytes   b"RLMCTX1\0"
//! count      u64       number of files
//! index      count x { path_off, path_len, text_off, text_len }   sorted by path (byte order)
//! data       the paths and texts, UTF-8, back to back
//! ```
//!
//! The worker validates the header and every index entry when it opens the file (O(files)), and
//! decodes a text only when model code reads it.

use super::ReplError;
use crate::workspace::Snapshot;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"RLMCTX1\0";
const HEADER: usize = 16;
const ENTRY: usize = 32;

/// The workspace of one snapshot as a file; deleted when the last `Arc` is dropped.
#[derive(Debug)]
pub struct ContextBlob {
    _dir: super::owned_dir::OwnedTempDir,
    path: PathBuf,
    files: usize,
    bytes: u64,
}

impl ContextBlob {
    /// Writes the snapshot's files into a new private temp directory.
    pub fn write(snapshot: &Snapshot) -> Result<Arc<ContextBlob>, ReplError> {
        let dir = super::owned_dir::OwnedTempDir::new("rlm-context-").map_err(|source| {
            ReplError::Blob {
                path: std::env::temp_dir(),
                source,
            }
        })?;
        let path = dir.path().join("context.bin");
        let io_err = |source| ReplError::Blob {
            path: path.clone(),
            source,
        };
        let mut order: Vec<usize> = (0..snapshot.files.len()).collect();
        order.sort_by(|&a, &b| snapshot.files[a].path.cmp(&snapshot.files[b].path));
        order.dedup_by(|a, b| snapshot.files[*a].path == snapshot.files[*b].path);

        let file = File::create(&path).map_err(io_err)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::with_capacity(HEADER + ENTRY * order.len());
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(order.len() as u64).to_le_bytes());
        let mut off = (HEADER + ENTRY * order.len()) as u64;
        let mut bytes = 0u64;
        for &i in &order {
            let f = &snapshot.files[i];
            for len in [f.path.len() as u64, f.text.len() as u64] {
                header.extend_from_slice(&off.to_le_bytes());
                header.extend_from_slice(&len.to_le_bytes());
                off += len;
            }
            bytes += f.text.len() as u64;
        }
        w.write_all(&header).map_err(io_err)?;
        for &i in &order {
            let f = &snapshot.files[i];
            w.write_all(f.path.as_bytes()).map_err(io_err)?;
            w.write_all(f.text.as_bytes()).map_err(io_err)?;
        }
        // No fsync: workers read through the page cache, and the file dies with the process.
        w.flush().map_err(io_err)?;
        Ok(Arc::new(ContextBlob {
            _dir: dir,
            path,
            files: order.len(),
            bytes,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of files.
    pub fn files(&self) -> usize {
        self.files
    }

    /// Total bytes of text.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The worker's read-only view of a blob.
pub struct BlobReader {
    map: memmap2::Mmap,
    entries: Vec<(Range<usize>, Range<usize>)>,
    bytes: u64,
}

impl BlobReader {
    pub fn open(path: &Path) -> Result<BlobReader, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: the file lives in a private directory created by the parent, which never
        // modifies it after writing; the mapping is read-only. If it were truncated behind our
        // back the worker would die of SIGBUS, which the parent reports as a dead worker.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| format!("cannot map {}: {e}", path.display()))?;
        Self::parse(map, path)
    }

    fn parse(map: memmap2::Mmap, path: &Path) -> Result<BlobReader, String> {
        let bad = |what: &str| {
            format!(
                "{} is not a valid context file ({what}); it was written by a different rlm-lsp \
                 version or damaged",
                path.display()
            )
        };
        let data: &[u8] = &map;
        if data.len() < HEADER || &data[..8] != MAGIC {
            return Err(bad("bad header"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap_or([0; 8]));
        let count = u64_at(8) as usize;
        let index_end = count
            .checked_mul(ENTRY)
            .and_then(|n| n.checked_add(HEADER))
            .filter(|&end| end <= data.len())
            .ok_or_else(|| bad("index past the end"))?;
        let range = |off: u64, len: u64| -> Result<Range<usize>, String> {
            let start = usize::try_from(off).map_err(|_| bad("offset"))?;
            let end = start
                .checked_add(usize::try_from(len).map_err(|_| bad("length"))?)
                .filter(|&end| start >= index_end && end <= data.len())
                .ok_or_else(|| bad("entry past the end"))?;
            Ok(start..end)
        };
        let mut entries = Vec::with_capacity(count);
        let mut bytes = 0u64;
        for i in 0..count {
            let at = HEADER + i * ENTRY;
            let p = range(u64_at(at), u64_at(at + 8))?;
            let t = range(u64_at(at + 16), u64_at(at + 24))?;
            bytes += t.len() as u64;
            entries.push((p, t));
        }
        let r = BlobReader {
            map,
            entries,
            bytes,
        };
        if (1..r.len()).any(|i| r.path_bytes(i - 1) >= r.path_bytes(i)) {
            return Err(bad("paths not sorted"));
        }
        Ok(r)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Total bytes of text.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn path_bytes(&self, i: usize) -> &[u8] {
        &self.map[self.entries[i].0.clone()]
    }

    pub fn path(&self, i: usize) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.path_bytes(i))
    }

    pub fn text(&self, i: usize) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.text_bytes(i))
    }

    /// The text of file `i` as stored (UTF-8, written from a `String`).
    pub fn text_bytes(&self, i: usize) -> &[u8] {
        &self.map[self.entries[i].1.clone()]
    }

    pub fn find(&self, path: &str) -> Option<usize> {
        let mut lo = 0;
        let mut hi = self.len();
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.path_bytes(mid).cmp(path.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }
}

impl crate::index::grep::Haystack for BlobReader {
    fn file_count(&self) -> usize {
        self.len()
    }

    fn path(&self, i: usize) -> &str {
        // Paths are written from `String`s; a damaged one matches nothing.
        std::str::from_utf8(self.path_bytes(i)).unwrap_or("")
    }

    fn text(&self, i: usize) -> &[u8] {
        self.text_bytes(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{IndexStats, SourceFile};

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            root: "/ws".into(),
            files: files
                .iter()
                .map(|(p, t)| SourceFile {
                    path: p.to_string(),
                    text: t.to_string().into(),
                })
                .collect(),
            stats: IndexStats::default(),
        }
    }

    #[test]
    fn write_then_read_back() {
        let blob = ContextBlob::write(&snapshot(&[
            ("src/b.rs", "fn b() {}\n"),
            ("README.md", "héllo\n"),
            ("src/a.rs", ""),
        ]))
        .unwrap();
        assert_eq!(blob.files(), 3);
        assert_eq!(blob.bytes(), 10 + 7);
        let r = BlobReader::open(blob.path()).unwrap();
        assert_eq!(r.len(), 3);
        let paths: Vec<_> = (0..r.len()).map(|i| r.path(i).into_owned()).collect();
        assert_eq!(paths, ["README.md", "src/a.rs", "src/b.rs"]);
        assert_eq!(
            r.find("README.md").map(|i| r.text(i).into_owned()).unwrap(),
            "héllo\n"
        );
        assert_eq!(r.find("src/a.rs").map(|i| r.text(i).len()), Some(0));
        assert_eq!(r.find("src/c.rs"), None);
        assert_eq!(r.bytes(), 17);
        let path = blob.path().to_path_buf();
        drop(blob);
        assert!(!path.exists(), "the blob's directory is removed on drop");
    }

    #[test]
    fn damaged_blob_is_refused() {
        let blob = ContextBlob::write(&snapshot(&[("a", "x")])).unwrap();
        let mut data = std::fs::read(blob.path()).unwrap();
        data[16] = 0xff; // path offset far away
        let bad = blob.path().with_file_name("bad.bin");
        std::fs::write(&bad, &data).unwrap();
        let err = BlobReader::open(&bad).err().unwrap();
        assert!(err.contains("not a valid context file"), "{err}");
        std::fs::write(&bad, b"nope").unwrap();
        assert!(BlobReader::open(&bad).is_err());
    }
}
