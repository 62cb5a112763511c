//! Snapshot tests: one fixture per language in `fixtures/index/`, rendered as an outline
//! (indentation by nesting: `kind name [start-end] parent=... detail=...`) followed by its chunks,
//! and compared with `fixtures/index/expected/<fixture>.txt`.
//!
//! Update the snapshots with `UPDATE_EXPECT=1 cargo test -p rlm-lsp --test index_outline`.

use expect_test::expect_file;
use rlm_lsp::index::{FileIndex, IndexOptions};
use std::fmt::Write;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index")
}

fn render(file: &FileIndex) -> String {
    let mut out = format!("language: {}\n", file.language());
    if let Some(reason) = file.degraded() {
        writeln!(out, "degraded: {reason}").ok();
    }
    if file.has_syntax_errors() {
        out.push_str("syntax errors\n");
    }
    out.push_str("\n## outline\n");
    for (depth, d) in file.outline() {
        write!(
            out,
            "{}{} {} [{}-{}]",
            "  ".repeat(depth),
            d.kind,
            d.name,
            d.start_line,
            d.end_line
        )
        .ok();
        if let Some(p) = &d.parent {
            write!(out, " parent={p}").ok();
        }
        if let Some(detail) = &d.detail {
            write!(out, " detail={detail}").ok();
        }
        writeln!(out, "  | {}", d.signature).ok();
    }
    out.push_str("\n## chunks\n");
    for c in file.chunks() {
        write!(out, "{} [{}-{}]", c.kind, c.start_line, c.end_line).ok();
        if let Some(n) = &c.name {
            write!(out, " {n}").ok();
        }
        if let Some(p) = &c.parent {
            write!(out, " parent={p}").ok();
        }
        out.push('\n');
    }
    out
}

fn check(fixture: &str) {
    let path = fixtures().join(fixture);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = FileIndex::new(fixture, &text, &IndexOptions::default());
    assert!(
        file.degraded().is_none(),
        "{fixture}: {:?}",
        file.degraded()
    );
    for d in file.definitions() {
        assert_eq!(d.path, fixture);
        assert_eq!(d.language, file.language());
        assert!(
            d.start_line <= d.end_line && d.start_byte < d.end_byte,
            "{d:?}"
        );
        assert_eq!(&text[d.start_byte..d.start_byte], "");
    }
    let expected = fixtures().join("expected").join(format!("{fixture}.txt"));
    expect_file![expected].assert_eq(&render(&file));
}

#[test]
fn rust() {
    check("sample.rs");
}

#[test]
fn python() {
    check("sample.py");
}

#[test]
fn javascript() {
    check("sample.js");
}

#[test]
fn typescript() {
    check("sample.ts");
}

#[test]
fn tsx() {
    check("sample.tsx");
}

#[test]
fn go() {
    check("sample.go");
}

#[test]
fn java() {
    check("sample.java");
}

#[test]
fn c() {
    check("sample.c");
}

#[test]
fn cpp() {
    check("sample.cpp");
}

#[test]
fn c_sharp() {
    check("sample.cs");
}

#[test]
fn ruby() {
    check("sample.rb");
}

#[test]
fn php() {
    check("sample.php");
}

#[test]
fn bash() {
    check("sample.sh");
}

#[test]
fn markdown() {
    check("sample.md");
}
