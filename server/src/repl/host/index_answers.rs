//! Answers to the worker's index queries (`symbols()`, `outline()`, `chunks`, definitions,
//! enclosing functions, implementations, `search()`) from the run's index, bounded to fit a frame.

use crate::index::Chunk;
use crate::repl::index::{IndexQueries, SymbolQuery};
use crate::repl::protocol::{CHUNK_PAGE, IndexQuery, IndexReply};
use std::sync::Arc;

/// The most definitions one `symbols()` reply carries.
const MAX_SYMBOLS: u64 = 100_000;
/// Characters of a definition's signature sent to the worker.
const MAX_SIGNATURE_CHARS: usize = 300;
/// The most locations one `Enclosing` query may ask about, and the most `search()` results.
const MAX_LOCATIONS: usize = 1_000_000;
const MAX_SEARCH_RESULTS: u64 = 10_000;

/// Answers one index query; `chunks` keeps the list one request pages through.
pub(super) fn answer_index(
    index: Option<&dyn IndexQueries>,
    query: IndexQuery,
    chunks: &mut Option<Arc<Vec<Chunk>>>,
) -> IndexReply {
    let Some(index) = index else {
        return IndexReply::Error {
            message: "there is no code index in this run (symbols, outline, chunks, \
                      definitions, callers, implementations and search are unavailable); use \
                      grep(pattern) and read(path, start, end) instead"
                .into(),
        };
    };
    let short = |mut d: crate::index::Definition| {
        if let Some((cut, _)) = d.signature.char_indices().nth(MAX_SIGNATURE_CHARS) {
            d.signature.truncate(cut);
            d.signature.push_str("...");
        }
        d
    };
    match query {
        IndexQuery::Symbols {
            name,
            kind,
            path,
            limit,
        } => {
            let found = index.symbols(&SymbolQuery { name, kind, path });
            let total = found.len() as u64;
            let keep = limit.min(MAX_SYMBOLS) as usize;
            IndexReply::Symbols {
                total,
                definitions: found.into_iter().take(keep).map(short).collect(),
            }
        }
        IndexQuery::Outline { path } => IndexReply::Outline {
            entries: index
                .outline(&path)
                .into_iter()
                .map(|(depth, d)| (depth, short(d)))
                .collect(),
        },
        IndexQuery::Chunks { offset, limit } => {
            if offset == 0 || chunks.is_none() {
                *chunks = Some(index.chunks());
            }
            let all = chunks.as_deref().map_or(&[][..], |c| c.as_slice());
            let start = (offset as usize).min(all.len());
            let end = start
                .saturating_add(limit.min(CHUNK_PAGE) as usize)
                .min(all.len());
            IndexReply::Chunks {
                total: all.len() as u64,
                offset: start as u64,
                chunks: all[start..end].to_vec(),
            }
        }
        IndexQuery::Definitions { name } => IndexReply::Definitions {
            definitions: index.definitions(&name).into_iter().map(short).collect(),
        },
        IndexQuery::Enclosing { mut locations } => {
            locations.truncate(MAX_LOCATIONS);
            IndexReply::Enclosing {
                definitions: index
                    .enclosing(&locations)
                    .into_iter()
                    .map(|d| d.map(short))
                    .collect(),
            }
        }
        IndexQuery::Implementations { name } => IndexReply::Implementations {
            entries: index
                .implementations(&name)
                .into_iter()
                .map(|mut e| {
                    if let Some((cut, _)) = e.signature.char_indices().nth(MAX_SIGNATURE_CHARS) {
                        e.signature.truncate(cut);
                        e.signature.push_str("...");
                    }
                    e
                })
                .collect(),
        },
        IndexQuery::Search { text, k } => {
            let k = k.min(MAX_SEARCH_RESULTS) as usize;
            // The first search of an index version builds its BM25 (seconds on a large
            // workspace): off the async worker thread where the runtime allows it.
            let found = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(|| index.search(&text, k))
                }
                _ => index.search(&text, k),
            };
            match found {
                Ok(hits) => IndexReply::Search { hits },
                Err(message) => IndexReply::Error { message },
            }
        }
    }
}
