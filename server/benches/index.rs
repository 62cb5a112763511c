//! Index benchmark on real Rust: every `.rs` file under `~/.cargo/registry/src/*/` (the crates
//! `cargo fetch` placed there), or `$INDEX_BENCH_DIR`. Prints, in one run:
//! - the full chunk-and-symbol index (both cores, rayon) beside a naive single-threaded reference
//!   that parses every file with tree-sitter-rust and runs the grammar's bundled `TAGS_QUERY`,
//!   collecting every capture (target: at least 2x faster than the naive pass);
//! - the same index on one thread (to separate the work saved from the parallelism);
//! - incremental updates after one-character edits of a 5,000-line file (target: <= 5 ms);
//! - peak memory (VmHWM) against the source bytes (target: <= 2x + 200 MB);
//! - the BM25 of the REPL's `search()` over the index's chunks: build time, and query time over
//!   a set of questions (median, p90, max).
//!
//! Run: `cargo bench -p rlm-lsp --bench index` (or `bash bench/index.sh`).
//! Optional: `INDEX_BENCH_MAX_MB=50` to use a fixed-size subset (files in path order),
//! `INDEX_BENCH_ROUNDS=3` to take the best of more rounds (default 2), `INDEX_BENCH_ONLY=bm25`
//! for the BM25 figures alone (e.g. `INDEX_BENCH_MAX_MB=18 INDEX_BENCH_ONLY=bm25`: about 5M
//! model tokens of code).
#![allow(clippy::print_stdout)]

use rlm_lsp::index::bm25::Bm25;
use rlm_lsp::index::{IndexOptions, TextEdit, WorkspaceIndex};
use rlm_lsp::repl::search_document;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use streaming_iterator::StreamingIterator;

fn rust_files(root: &Path, out: &mut Vec<PathBuf>) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
}

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn naive_tags(files: &[(String, String)]) -> (Duration, usize) {
    let language: tree_sitter::Language = tree_sitter_rust::LANGUAGE.into();
    let query = tree_sitter::Query::new(&language, tree_sitter_rust::TAGS_QUERY)
        .unwrap_or_else(|e| panic!("tags query: {e}"));
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&language)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cursor = tree_sitter::QueryCursor::new();
    let start = Instant::now();
    let mut total = 0;
    for (_, text) in files {
        let Some(tree) = parser.parse(text, None) else {
            continue;
        };
        let mut captures: Vec<(u32, usize, usize)> = Vec::new();
        let mut it = cursor.captures(&query, tree.root_node(), text.as_bytes());
        while let Some((m, i)) = it.next() {
            let c = m.captures()[*i];
            captures.push((c.index, c.node.start_byte(), c.node.end_byte()));
        }
        total += captures.len();
    }
    (start.elapsed(), total)
}

/// BM25 over the index's chunks as `search()` builds it (path, name and text of each chunk):
/// build time, then query times.
fn bm25_bench(files: &[(String, String)]) {
    let index = WorkspaceIndex::build_files(files, IndexOptions::default());
    let chunks: Vec<_> = index.chunks().collect();
    let texts: std::collections::HashMap<&str, &str> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let start = Instant::now();
    let bm25 = Bm25::from_fn(chunks.len(), |i| {
        let c = &chunks[i];
        let text = texts
            .get(c.path.as_str())
            .and_then(|t| t.get(c.start_byte..c.end_byte))
            .unwrap_or("");
        search_document(c, text)
    });
    let build = start.elapsed();
    println!(
        "bm25: {} chunks, {:.1} MB (about {:.1}M model tokens at 3.5 bytes a token), {} terms, {} distinct; built in {:.2} s ({} threads)",
        chunks.len(),
        mb(bytes),
        bytes as f64 / 3.5 / 1e6,
        bm25.total_terms(),
        bm25.vocabulary(),
        build.as_secs_f64(),
        rayon::current_num_threads(),
    );
    let queries = [
        "where is the configuration parsed",
        "how are errors converted into io::Error",
        "parse an HTTP request header",
        "serialize a struct to JSON",
        "which function reads a file into a string",
        "thread pool spawn worker",
        "unicode normalization of identifiers",
        "hash map with a custom hasher",
        "retry with exponential backoff",
        "Display implementation for the error type",
        "async runtime timer wheel",
        "regex compile cache",
        "buffered writer flush",
        "command line argument parsing",
        "UTF-8 validation of bytes",
        "tokenize the input text",
        "lock free queue push pop",
        "random number generator seed",
        "date time formatting",
        "TLS handshake certificate verification",
    ];
    let mut times = Vec::new();
    let mut found = 0;
    for q in queries {
        let start = Instant::now();
        let top = bm25.top(q, 10);
        times.push(start.elapsed());
        found += top.len();
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "bm25 queries ({} of them, top 10, {found} results): median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        times.len(),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1]),
    );
}

fn main() {
    let root = std::env::var_os("INDEX_BENCH_DIR").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cargo/registry/src")
        },
        PathBuf::from,
    );
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    paths.sort();
    let max_bytes = std::env::var("INDEX_BENCH_MAX_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(usize::MAX, |m| m * 1024 * 1024);
    let mut files: Vec<(String, String)> = Vec::with_capacity(paths.len());
    let mut bytes = 0;
    for p in &paths {
        if bytes >= max_bytes {
            break;
        }
        let Ok(raw) = std::fs::read(p) else { continue };
        let text = String::from_utf8_lossy(&raw).into_owned();
        bytes += text.len();
        let rel = p
            .strip_prefix(&root)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned();
        files.push((rel, text));
    }
    if files.is_empty() {
        println!(
            "no .rs files under {} (run `cargo fetch` first)",
            root.display()
        );
        return;
    }
    let crates = {
        let mut c: Vec<&str> = files
            .iter()
            .filter_map(|(p, _)| p.split('/').nth(1))
            .collect();
        c.dedup();
        c.len()
    };
    println!(
        "corpus: {} .rs files from {crates} crates, {:.1} MB, under {}",
        files.len(),
        mb(bytes),
        root.display()
    );
    let base_mb = vm_hwm_mb();
    if std::env::var("INDEX_BENCH_ONLY").is_ok_and(|v| v == "bm25") {
        bm25_bench(&files);
        return;
    }

    // Full index (both cores) and the naive reference, alternated: the best of each over
    // `INDEX_BENCH_ROUNDS` rounds (default 2), since other work on the machine adds noise.
    let rounds = std::env::var("INDEX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let mut full = Duration::MAX;
    let mut naive = Duration::MAX;
    let mut captures = 0;
    for round in 0..rounds {
        let start = Instant::now();
        let index = WorkspaceIndex::build_files(&files, IndexOptions::default());
        full = full.min(start.elapsed());
        if round == 0 {
            let peak_mb = vm_hwm_mb();
            let stats = index.statistics();
            println!(
                "index: {} definitions, {} chunks, {} degraded, {} files with syntax errors",
                stats.definitions,
                stats.chunks,
                stats.degraded.len(),
                stats
                    .languages
                    .values()
                    .map(|l| l.syntax_errors)
                    .sum::<usize>(),
            );
            for d in stats.degraded.iter().take(5) {
                println!("  degraded: {} ({})", d.path, d.reason);
            }
            println!(
                "peak memory: {:.0} MB (VmHWM) for {:.1} MB of source (the sources alone: {:.0} MB); budget 2x + 200 MB = {:.0} MB",
                peak_mb,
                mb(bytes),
                base_mb,
                2.0 * mb(bytes) + 200.0
            );
        }
        drop(index);
        let (took, n) = naive_tags(&files);
        naive = naive.min(took);
        captures = n;
    }
    println!(
        "full index ({} threads): {:.2} s, {:.1} MB/s",
        rayon::current_num_threads(),
        full.as_secs_f64(),
        mb(bytes) / full.as_secs_f64(),
    );
    println!(
        "naive reference (1 thread, parse + bundled TAGS_QUERY, {captures} captures collected): {:.2} s, {:.1} MB/s",
        naive.as_secs_f64(),
        mb(bytes) / naive.as_secs_f64()
    );
    println!(
        "speedup of the full index over the naive pass: {:.2}x (target >= 2x); load average: {}",
        naive.as_secs_f64() / full.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // The same index on one thread.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build();
    if let Ok(pool) = pool {
        let start = Instant::now();
        let one = pool.install(|| WorkspaceIndex::build_files(&files, IndexOptions::default()));
        let single = start.elapsed();
        println!(
            "full index (1 thread): {:.2} s, {:.1} MB/s ({:.2}x the naive pass)",
            single.as_secs_f64(),
            mb(bytes) / single.as_secs_f64(),
            naive.as_secs_f64() / single.as_secs_f64()
        );
        drop(one);
    }

    // Incremental updates on a 5,000-line file: a real file cut to 5,000 lines, or real files
    // concatenated until 5,000 lines.
    // The code-heaviest real file of at least 5,000 lines (most `fn `), cut to 5,000 lines.
    let mut big = files
        .iter()
        .filter(|(_, t)| t.lines().count() >= 5000)
        .max_by_key(|(_, t)| {
            t.split_inclusive('\n')
                .take(5000)
                .filter(|l| l.contains("fn "))
                .count()
        })
        .map(|(p, t)| (p.clone(), t.clone()));
    if big.is_none() {
        let mut text = String::new();
        for (_, t) in &files {
            text.push_str(t);
            if text.lines().count() >= 5000 {
                break;
            }
        }
        big = Some(("concatenated.rs".to_owned(), text));
    }
    bm25_bench(&files);
    let Some((path, text)) = big else { return };
    let text: String = text.split_inclusive('\n').take(5000).collect();
    let index = WorkspaceIndex::build_files(&files, IndexOptions::default());
    let start = Instant::now();
    let mut index = index.update_file(&path, &text, None);
    let first = start.elapsed();
    let mut current = text;
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(current.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut with_range = Vec::new();
    let mut without_range = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..100 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = line_starts[(seed % line_starts.len() as u64) as usize].min(current.len());
        // Insert then delete a comment character, alternating.
        let (next, edit) = if i % 2 == 0 {
            let mut n = current.clone();
            n.insert_str(at, "//x\n");
            (
                n,
                TextEdit {
                    start_byte: at,
                    old_end_byte: at,
                    new_end_byte: at + 4,
                },
            )
        } else {
            let pos = current.find("//x\n").unwrap_or(0);
            let mut n = current.clone();
            n.replace_range(pos..pos + 4, "");
            (
                n,
                TextEdit {
                    start_byte: pos,
                    old_end_byte: pos + 4,
                    new_end_byte: pos,
                },
            )
        };
        let use_range = i % 4 < 2;
        let start = Instant::now();
        index = index.update_file(&path, &next, use_range.then_some(edit));
        let took = start.elapsed();
        if use_range {
            with_range.push(took);
        } else {
            without_range.push(took);
        }
        current = next;
    }
    let summary = |v: &mut Vec<Duration>| {
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
            ms(v[v.len() / 2]),
            ms(v[v.len() * 9 / 10]),
            ms(v[v.len() - 1])
        )
    };
    let file = index.file(&path);
    println!(
        "incremental update of {path} ({} lines, {:.0} KB, {} definitions; first update, a full parse: {:.2} ms; {} files in the index):",
        current.lines().count(),
        current.len() as f64 / 1024.0,
        file.map_or(0, |f| f.definitions().len()),
        first.as_secs_f64() * 1e3,
        index.len()
    );
    println!(
        "  with the edit range: {} (target <= 5 ms)",
        summary(&mut with_range)
    );
    println!("  range found by diff: {}", summary(&mut without_range));
    println!(
        "  incremental re-parse used: {}",
        file.is_some_and(|f| f.was_incremental())
    );
}
