//! The parent <-> worker protocol.
//!
//! # Transport
//!
//! The worker's stdin carries parent -> worker frames and its stdout carries worker -> parent
//! frames. First thing at start the worker duplicates fds 0 and 1 to new close-on-exec fds, points
//! fd 0 at `/dev/null` and fd 1 at fd 2 (its stderr, which the parent drains into the log), so
//! model code writing to fd 1 directly (`os.write(1, ...)`, C extensions, subprocesses) cannot
//! corrupt the protocol.
//!
//! # Frames
//!
//! ```text
//! +----------------------+------------------------------+
//! | length: u32 LE       | body: `length` bytes of JSON |
//! +----------------------+------------------------------+
//! ```
//!
//! The body is one [`ToWorker`] or [`FromWorker`] value, serde_json encoded, internally tagged by
//! `"type"` (for example `{"type":"exec","code":"print(1)"}`). A body larger than
//! [`MAX_FRAME_BYTES`] is refused by both the writer and the reader. The bulk (the workspace text)
//! never goes through the pipe: it is written once into a [`ContextBlob`](super::ContextBlob) file
//! the worker maps into memory; frames carry only code, captured output (bounded by
//! `ReplConfig::max_output_bytes`), prompts and answers.
//!
//! # Conversation
//!
//! ```text
//! parent                               worker
//! Init{blob, workdir, ..}      ->
//!                              <-      Ready{..}            (or Fatal{message} or
//!                                                            SandboxFailed{message}, then exit)
//! Exec{code}                   ->
//!                              <-      SubCallRequest{prompts}   (zero or more times; the worker
//! SubCallReply{results}        ->       blocks in Python until the reply)
//!                              <-      IndexRequest{query}  (zero or more times: symbols(),
//! IndexReply{reply}            ->       outline(), chunks, definitions(), callers(),
//!                                       implementations(), search(); answered from the
//!                                       parent's index)
//!                              <-      Done{..}
//! GetVar{name}                 ->
//!                              <-      Var{value}
//! Shutdown                     ->      (exits)
//! ```
//!
//! A `SubCallRequest` or `IndexRequest` may arrive while the parent waits for `Var` (model code
//! running inside `__str__`); the parent answers it with errors.
//!
//! `Exec` carries the index version at the start of the cell: the worker keeps `chunks` (fetched
//! in pages of at most [`CHUNK_PAGE`]) for as long as the version it was fetched under is the
//! current cell's.

use super::SandboxConfig;
use super::index::SearchHit;
use crate::index::{Chunk, DefKind, Definition, Implementation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::{self, Read};
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame body either side accepts (64 MiB).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// The most chunks one `IndexReply::Chunks` carries.
pub const CHUNK_PAGE: u64 = 20_000;

/// Messages from the parent to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// First message: where the workspace blob is, the private working directory, output limits.
    Init {
        blob: PathBuf,
        workdir: PathBuf,
        max_output_bytes: u64,
        /// What the worker confines itself to before model code runs.
        sandbox: SandboxConfig,
    },
    /// Run one cell. `index_version` is the parent index's version now (see `IndexQueries`).
    Exec {
        code: String,
        #[serde(default)]
        index_version: u64,
    },
    /// Answers to the last `SubCallRequest`, one per prompt, in order.
    SubCallReply { results: Vec<SubCallResult> },
    /// The answer to the last `IndexRequest`.
    IndexReply { reply: IndexReply },
    /// `str()` of a variable of the REPL namespace.
    GetVar { name: String },
    /// Exit now.
    Shutdown,
}

/// One sub-model answer, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubCallResult {
    Ok(String),
    Err(String),
}

/// Messages from the worker to the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// Python is up, `context` is bound, model code may run.
    Ready {
        python: String,
        files: u64,
        bytes: u64,
        /// The sandbox status line: `on: ...` or `off: ...`.
        sandbox: String,
    },
    /// Start-up failed; the worker exits after sending this.
    Fatal { message: String },
    /// The worker could not confine itself, so it will not run model code; it exits.
    SandboxFailed { message: String },
    /// Model code called `llm_query`/`llm_query_batched`, or, with `contexts`,
    /// `rlm_query`/`rlm_query_batched`: one child run per prompt, each over its context (a JSON
    /// context spec, or `None` for the parent's workspace).
    SubCallRequest {
        prompts: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contexts: Option<Vec<Option<String>>>,
    },
    /// Model code called `symbols()` or `outline()`, or used `chunks`.
    IndexRequest { query: IndexQuery },
    /// The cell finished (normally, by `FINAL`, or with an exception).
    Done(CellDone),
    /// Reply to `GetVar`: `None` when there is no such variable.
    Var { value: Option<String> },
}

/// A question to the parent's code index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case")]
pub enum IndexQuery {
    /// Definitions matching all the given filters; at most `limit` of them.
    Symbols {
        name: Option<String>,
        kind: Option<DefKind>,
        path: Option<String>,
        limit: u64,
    },
    /// The definitions of one file with their nesting depth.
    Outline { path: String },
    /// Chunks `offset..offset + limit` (at most [`CHUNK_PAGE`]) of the index's chunk list; the
    /// parent answers all pages of one cell from the same list.
    Chunks { offset: u64, limit: u64 },
    /// `definitions(name)`: definitions named exactly `name` (else ignoring case).
    Definitions { name: String },
    /// For each `(path, line)`, the innermost function or method holding it (`callers()`).
    Enclosing { locations: Vec<(String, u32)> },
    /// `implementations(name)`: the types implementing or extending `name`.
    Implementations { name: String },
    /// `search(query, k)`: the `k` best chunks by BM25 for the query `text`.
    Search { text: String, k: u64 },
}

/// The parent's answer to an [`IndexQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum IndexReply {
    /// `total` definitions matched; the first `limit` are in `definitions`.
    Symbols {
        total: u64,
        definitions: Vec<Definition>,
    },
    /// `(depth, definition)` in file order; depth 0 is top level.
    Outline {
        entries: Vec<(u32, Definition)>,
    },
    Chunks {
        total: u64,
        offset: u64,
        chunks: Vec<Chunk>,
    },
    Definitions {
        definitions: Vec<Definition>,
    },
    /// One entry per location asked, in order.
    Enclosing {
        definitions: Vec<Option<Definition>>,
    },
    Implementations {
        entries: Vec<Implementation>,
    },
    /// Best first.
    Search {
        hits: Vec<SearchHit>,
    },
    /// No index in this run, or the query could not be answered.
    Error {
        message: String,
    },
}

/// What the worker reports at the end of a cell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellDone {
    pub stdout: String,
    pub stderr: String,
    pub output_bytes: u64,
    pub final_answer: Option<String>,
    pub error: Option<String>,
    pub restored_helpers: Vec<String>,
    /// `(name, fingerprint at the cell's start)` of the variables the cell reads before it
    /// assigns them itself (helpers and modules not included), in first-read order.
    #[serde(default)]
    pub reads: Vec<(String, u64)>,
    /// `(name, fingerprint)` of every variable at the cell's end (not helpers, modules or names
    /// starting with `_`), sorted by name.
    #[serde(default)]
    pub namespace: Vec<(String, u64)>,
    /// Edits the cell proposed (`edit_replace`, `rename_symbol`, ...), in order.
    #[serde(default)]
    pub edits: Vec<EditOp>,
}

/// One change model code proposed to the workspace; nothing is written (`edits.py`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EditOp {
    /// Replace bytes `start..end` of `path`, as the run's snapshot holds it, with `text`.
    Replace {
        path: String,
        start: usize,
        end: usize,
        text: String,
    },
    /// A new file.
    Create { path: String, text: String },
    /// Move a file.
    Rename { from: String, to: String },
    /// Forget every edit proposed before (`discard_edits()`).
    Clear,
}

/// A frame could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("pipe to the REPL worker failed: {0}")]
    Io(#[from] io::Error),
    #[error(
        "frame of {len} bytes is larger than the limit of {max} bytes (a bigger value cannot cross \
         the worker pipe; print or return less)"
    )]
    TooLarge { len: usize, max: usize },
    #[error("the stream ended in the middle of a frame ({got} of {expected} bytes)")]
    Truncated { expected: usize, got: usize },
    #[error("malformed frame (not a valid protocol message): {0}")]
    Malformed(#[source] serde_json::Error),
}

/// Encodes `msg` as one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, msg).map_err(FrameError::Malformed)?;
    let len = buf.len() - 4;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(buf)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(body).map_err(FrameError::Malformed)
}

fn check_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(len)
}

/// Reads one frame from a blocking reader; `Ok(None)` on a clean end of stream between frames.
pub fn read_frame_sync<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; 4];
    let got = read_full_sync(r, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(FrameError::Truncated { expected: 4, got });
    }
    let len = check_len(header)?;
    let mut body = vec![0u8; len];
    let got = read_full_sync(r, &mut body)?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    decode(&body).map(Some)
}

/// Reads one frame from an async reader; `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(
    r: &mut R,
) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; 4];
    let got = read_full_async(r, &mut header).await?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(FrameError::Truncated { expected: 4, got });
    }
    let len = check_len(header)?;
    let mut body = vec![0u8; len];
    let got = read_full_async(r, &mut body).await?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    decode(&body).map(Some)
}

/// Fills `buf` unless the stream ends first; returns how many bytes were read.
fn read_full_sync<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

async fn read_full_async<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> Vec<ToWorker> {
        vec![
            ToWorker::Init {
                blob: "/tmp/x/context.bin".into(),
                workdir: "/tmp/w".into(),
                max_output_bytes: 1 << 20,
                sandbox: SandboxConfig::default(),
            },
            ToWorker::Exec {
                code: "print('héllo')\n\0".into(),
                index_version: 7,
            },
            ToWorker::IndexReply {
                reply: IndexReply::Error {
                    message: "no index".into(),
                },
            },
            ToWorker::SubCallReply {
                results: vec![
                    SubCallResult::Ok("a".into()),
                    SubCallResult::Err("boom".into()),
                ],
            },
            ToWorker::GetVar { name: "x".into() },
            ToWorker::Shutdown,
        ]
    }

    #[test]
    fn round_trip_sync_and_async() {
        let mut stream = Vec::new();
        for m in messages() {
            stream.extend(encode(&m).unwrap());
        }
        let done = FromWorker::Done(CellDone {
            stdout: "x\n".into(),
            output_bytes: 2,
            final_answer: Some("42".into()),
            restored_helpers: vec!["FINAL".into()],
            reads: vec![("hits".into(), u64::MAX), ("n".into(), 7)],
            namespace: vec![("hits".into(), u64::MAX), ("x".into(), 1 << 63)],
            ..CellDone::default()
        });
        let done_frame = encode(&done).unwrap();

        let mut r = stream.as_slice();
        let mut got = Vec::new();
        while let Some(m) = read_frame_sync::<_, ToWorker>(&mut r).unwrap() {
            got.push(m);
        }
        assert_eq!(got, messages());

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = stream.as_slice();
            let mut got = Vec::new();
            while let Some(m) = read_frame::<_, ToWorker>(&mut r).await.unwrap() {
                got.push(m);
            }
            assert_eq!(got, messages());
            let mut r = done_frame.as_slice();
            let back: FromWorker = read_frame(&mut r).await.unwrap().unwrap();
            assert_eq!(back, done);
        });
    }

    #[test]
    fn index_requests_and_replies_round_trip() {
        use crate::index::Language;
        let def = Definition {
            name: "parse".into(),
            kind: DefKind::Method,
            language: Language::Rust,
            path: "src/a.rs".into(),
            start_byte: 10,
            end_byte: 90,
            start_line: 2,
            end_line: 6,
            parent: Some("Parser".into()),
            signature: "fn parse(&self)".into(),
            detail: None,
        };
        let asks = [
            IndexQuery::Symbols {
                name: Some("parse".into()),
                kind: Some(DefKind::Method),
                path: None,
                limit: 10,
            },
            IndexQuery::Outline {
                path: "src/a.rs".into(),
            },
            IndexQuery::Chunks {
                offset: 0,
                limit: CHUNK_PAGE,
            },
            IndexQuery::Definitions {
                name: "Parser::parse".into(),
            },
            IndexQuery::Enclosing {
                locations: vec![("src/a.rs".into(), 3), ("src/b.rs".into(), 1)],
            },
            IndexQuery::Implementations {
                name: "Display".into(),
            },
            IndexQuery::Search {
                text: "parse the config".into(),
                k: 10,
            },
        ];
        for query in asks {
            let msg = FromWorker::IndexRequest { query };
            let frame = encode(&msg).unwrap();
            let back: FromWorker = read_frame_sync(&mut frame.as_slice()).unwrap().unwrap();
            assert_eq!(back, msg);
        }
        let replies = [
            IndexReply::Symbols {
                total: 3,
                definitions: vec![def.clone()],
            },
            IndexReply::Outline {
                entries: vec![(1, def.clone())],
            },
            IndexReply::Chunks {
                total: 0,
                offset: 0,
                chunks: vec![],
            },
            IndexReply::Definitions {
                definitions: vec![def.clone()],
            },
            IndexReply::Enclosing {
                definitions: vec![Some(def.clone()), None],
            },
            IndexReply::Implementations {
                entries: vec![Implementation {
                    type_name: "Parser".into(),
                    kind: DefKind::Impl,
                    language: Language::Rust,
                    path: "src/a.rs".into(),
                    start_line: 9,
                    end_line: 20,
                    signature: "impl Display for Parser {".into(),
                }],
            },
            IndexReply::Search {
                hits: vec![SearchHit {
                    chunk: Chunk {
                        path: "src/a.rs".into(),
                        kind: "method".into(),
                        name: Some("parse".into()),
                        parent: Some("Parser".into()),
                        language: Language::Rust,
                        start_byte: 10,
                        end_byte: 90,
                        start_line: 2,
                        end_line: 6,
                    },
                    score: 7.25,
                }],
            },
        ];
        for reply in replies {
            let msg = ToWorker::IndexReply { reply };
            let frame = encode(&msg).unwrap();
            let back: ToWorker = read_frame_sync(&mut frame.as_slice()).unwrap().unwrap();
            assert_eq!(back, msg);
        }
        // A `Done` from before `reads` and `namespace` existed still reads.
        let old: FromWorker = serde_json::from_str(
            r#"{"type":"done","stdout":"","stderr":"","output_bytes":0,"final_answer":null,"error":null,"restored_helpers":[]}"#,
        )
        .unwrap();
        assert_eq!(old, FromWorker::Done(CellDone::default()));
        // An `Exec` from before `index_version` existed still reads.
        let old: ToWorker = serde_json::from_str(r#"{"type":"exec","code":"1"}"#).unwrap();
        assert_eq!(
            old,
            ToWorker::Exec {
                code: "1".into(),
                index_version: 0
            }
        );
    }

    #[test]
    fn oversized_frame_is_refused_by_reader_and_writer() {
        let mut frame = ((MAX_FRAME_BYTES + 1) as u32).to_le_bytes().to_vec();
        frame.extend(b"{}");
        let err = read_frame_sync::<_, ToWorker>(&mut frame.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("larger than the limit"), "{err}");

        let huge = ToWorker::Exec {
            code: "x".repeat(MAX_FRAME_BYTES + 1),
            index_version: 0,
        };
        assert!(matches!(encode(&huge), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn truncated_and_malformed_frames() {
        let frame = encode(&ToWorker::Exec {
            code: "1".into(),
            index_version: 0,
        })
        .unwrap();
        // Cut in the body.
        let cut = &frame[..frame.len() - 3];
        let err = read_frame_sync::<_, ToWorker>(&mut &cut[..]).unwrap_err();
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
        // Cut in the header.
        let err = read_frame_sync::<_, ToWorker>(&mut &frame[..2]).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    expected: 4,
                    got: 2
                }
            ),
            "{err}"
        );
        // Clean end of stream.
        assert!(
            read_frame_sync::<_, ToWorker>(&mut &[][..])
                .unwrap()
                .is_none()
        );
        // Garbage body.
        let mut bad = 7u32.to_le_bytes().to_vec();
        bad.extend(b"garbage");
        let err = read_frame_sync::<_, ToWorker>(&mut bad.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::Malformed(_)), "{err}");
    }
}
