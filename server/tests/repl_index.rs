//! The REPL's code tools with the real worker: `grep` and `read` (Rust, in the worker, over the
//! mapped workspace) and `symbols`, `outline` and `chunks` (answered by the parent's index,
//! here a `StaticIndex` or a wrapper that counts and changes).

use futures::future::BoxFuture;
use rlm_lsp::index::{Chunk, DefKind, Definition, Language};
use rlm_lsp::repl::{
    CellOutput, ContextBlob, IndexQueries, Repl, ReplConfig, StaticIndex, SubCalls, SymbolQuery,
};
use rlm_lsp::workspace::{IndexStats, Snapshot, SourceFile};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLI_RS: &str = "\
use std::env;

/// Command-line arguments.
pub struct Args {
    pub port: u16,
}

impl Args {
    pub fn parse_args() -> Args {
        let port = env::var(\"PORT\").ok();
        Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
    }

    fn help() -> &'static str {
        \"usage: demo [--port N]\"
    }
}
";

const FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# Demo\nThe PORT is set in config.\nSee src/cli.rs.\n",
    ),
    (
        "config/server.toml",
        "[server]\nport = 8443\nhost = \"héllo wörld\"\n",
    ),
    ("src/cli.rs", CLI_RS),
    ("src/empty.rs", ""),
    ("web/app.py", "def main():\n    print('Héllo, PORT')\n"),
];

fn cfg() -> ReplConfig {
    ReplConfig {
        worker_exe: env!("CARGO_BIN_EXE_rlm-lsp").into(),
        cell_timeout: Duration::from_secs(60),
        max_output_bytes: 1 << 20,
        ..ReplConfig::default()
    }
}

fn blob() -> Arc<ContextBlob> {
    ContextBlob::write(&Snapshot {
        root: "/ws".into(),
        files: FILES
            .iter()
            .map(|(p, t)| SourceFile {
                path: p.to_string(),
                text: t.to_string().into(),
            })
            .collect(),
        stats: IndexStats::default(),
    })
    .unwrap()
}

/// Byte offset of the start of 1-based `line` in `text`.
fn line_start(text: &str, line: u32) -> usize {
    text.split_inclusive('\n')
        .take(line as usize - 1)
        .map(str::len)
        .sum()
}

fn def(name: &str, kind: DefKind, lines: (u32, u32), parent: Option<&str>) -> Definition {
    let start_byte = line_start(CLI_RS, lines.0);
    let end_byte = line_start(CLI_RS, lines.1 + 1) - 1;
    Definition {
        name: name.into(),
        kind,
        language: Language::Rust,
        path: "src/cli.rs".into(),
        start_byte,
        end_byte,
        start_line: lines.0,
        end_line: lines.1,
        parent: parent.map(Into::into),
        signature: CLI_RS[start_byte..].lines().next().unwrap().trim().into(),
        detail: None,
    }
}

fn chunk(d: &Definition) -> Chunk {
    Chunk {
        path: d.path.clone(),
        kind: d.kind.as_str().into(),
        name: Some(d.name.clone()),
        parent: d.parent.clone(),
        language: d.language,
        start_byte: d.start_byte,
        end_byte: d.end_byte,
        start_line: d.start_line,
        end_line: d.end_line,
    }
}

fn fake_index() -> StaticIndex {
    let defs = vec![
        def("Args", DefKind::Struct, (4, 6), None),
        def("Args", DefKind::Impl, (8, 17), None),
        def("parse_args", DefKind::Method, (9, 12), Some("Args")),
        def("help", DefKind::Method, (14, 16), Some("Args")),
    ];
    let mut chunks: Vec<Chunk> = defs.iter().skip(1).map(chunk).collect();
    chunks.push(Chunk {
        path: "README.md".into(),
        kind: "section".into(),
        name: Some("Demo".into()),
        parent: None,
        language: Language::Markdown,
        start_byte: 0,
        end_byte: FILES[0].1.len(),
        start_line: 1,
        end_line: 3,
    });
    StaticIndex::new(defs, chunks)
}

/// An index that counts chunk fetches and can change between cells.
struct LiveIndex {
    inner: Mutex<StaticIndex>,
    chunk_fetches: AtomicUsize,
}

impl LiveIndex {
    fn new(ix: StaticIndex) -> LiveIndex {
        LiveIndex {
            inner: Mutex::new(ix),
            chunk_fetches: AtomicUsize::new(0),
        }
    }
}

impl IndexQueries for LiveIndex {
    fn version(&self) -> u64 {
        self.inner.lock().unwrap().version
    }
    fn symbols(&self, q: &SymbolQuery) -> Vec<Definition> {
        self.inner.lock().unwrap().symbols(q)
    }
    fn outline(&self, path: &str) -> Vec<(u32, Definition)> {
        self.inner.lock().unwrap().outline(path)
    }
    fn chunks(&self) -> Arc<Vec<Chunk>> {
        self.chunk_fetches.fetch_add(1, Ordering::SeqCst);
        self.inner.lock().unwrap().chunks()
    }
}

struct NoSub;

impl SubCalls for NoSub {
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move {
            prompts
                .into_iter()
                .map(|p| Ok(format!("re: {p}")))
                .collect()
        })
    }
}

async fn run(repl: &mut Repl, index: Option<&dyn IndexQueries>, code: &str) -> CellOutput {
    repl.exec(code, &NoSub, index).await.unwrap()
}

/// Runs `code` and returns its stdout, failing on any error.
async fn ok(repl: &mut Repl, index: Option<&dyn IndexQueries>, code: &str) -> String {
    ok_with(repl, &NoSub, index, code).await
}

/// `ok` with sub-calls answered by `sub`.
async fn ok_with(
    repl: &mut Repl,
    sub: &dyn SubCalls,
    index: Option<&dyn IndexQueries>,
    code: &str,
) -> String {
    let out = repl.exec(code, sub, index).await.unwrap();
    assert_eq!(out.error, None, "cell failed: {code}\n{out:?}");
    assert!(!out.timed_out && out.worker_died.is_none(), "{out:?}");
    out.stdout
}

/// Runs `code`, which must fail; returns the last line of the traceback.
async fn fails(repl: &mut Repl, code: &str) -> String {
    let out = run(repl, None, code).await;
    let Some(err) = out.error.clone() else {
        panic!("expected an error: {code}\n{out:?}")
    };
    err.trim_end().lines().last().unwrap().to_string()
}

#[tokio::test]
async fn grep_literal_regex_case_and_paths() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    let got = ok(
        &mut repl,
        None,
        r#"
print(grep("port"))
print("--- ignore_case")
print(grep("port", ignore_case=True))
print("--- regex, tuples")
hits = grep(r"^\s*(pub )?fn \w+")
print(type(hits).__name__, isinstance(hits, list), hits[0])
for path, line, text in hits: print(path, line, repr(text))
print("--- paths")
print(grep("port", paths="src/"))
print(grep("PORT", paths=["*.py", "README.md"]))
print(grep("8443", paths=["config"]))
print("--- slices")
print(grep("port")[:2], type(grep("port")[1:]).__name__)
print("--- compiled re, no match")
import re
print(grep(re.compile("héllo", re.I)))
print(grep("nothing-like-this"))
"#,
    )
    .await;
    expect_test::expect![[r#"
        config/server.toml:2: port = 8443
        src/cli.rs:5: pub port: u16,
        src/cli.rs:10: let port = env::var("PORT").ok();
        src/cli.rs:11: Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
        src/cli.rs:15: "usage: demo [--port N]"
        --- ignore_case
        README.md:2: The PORT is set in config.
        config/server.toml:2: port = 8443
        src/cli.rs:5: pub port: u16,
        src/cli.rs:10: let port = env::var("PORT").ok();
        src/cli.rs:11: Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
        src/cli.rs:15: "usage: demo [--port N]"
        web/app.py:2: print('Héllo, PORT')
        --- regex, tuples
        _Hits True ('src/cli.rs', 9, '    pub fn parse_args() -> Args {')
        src/cli.rs 9 '    pub fn parse_args() -> Args {'
        src/cli.rs 14 "    fn help() -> &'static str {"
        --- paths
        src/cli.rs:5: pub port: u16,
        src/cli.rs:10: let port = env::var("PORT").ok();
        src/cli.rs:11: Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
        src/cli.rs:15: "usage: demo [--port N]"
        README.md:2: The PORT is set in config.
        web/app.py:2: print('Héllo, PORT')
        config/server.toml:2: port = 8443
        --- slices
        config/server.toml:2: port = 8443
        src/cli.rs:5: pub port: u16, _Hits
        --- compiled re, no match
        config/server.toml:3: host = "héllo wörld"
        web/app.py:2: print('Héllo, PORT')
        [] (no matches)
    "#]]
    .assert_eq(&got);
    repl.shutdown().await;
}

#[tokio::test]
async fn grep_limits_and_errors() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    let got = ok(
        &mut repl,
        None,
        r#"
hits = grep("e", max_results=2)
print(len(hits))
print(len(grep("e", max_results=None)), len(grep("e", max_results=0)))
"#,
    )
    .await;
    expect_test::expect![[r#"
        [grep: 12 lines match in all; only the first 2 are returned. Use a narrower pattern or paths=..., or pass max_results=...]
        2
        [grep: 12 lines match in all; only the first 0 are returned. Use a narrower pattern or paths=..., or pass max_results=...]
        12 0
    "#]]
    .assert_eq(&got);

    expect_test::expect![[r#"
        ValueError: invalid regular expression: regex parse error:
            fn (
               ^
        error: unclosed group"#]]
    .assert_eq(&{
        let out = run(&mut repl, None, "grep('fn (')").await;
        let err = out.error.unwrap();
        err[err.find("ValueError").unwrap()..]
            .trim_end()
            .to_string()
    });
    assert_eq!(
        fails(&mut repl, "grep('x', paths='cli.rs')").await,
        "ValueError: paths=['cli.rs'] match no file in context: \"cli.rs\" is not a file in \
         context: did you mean \"src/cli.rs\"?"
    );
    assert!(
        fails(&mut repl, "grep('x', paths=['nope/', '*.zig'])")
            .await
            .starts_with(
                "ValueError: paths=['nope/', '*.zig'] match no file in context: use paths"
            )
    );
    assert!(
        fails(&mut repl, "grep('a\\nb')")
            .await
            .contains("line break")
    );
    assert!(
        fails(&mut repl, "grep(3)")
            .await
            .starts_with("TypeError: grep() pattern must be a str")
    );
    assert!(
        fails(&mut repl, "grep('x', max_results=-1)")
            .await
            .starts_with("ValueError")
    );
    repl.shutdown().await;
}

#[tokio::test]
async fn read_numbers_lines_and_explains_bad_requests() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    let got = ok(
        &mut repl,
        None,
        r#"
print(read("src/cli.rs", 9, 12))
print("---")
print(read("config/server.toml"))
print("---")
print(read("src/cli.rs", 16, 99))
print("---")
print(read("src/cli.rs:10-11"))
print(repr(read("src/empty.rs")), type(read("README.md", 1, 1)).__name__)
"#,
    )
    .await;
    expect_test::expect![[r#"
           9|     pub fn parse_args() -> Args {
          10|         let port = env::var("PORT").ok();
          11|         Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
          12|     }
        ---
           1| [server]
           2| port = 8443
           3| host = "héllo wörld"
        ---
          16|     }
          17| }
        ---
          10|         let port = env::var("PORT").ok();
          11|         Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
         _Shown
    "#]]
    .assert_eq(&got);
    // A bare read(...) ending a cell prints its lines, not a quoted string.
    assert_eq!(
        ok(&mut repl, None, "read('README.md', 2, 2)").await,
        "   2| The PORT is set in config.\n"
    );
    assert_eq!(
        fails(&mut repl, "read('cli.rs')").await,
        "FileNotFoundError: \"cli.rs\" is not a file in context: did you mean \"src/cli.rs\"?"
    );
    assert_eq!(
        fails(&mut repl, "read('other/app.py')").await,
        "FileNotFoundError: \"other/app.py\" is not a file in context: did you mean \"web/app.py\"?"
    );
    assert_eq!(
        fails(&mut repl, "read('src/cli.rs', 30, 40)").await,
        "ValueError: read(\"src/cli.rs\", 30, 40): the file has only 17 lines"
    );
    assert_eq!(
        fails(&mut repl, "read('src/cli.rs', 0)").await,
        "ValueError: read(\"src/cli.rs\", 0): lines are numbered from 1"
    );
    assert_eq!(
        fails(&mut repl, "read('src/cli.rs', 5, 2)").await,
        "ValueError: read(\"src/cli.rs\", 5, 2): end_line 2 is before start_line 5"
    );
    assert_eq!(
        fails(&mut repl, "read('src/empty.rs', 1)").await,
        "ValueError: read(\"src/empty.rs\", 1): the file is empty"
    );
    repl.shutdown().await;
}

#[tokio::test]
async fn symbols_outline_and_chunks_come_from_the_parent_index() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    let ix = fake_index();
    let index: Option<&dyn IndexQueries> = Some(&ix);
    let got = ok(
        &mut repl,
        index,
        r#"
print(symbols("parse_args"))
d = symbols("Args.help")[0]
print(d.name, d.kind, d.path, d.start_line, d.end_line, d.parent, d.language, repr(d.signature))
print(d.text)
print(symbols(kind="struct"), symbols("args", kind="impl"))
print(symbols(path="src/"))
print(symbols("nothing"), len(symbols(max_results=1)))
print(outline("src/cli.rs"))
print(outline("README.md"))
print(len(chunks), chunks[0], chunks[-1].kind, [c.name for c in chunks[1:3]])
c = chunks[1]
print(c.path, c.kind, c.name, c.parent, c.start_line, c.end_line, c.language)
print(c.text)
print(sum(1 for c in chunks if c.language == "rust"), chunks[::2][1].name)
print(chunks)
"#,
    )
    .await;
    expect_test::expect![[r#"
        Definition(method parse_args in Args at src/cli.rs:9-12)
        help method src/cli.rs 14 16 Args rust "fn help() -> &'static str {"
            fn help() -> &'static str {
                "usage: demo [--port N]"
            }
        Definition(struct Args at src/cli.rs:4-6) Definition(impl Args at src/cli.rs:8-17)
        Definition(struct Args at src/cli.rs:4-6)
        Definition(impl Args at src/cli.rs:8-17)
        Definition(method parse_args in Args at src/cli.rs:9-12)
        Definition(method help in Args at src/cli.rs:14-16)
        [symbols: 4 definitions match in all; only the first 1 are returned. Narrow with name=, kind= or path=, or pass max_results=...]
        [] (no definitions found) 1
        src/cli.rs: 4 definitions
          4-6  struct Args
         8-17  impl Args
         9-12    method parse_args
        14-16    method help
        README.md: no definitions found
        4 Chunk(section Demo at README.md:1-3) method ['Args', 'parse_args']
        src/cli.rs impl Args None 8 17 rust
        impl Args {
            pub fn parse_args() -> Args {
                let port = env::var("PORT").ok();
                Args { port: port.map_or(8443, |p| p.parse().unwrap()) }
            }

            fn help() -> &'static str {
                "usage: demo [--port N]"
            }
        }
        3 parse_args
        <chunks: 4 pieces of code (definitions, sections, line ranges); each has .path .kind .name .parent .start_line .end_line .language .text>
    "#]]
    .assert_eq(&got);

    // Errors: unknown kind, unknown path, bad index.
    let out = run(&mut repl, index, "symbols(kind='widget')").await;
    assert!(
        out.error
            .unwrap()
            .contains("ValueError: unknown kind \"widget\"")
    );
    let out = run(&mut repl, index, "outline('cli.rs')").await;
    assert!(out.error.unwrap().contains("did you mean \"src/cli.rs\""));
    let out = run(&mut repl, index, "chunks[10]").await;
    assert!(
        out.error
            .unwrap()
            .contains("IndexError: chunks index 10 out of range: there are 4 chunks")
    );
    repl.shutdown().await;
}

#[tokio::test]
async fn without_an_index_the_tools_point_to_grep() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    for code in ["symbols('x')", "outline('src/cli.rs')", "len(chunks)"] {
        let err = fails(&mut repl, code).await;
        assert!(
            err.starts_with("RuntimeError: there is no code index in this run")
                && err.contains("use grep(pattern)"),
            "{code}: {err}"
        );
    }
    // grep and read still work, and so does the worker.
    assert_eq!(ok(&mut repl, None, "len(grep('port'))").await, "5\n");
    repl.shutdown().await;
}

#[tokio::test]
async fn chunks_are_fetched_once_per_index_version_and_in_pages() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    let live = LiveIndex::new(fake_index());
    let index: Option<&dyn IndexQueries> = Some(&live);
    assert_eq!(ok(&mut repl, index, "len(chunks)").await, "4\n");
    assert_eq!(
        ok(&mut repl, index, "len(chunks), chunks[0].name").await,
        "(4, 'Demo')\n"
    );
    assert_eq!(
        live.chunk_fetches.load(Ordering::SeqCst),
        1,
        "cached across cells"
    );

    // The index grows (more files indexed): the next cell sees the new chunks. 45,000 chunks
    // take three pages.
    {
        let mut ix = live.inner.lock().unwrap();
        let mut more: Vec<Chunk> = ix.chunks.as_ref().clone();
        more.extend((0..45_000u32).map(|i| Chunk {
            path: "web/app.py".into(),
            kind: "lines".into(),
            name: None,
            parent: None,
            language: Language::Python,
            start_byte: 0,
            end_byte: 10,
            start_line: i + 1,
            end_line: i + 1,
        }));
        ix.chunks = Arc::new(more);
        ix.version += 1;
    }
    let got = ok(
        &mut repl,
        index,
        "print(len(chunks), chunks[-1], repr(chunks[-1].text))\nprint(len([c for c in chunks if c.kind == 'lines']))",
    )
    .await;
    expect_test::expect![[r#"
        45004 Chunk(lines at web/app.py:45000-45000) 'def main()'
        45000
    "#]]
    .assert_eq(&got);
    assert_eq!(live.chunk_fetches.load(Ordering::SeqCst), 2);
    // A fresh worker (after a crash) fetches again.
    let out = run(&mut repl, index, "import os; os._exit(3)").await;
    assert!(out.worker_died.is_some());
    assert_eq!(ok(&mut repl, index, "len(chunks)").await, "45004\n");
    assert_eq!(live.chunk_fetches.load(Ordering::SeqCst), 3);

    // Threads of model code fetching at once (a new version again) neither deadlock nor mix.
    live.inner.lock().unwrap().version += 1;
    let got = ok(
        &mut repl,
        index,
        "import threading\nres = []\nts = [threading.Thread(target=lambda: res.append(len(chunks))) for _ in range(4)]\nfor t in ts: t.start()\nfor t in ts: t.join()\nprint(res)",
    )
    .await;
    assert_eq!(got, "[45004, 45004, 45004, 45004]\n");
    repl.shutdown().await;
}

#[tokio::test]
async fn code_tools_are_restored_when_overwritten() {
    let mut repl = Repl::start(cfg(), blob()).await.unwrap();
    let ix = fake_index();
    let index: Option<&dyn IndexQueries> = Some(&ix);
    let out = run(
        &mut repl,
        index,
        "grep = 1\nread = None\ndel symbols\noutline = print\nchunks = []",
    )
    .await;
    assert_eq!(out.error, None);
    assert_eq!(
        out.restored_helpers,
        ["grep", "read", "symbols", "outline", "chunks"]
    );
    assert_eq!(
        ok(
            &mut repl,
            index,
            "print(len(grep('port')), read('README.md', 1, 1), len(symbols('Args')), len(chunks))"
        )
        .await,
        "5    1| # Demo 2 4\n"
    );
    // SHOW_VARS does not list the tools.
    assert_eq!(
        ok(&mut repl, index, "SHOW_VARS()").await,
        "No variables defined yet (helpers such as context and llm_query are not listed).\n"
    );
    repl.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The structural helpers, on a small multi-language workspace indexed by the engine's index.

const SHAPES_RS: &str = "\
use std::fmt;

pub trait Shape {
    fn area(&self) -> f64;
}

pub struct Circle {
    pub r: f64,
}

impl Shape for Circle {
    fn area(&self) -> f64 {
        3.0 * self.r * self.r
    }
}

impl fmt::Display for Circle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, \"circle {}\", self.area())
    }
}

pub fn total_area(shapes: &[Box<dyn Shape>]) -> f64 {
    shapes.iter().map(|s| s.area()).sum()
}
";

const MAIN_RS: &str = "\
mod shapes;
use shapes::{Circle, Shape, total_area};

fn main() {
    let c = Circle { r: 2.0 };
    println!(\"{}\", c.area());
    let all: Vec<Box<dyn Shape>> = vec![Box::new(c)];
    println!(\"{}\", total_area(&all));
}
";

const GEOMETRY_PY: &str = "\
from abc import ABC, abstractmethod


class Shape(ABC):
    @abstractmethod
    def area(self):
        ...


class Square(Shape):
    def __init__(self, side):
        self.side = side

    def area(self):
        return self.side * self.side


def total_area(shapes):
    return sum(s.area() for s in shapes)


print(total_area([Square(2)]))
";

const SHAPES_TS: &str = "\
export interface Shape {
  area(): number;
}

export class Rect implements Shape {
  constructor(private w: number, private h: number) {}
  area(): number {
    return this.w * this.h;
  }
}

export function totalArea(shapes: Shape[]): number {
  return shapes.reduce((sum, s) => sum + s.area(), 0);
}
";

const SHAPES_GO: &str = "\
package shapes

type Shape interface {
\tArea() float64
}

type Tri struct{ b, h float64 }

func (t Tri) Area() float64 { return t.b * t.h / 2 }
";

const SHAPE_FILES: &[(&str, &str)] = &[
    ("README.md", "# Shapes\nEvery shape has an area.\n"),
    ("go/shapes.go", SHAPES_GO),
    ("py/geometry.py", GEOMETRY_PY),
    ("src/main.rs", MAIN_RS),
    ("src/shapes.rs", SHAPES_RS),
    ("web/shapes.ts", SHAPES_TS),
];

/// A workspace of `(path, text)` files: its blob and its (complete) tree-sitter index.
fn indexed(files: &[(&str, &str)]) -> (Arc<ContextBlob>, Arc<rlm_lsp::engine::LiveIndex>) {
    let snapshot = Arc::new(Snapshot {
        root: "/ws".into(),
        files: files
            .iter()
            .map(|(p, t)| SourceFile {
                path: p.to_string(),
                text: t.to_string().into(),
            })
            .collect(),
        stats: IndexStats::default(),
    });
    let blob = ContextBlob::write(&snapshot).unwrap();
    let index = rlm_lsp::engine::LiveIndex::spawn(snapshot, Default::default());
    assert!(index.wait(Duration::from_secs(60)));
    (blob, index)
}

/// The shapes workspace, indexed.
fn shapes() -> (Arc<ContextBlob>, Arc<rlm_lsp::engine::LiveIndex>) {
    indexed(SHAPE_FILES)
}

#[tokio::test]
async fn definitions_references_and_callers() {
    let (blob, live) = shapes();
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let index: Option<&dyn IndexQueries> = Some(&*live);
    let got = ok(
        &mut repl,
        index,
        r#"
print(definitions("total_area"))
print("--- case-insensitive, parent, none")
print(definitions("TOTAL_AREA"))
d = definitions("Square.area")
print(d, type(d[0]).__name__, d[0].kind, d[0].parent)
print(definitions("nothing_here"))
print("--- references")
r = references("total_area")
print(r)
print(r.total, r.files, len(r.definitions), r[0])
print(references("area", paths=["src/", "*.py"]))
print(references("nothing_here"))
print("--- callers")
c = callers("total_area")
print(c)
print(c.files, c.functions, c[0])
print(callers("area"))
print(callers("area", paths="web/").functions)
"#,
    )
    .await;
    expect_test::expect![[r#"
        py/geometry.py:18: def total_area(shapes):
        src/shapes.rs:23: pub fn total_area(shapes: &[Box<dyn Shape>]) -> f64 {
        --- case-insensitive, parent, none
        py/geometry.py:18: def total_area(shapes):
        src/shapes.rs:23: pub fn total_area(shapes: &[Box<dyn Shape>]) -> f64 {
        py/geometry.py:14: def area(self): Definition method Square
        [] (no definition of nothing_here)
        --- references
        3 references to total_area in 2 files (2 definition lines not counted):
        src/main.rs: 2 (lines 2, 8)
        py/geometry.py: 1 (lines 22)
        3 2 2 ('src/main.rs', [2, 8])
        4 references to area in 3 files (4 definition lines not counted):
        src/shapes.rs: 2 (lines 19, 24)
        py/geometry.py: 1 (lines 19)
        src/main.rs: 1 (lines 6)
        0 references to nothing_here in 0 files (0 definition lines not counted):
        --- callers
        2 calls to total_area in 2 files, from 1 functions:
        py/geometry.py:22: in <top level>: print(total_area([Square(2)]))
        src/main.rs:8: in main: println!("{}", total_area(&all));
        ['py/geometry.py', 'src/main.rs'] ['main'] ('py/geometry.py', 22, None)
        5 calls to area in 4 files, from 4 functions:
        py/geometry.py:19: in total_area: return sum(s.area() for s in shapes)
        src/main.rs:6: in main: println!("{}", c.area());
        src/shapes.rs:19: in Circle::fmt: write!(f, "circle {}", self.area())
        src/shapes.rs:24: in total_area: shapes.iter().map(|s| s.area()).sum()
        web/shapes.ts:13: in totalArea: return shapes.reduce((sum, s) => sum + s.area(), 0);
        ['totalArea']
    "#]]
    .assert_eq(&got);
    repl.shutdown().await;
}

#[tokio::test]
async fn implementations_files_matching_count_by_dir_and_search() {
    let (blob, live) = shapes();
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let index: Option<&dyn IndexQueries> = Some(&*live);
    let got = ok(
        &mut repl,
        index,
        r#"
impls = implementations("Shape")
print(impls)
print(impls.types, impls[0].type_name, impls[0].kind, impls[0].language, impls[0].end_line)
print(implementations("fmt::Display"))
print(implementations("Nothing"))
print("--- files_matching")
m = files_matching("area")
print(m)
print(m.total_lines, m[0])
print(files_matching(r"fn \w+", paths="src/"))
print(files_matching("AREA", ignore_case=True).total_lines, files_matching("zebra"))
print("--- count_by_dir")
print(count_by_dir("area"))
print("-")
print(count_by_dir(m, depth=2))
print("-")
print(count_by_dir(grep("area")) == count_by_dir("area"), count_by_dir(references("area")))
print("-")
print(count_by_dir(symbols(kind="function")), count_by_dir(["a/b/c.rs", "a/d.rs", "top.rs"], depth=2))
print(count_by_dir([]))
print(count_by_file("area"))
print(count_by_file(["a/b/c.rs", "a/d.rs", "a/d.rs"]))
print("--- search")
s = search("total area of the shapes", k=3)
print(s)
print(s[0].path, s[0].start_line, s[0].end_line, s[0].kind, s[0].name, round(s[0].score, 3) > 0)
print(s[0].text)
print(search("zebra"), len(search("area", k=0)))
"#,
    )
    .await;
    expect_test::expect![[r#"
        4 types implement Shape: Circle, Rect, Square, Tri
        go/shapes.go:7: Tri: type Tri struct{ b, h float64 }
        py/geometry.py:10: Square: class Square(Shape):
        src/shapes.rs:11: Circle: impl Shape for Circle {
        web/shapes.ts:5: Rect: export class Rect implements Shape {
        ['Circle', 'Rect', 'Square', 'Tri'] Tri struct go 7
        1 types implement fmt::Display: Circle
        src/shapes.rs:17: Circle: impl fmt::Display for Circle {
        [] (nothing implements or extends Nothing)
        --- files_matching
        5 files match 'area' (17 matching lines):
        README.md (1)
        py/geometry.py (5)
        src/main.rs (3)
        src/shapes.rs (5)
        web/shapes.ts (3)
        17 ('README.md', 1)
        2 files match 'fn \\w+' (5 matching lines):
        src/main.rs (1)
        src/shapes.rs (4)
        20 0 files match 'zebra' (0 matching lines):
        --- count_by_dir
        most: src/ (8)
        src/: 8
        py/: 5
        web/: 3
        ./: 1
        -
        (17 more in files above depth 2, in no directory 2 deep)
        -
        True most: src/ (3)
        src/: 3
        ./: 1
        py/: 1
        web/: 1
        -
        most: src/ (2)
        src/: 2
        py/: 1
        web/: 1 most: a/b/ (1)
        a/b/: 1
        (2 more in files above depth 2, in no directory 2 deep)
        [] (nothing to count)
        most (tied): py/geometry.py, src/shapes.rs (5)
        py/geometry.py: 5
        src/shapes.rs: 5
        src/main.rs: 3
        web/shapes.ts: 3
        README.md: 1
        most: a/d.rs (2)
        a/d.rs: 2
        a/b/c.rs: 1
        --- search
        1. py/geometry.py:18-19 function total_area (2.3)
        2. web/shapes.ts:12-14 function totalArea (2.1)
        3. src/shapes.rs:23-25 function total_area (2.1)
        py/geometry.py 18 19 function total_area True
        def total_area(shapes):
            return sum(s.area() for s in shapes)

        [] (no chunk matches 'zebra') 0
    "#]]
    .assert_eq(&got);
    let err = fails(&mut repl, "count_by_dir([3])").await;
    assert!(
        err.starts_with("TypeError: count_by_dir() counts paths"),
        "{err}"
    );
    repl.shutdown().await;
}

#[tokio::test]
async fn grep_helpers_work_without_an_index() {
    let (blob, _) = shapes();
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let got = ok(
        &mut repl,
        None,
        r#"
print(references("total_area"))
print(callers("total_area"))
print(files_matching("Shape"))
print(count_by_dir("Shape"))
"#,
    )
    .await;
    expect_test::expect![[r#"
        5 references to total_area in 3 files (0 definition lines not counted):
        py/geometry.py: 2 (lines 18, 22)
        src/main.rs: 2 (lines 2, 8)
        src/shapes.rs: 1 (lines 23)
        2 calls to total_area in 2 files, from 0 functions:
        py/geometry.py:22: in <top level>: print(total_area([Square(2)]))
        src/main.rs:8: in <top level>: println!("{}", total_area(&all));
        6 files match 'Shape' (12 matching lines):
        README.md (1)
        go/shapes.go (1)
        py/geometry.py (2)
        src/main.rs (2)
        src/shapes.rs (3)
        web/shapes.ts (3)
        most: src/ (5)
        src/: 5
        web/: 3
        py/: 2
        ./: 1
        go/: 1
    "#]]
    .assert_eq(&got);
    for code in ["definitions('x')", "implementations('x')", "search('x')"] {
        let err = fails(&mut repl, code).await;
        assert!(
            err.starts_with("RuntimeError: there is no code index in this run"),
            "{code}: {err}"
        );
    }
    repl.shutdown().await;
}

#[tokio::test]
async fn cells_report_what_they_read_and_the_namespace() {
    let (blob, live) = shapes();
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let index: Option<&dyn IndexQueries> = Some(&*live);
    let names = |v: &[(String, u64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();

    let first = run(
        &mut repl,
        index,
        "hits = grep('area')\nn = 3\nimport os\n_hidden = 1",
    )
    .await;
    assert_eq!(first.error, None);
    assert!(first.reads.is_empty(), "{:?}", first.reads);
    assert_eq!(names(&first.namespace), ["hits", "n"]);

    // Reads before assignment count; names assigned first in the cell, helpers, modules and
    // builtins do not.
    let code = "print(len(hits), n)\nm = n + 1\nprint(m, os.sep, len(grep('x')))";
    let second = run(&mut repl, index, code).await;
    assert_eq!(second.error, None);
    assert_eq!(names(&second.reads), ["hits", "n"]);
    assert_eq!(names(&second.namespace), ["hits", "m", "n"]);
    let fp = |v: &[(String, u64)], name: &str| v.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(fp(&second.reads, "hits"), fp(&first.namespace, "hits"));
    assert_eq!(fp(&second.namespace, "n"), fp(&first.namespace, "n"));

    // The same code again over unchanged variables reads the same; after a variable changed,
    // it does not.
    let again = run(&mut repl, index, code).await;
    assert_eq!(again.reads, second.reads);
    let changed = run(&mut repl, index, "hits = grep('Shape')").await;
    assert_ne!(
        fp(&changed.namespace, "hits"),
        fp(&second.namespace, "hits")
    );
    let after = run(&mut repl, index, code).await;
    assert_eq!(names(&after.reads), ["hits", "n"]);
    assert_ne!(after.reads, second.reads);
    assert_eq!(fp(&after.reads, "n"), fp(&second.reads, "n"));

    // x += 1 reads x; a name stored before it is read is not a read; a failing cell still
    // reports.
    let out = run(
        &mut repl,
        index,
        "n += 1\nhits = []\nprint(hits)\nundefined_name",
    )
    .await;
    assert!(out.error.is_some());
    assert_eq!(names(&out.reads), ["n"]);
    assert_eq!(names(&out.namespace), ["hits", "m", "n"]);
    // A syntax error reads nothing.
    let out = run(&mut repl, index, "print(n").await;
    assert!(out.error.is_some() && out.reads.is_empty());
    repl.shutdown().await;
}

/// Answers as a sub model would: a signature guess for the guessing prompt, a sentence on what
/// a function does (by what its code holds), and "yes" for the code that holds `%` (the planted
/// gcd), "no" for the rest. Records the prompts.
#[derive(Default)]
struct Reader {
    prompts: Mutex<Vec<String>>,
    /// Says yes to every candidate, as small models do.
    yes_to_all: bool,
}

impl SubCalls for Reader {
    fn batch(&self, prompts: Vec<String>) -> BoxFuture<'_, Vec<Result<String, String>>> {
        Box::pin(async move {
            self.prompts.lock().unwrap().extend(prompts.iter().cloned());
            prompts
                .iter()
                .map(|p| {
                    Ok(if p.contains("most likely signature") {
                        // As the 1.5B model writes it (recorded from a real run).
                        "```rust\nfn gcd(a: u64, b: u64) -> u64\n```".to_string()
                    } else if p.starts_with("In one sentence, what does this function do?") {
                        if p.contains(" % ") {
                            "It computes the greatest common divisor of two numbers by Euclid's algorithm."
                        } else if p.contains("parse") {
                            "It reads a port number from a string, 8080 when it is not one."
                        } else if p.contains("<<") {
                            "It packs two 32-bit integers into one 64-bit integer."
                        } else {
                            "It returns a flag of the pool."
                        }
                        .to_string()
                    } else if self.yes_to_all || p.contains(" % ") {
                        "Yes, it repeats remainders until one is zero.".to_string()
                    } else {
                        "No. It does something else.".to_string()
                    })
                })
                .collect()
        })
    }
}

/// A function whose name and comments say nothing of what it does: find_function narrows by
/// the signature the sub model guesses (two u64 in, one out) and asks it about each candidate.
#[tokio::test]
async fn find_function_reads_candidates_chosen_by_their_signature() {
    let lib = "\
pub fn step_7(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

pub fn parse_port(s: &str) -> u16 {
    s.parse().unwrap_or(8080)
}

pub fn widen(x: u32, y: u32) -> u64 {
    (x as u64) << 32 | y as u64
}
";
    let (blob, live) = indexed(&[("src/lib.rs", lib)]);
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let sub = Reader::default();
    let stdout = ok_with(&mut repl, &sub, Some(&*live), "found = find_function('computes the greatest common divisor of two integers', k=2)\nprint(found)\nprint(found.best.name)").await;
    expect_test::expect![[r#"
        best: step_7 at src/lib.rs:1 (the sub model says it does it; 2 candidates, ranked by how well what they do matches the description)
        src/lib.rs:1: step_7 [yes]: It computes the greatest common divisor of two numbers by Euclid's algorithm.
        src/lib.rs:14: widen [no]: It packs two 32-bit integers into one 64-bit integer.
        step_7
    "#]]
    .assert_eq(&stdout);
    let first = sub.prompts.lock().unwrap()[0].clone();
    assert!(first.contains("A rust function does this"), "{first}");
    // A sub model that says yes to everything: what it says each one does decides.
    let sub = Reader {
        yes_to_all: true,
        ..Reader::default()
    };
    let stdout = ok_with(&mut repl, &sub, Some(&*live), "found = find_function('computes the greatest common divisor of two integers', k=2)\nprint(found)\nprint(found.best.name)").await;
    expect_test::expect![[r#"
        best: step_7 at src/lib.rs:1 (the sub model says it does it; 2 candidates, ranked by how well what they do matches the description)
        src/lib.rs:1: step_7 [yes]: It computes the greatest common divisor of two numbers by Euclid's algorithm.
        src/lib.rs:14: widen [yes]: It packs two 32-bit integers into one 64-bit integer.
        step_7
    "#]]
    .assert_eq(&stdout);
    // The descriptions are asked for without the description searched for (a small model
    // shown it says yes), and only the closest candidates are asked yes or no.
    let prompts = sub.prompts.lock().unwrap().clone();
    let described: Vec<&String> = prompts
        .iter()
        .filter(|p| p.starts_with("In one sentence"))
        .collect();
    assert_eq!(described.len(), 2, "{prompts:?}");
    assert!(described.iter().all(|p| !p.contains("divisor")));
    repl.shutdown().await;
}

/// Facts a description states about the function's form ("a method", "takes 2 other
/// parameters", "returns nothing", "unsafe") are checked on signatures: only candidates that
/// fit them are read, and the sub model is asked about the behaviour alone.
#[tokio::test]
async fn find_function_checks_the_stated_facts_on_signatures() {
    let lib = "\
pub fn step_7(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

pub struct Pool;

impl Pool {
    pub fn reduce(&self, mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            let t = a % b;
            a = b;
            b = t;
        }
        a
    }

    pub(crate) unsafe fn push(&self, a: u64, b: u64) {
        let _ = a % b;
    }

    pub fn is_idle(&self) -> bool {
        true
    }

    fn is_busy(&self) -> bool {
        false
    }

    pub fn size(&self) -> usize {
        0
    }
}

/// Whether the pool can take work.
#[inline]
pub fn is_ready(pool: &Pool) -> bool {
    pool.is_idle()
}

fn is_stuck(pool: &Pool) -> bool {
    !pool.is_idle()
}
";
    let (blob, live) = indexed(&[("src/lib.rs", lib)]);
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let sub = Reader {
        yes_to_all: true,
        ..Reader::default()
    };
    let stdout = ok_with(&mut repl, &sub, Some(&*live), "found = find_function('Computes the greatest common divisor. Facts about it: it is a method (it takes self); it takes 2 other parameters; it returns a value.', k=3)\nprint(found.best.name)\nprint(sorted(c.name for c in found))").await;
    expect_test::expect![[r#"
        reduce
        ['reduce']
    "#]]
    .assert_eq(&stdout);
    let prompts = sub.prompts.lock().unwrap().clone();
    let asked: Vec<&String> = prompts
        .iter()
        .filter(|p| p.starts_with("Does this"))
        .collect();
    assert!(
        asked
            .iter()
            .all(|p| p.starts_with("Does this function Computes the greatest common divisor?")),
        "{asked:?}"
    );
    // "Returns true or false", "public": a `pub` function returning `bool`, among the word
    // search's results (chunks, matched to their definitions).
    let stdout = ok_with(&mut repl, &sub, Some(&*live), "found = find_function('Whether the pool is ready or stuck. Facts about it: it is a free function; it is public; it takes one parameter; it returns true or false.', k=3)\nprint(sorted(c.name for c in found))\nprint(sorted(r.name for r in search('Whether the pool is ready or stuck', k=2)))").await;
    assert_eq!(stdout, "['is_ready']\n['is_ready', 'is_stuck']\n");
    // The sub model reads a candidate with its doc comment and attributes.
    let prompts = sub.prompts.lock().unwrap().clone();
    assert!(
        prompts.iter().any(|p| p.starts_with("In one sentence")
            && p.contains("/// Whether the pool can take work.\n#[inline]\npub fn is_ready")),
        "{prompts:?}"
    );
    repl.shutdown().await;
}

/// `rename_symbol` renames code: not prose in comments, strings or a LICENSE, and in Rust not
/// the fields that share a method's name (`x.terminate` unread as a call, `terminate: latch`);
/// mentions written as code in comments are renamed. Modelled on rayon-core's
/// `Registry::terminate`, whose rename over-edited the `terminate` latch field.
#[tokio::test]
async fn rename_symbol_renames_code_not_prose_or_fields() {
    let registry = "\
pub struct ThreadInfo {
    terminate: Latch,
}

impl Registry {
    /// Decrements the count; see [`Registry::terminate`] and `terminate()`.
    pub fn terminate(&self) {
        // If we return early, make sure to terminate the threads.
        for info in &self.infos {
            info.terminate.set();
        }
        log(\"terminate called\");
    }

    fn new() -> ThreadInfo {
        ThreadInfo { terminate: Latch::new() }
    }
}

fn stop(r: &Registry) {
    r.terminate();
    Registry::terminate(r);
    let f = Registry::terminate;
}
";
    let (blob, live) = indexed(&[
        ("LICENSE", "the licenses shall terminate\n"),
        ("src/registry.rs", registry),
    ]);
    let mut repl = Repl::start(cfg(), blob).await.unwrap();
    let stdout = ok_with(
        &mut repl,
        &Reader::default(),
        Some(&*live),
        "print(rename_symbol('terminate', 'shut_down'))\nprint(proposed_edits())",
    )
    .await;
    expect_test::expect![[r#"
        6 edits in 1 file: src/registry.rs (6)
        6 proposed edits:
        src/registry.rs:6: 'terminate' -> 'shut_down'
        src/registry.rs:6: 'terminate' -> 'shut_down'
        src/registry.rs:7: 'terminate' -> 'shut_down'
        src/registry.rs:21: 'terminate' -> 'shut_down'
        src/registry.rs:22: 'terminate' -> 'shut_down'
        src/registry.rs:23: 'terminate' -> 'shut_down'
    "#]]
    .assert_eq(&stdout);
    repl.shutdown().await;
}
