//! Properties of the index: every line in exactly one chunk, large definitions split, bounded
//! parsing on bad input, incremental updates equal to fresh parses, `symbols()` matching, and
//! versions sharing unchanged files.

use rlm_lsp::index::{
    ChunkOptions, DefKind, Degradation, FileIndex, IndexOptions, Language, TextEdit, WorkspaceIndex,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index")
}

fn fixture_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures()).unwrap_or_else(|e| panic!("fixtures: {e}")) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_owned();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push((name, text));
        }
    }
    out.sort();
    assert!(out.len() >= 14, "fixtures missing: {}", out.len());
    out
}

/// Real code from this repository: the server's own sources.
fn repo_sources() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, text));
            }
        }
    }
    out
}

/// Number of lines as the index counts them (a final newline does not start a line).
fn line_count(text: &str) -> u32 {
    text.split_inclusive('\n').count() as u32
}

/// Every line in exactly one chunk, in order, with byte ranges matching the lines.
fn assert_covered(file: &FileIndex, text: &str) {
    let chunks = file.chunks();
    assert_eq!(chunks.len(), file.chunk_count());
    let n = line_count(text);
    assert_eq!(file.line_count(), n, "{}", file.path());
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut next = 1;
    for c in &chunks {
        assert_eq!(c.path, file.path());
        assert_eq!(
            c.start_line,
            next,
            "{}: gap or overlap at {c:?}",
            file.path()
        );
        assert!(c.end_line >= c.start_line, "{c:?}");
        assert_eq!(c.start_byte, starts[c.start_line as usize - 1], "{c:?}");
        let end = starts
            .get(c.end_line as usize)
            .copied()
            .unwrap_or(text.len());
        assert_eq!(c.end_byte, end, "{c:?}");
        next = c.end_line + 1;
    }
    assert_eq!(next, n + 1, "{}: lines after the last chunk", file.path());
}

#[test]
fn every_line_is_in_exactly_one_chunk() {
    let mut files = fixture_files();
    files.extend(repo_sources());
    files.push(("empty.rs".into(), String::new()));
    files.push(("blank.py".into(), "\n\n\n".into()));
    files.push(("no_newline.go".into(), "package a\nfunc f() {}".into()));
    files.push((
        "crlf.c".into(),
        "int a;\r\nint f(void) {\r\n  return 1;\r\n}\r\n".into(),
    ));
    files.push(("notes.txt".into(), "x\n".repeat(1234)));
    files.push(("top.md".into(), "# A\n\n# B\n".into()));
    for (path, text) in &files {
        let file = FileIndex::new(path, text, &IndexOptions::default());
        assert_covered(&file, text);
    }
    // The same with small chunk sizes, which splits a lot more.
    let tiny = IndexOptions {
        chunks: ChunkOptions {
            max_lines: 7,
            max_bytes: 300,
            window_lines: 5,
        },
        ..IndexOptions::default()
    };
    for (path, text) in &files {
        let file = FileIndex::new(path, text, &tiny);
        assert_covered(&file, text);
    }
}

#[test]
fn large_definitions_are_split_into_pieces_named_after_them() {
    // A 400-line function: pieces of at most 150 lines, named after it.
    let body: String = (0..400).map(|i| format!("    let x{i} = {i};\n")).collect();
    let text = format!("use std::fmt;\n\nfn big() {{\n{body}}}\n\nfn small() {{}}\n");
    let file = FileIndex::new("big.rs", &text, &IndexOptions::default());
    assert_covered(&file, &text);
    let chunks = file.chunks();
    let pieces: Vec<_> = chunks
        .iter()
        .filter(|c| c.name.as_deref() == Some("big"))
        .collect();
    assert_eq!(pieces.len(), 3, "{pieces:?}");
    for p in &pieces {
        assert_eq!(p.kind, "function");
        assert_eq!(p.parent.as_deref(), Some("big"));
        assert!(p.end_line - p.start_line < 150);
        assert!(p.end_byte - p.start_byte <= 8 * 1024);
    }
    let small = chunks.iter().find(|c| c.name.as_deref() == Some("small"));
    assert_eq!(
        small.map(|c| (c.kind.as_str(), c.parent.as_deref())),
        Some(("function", None))
    );

    // A large class: each method its own chunk, a large method split, the rest pieces of the class.
    let mut py = String::from("import os\n\nclass Big:\n    X = 1\n\n");
    for m in 0..30 {
        py.push_str(&format!("    def m{m}(self):\n        return {m}\n\n"));
    }
    py.push_str("    def huge(self):\n");
    for i in 0..200 {
        py.push_str(&format!("        y{i} = {i}\n"));
    }
    py.push_str("\n    Z = 2\n");
    let file = FileIndex::new("big.py", &py, &IndexOptions::default());
    assert_covered(&file, &py);
    let chunks = file.chunks();
    let methods = chunks
        .iter()
        .filter(|c| c.kind == "method" && c.parent.as_deref() == Some("Big"));
    assert_eq!(methods.count(), 30);
    let huge = chunks
        .iter()
        .filter(|c| c.name.as_deref() == Some("huge"))
        .collect::<Vec<_>>();
    assert_eq!(huge.len(), 2, "{huge:?}");
    assert!(huge.iter().all(|c| c.parent.as_deref() == Some("huge")));
    let class_pieces: Vec<_> = chunks
        .iter()
        .filter(|c| c.name.as_deref() == Some("Big"))
        .collect();
    assert!(!class_pieces.is_empty());
    assert!(
        class_pieces
            .iter()
            .all(|c| c.kind == "class" && c.parent.as_deref() == Some("Big"))
    );
    assert!(
        chunks.iter().all(|c| c.end_line - c.start_line < 150),
        "no huge chunk"
    );

    // A large Markdown section.
    let md = format!("# Title\n{}", "text\n".repeat(500));
    let file = FileIndex::new("doc.md", &md, &IndexOptions::default());
    assert_covered(&file, &md);
    assert!(file.chunks().len() >= 4);
    assert!(
        file.chunks()
            .into_iter()
            .all(|c| c.kind == "section" && c.name.as_deref() == Some("Title"))
    );
}

#[test]
fn too_large_or_slow_files_degrade_to_line_chunks() {
    let opts = IndexOptions {
        max_parse_bytes: 1000,
        ..IndexOptions::default()
    };
    let text = "fn f() {}\n".repeat(200);
    let file = FileIndex::new("big.rs", &text, &opts);
    assert_eq!(
        file.degraded(),
        Some(&Degradation::TooLarge {
            bytes: 2000,
            cap: 1000
        })
    );
    assert!(file.definitions().is_empty());
    assert!(file.chunks().into_iter().all(|c| c.kind == "lines"));
    assert_covered(&file, &text);

    // A parse that cannot finish within its deadline.
    let text = "fn f() { let x = 1; }\n".repeat(100_000);
    let opts = IndexOptions {
        parse_timeout: Duration::from_millis(1),
        ..IndexOptions::default()
    };
    let start = Instant::now();
    let file = FileIndex::new("slow.rs", &text, &opts);
    assert!(
        matches!(
            file.degraded(),
            Some(Degradation::ParseTimeout { .. } | Degradation::QueryTimeout { .. })
        ),
        "{:?}",
        file.degraded()
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_covered(&file, &text);

    // A minified single line is one chunk, whatever its size.
    let line = "var a=function(){return 1};".repeat(40_000);
    let file = FileIndex::new("min.js", &line, &IndexOptions::default());
    assert_eq!(file.chunks().len(), 1);
    assert_covered(&file, &line);
    let big_line = "x".repeat(6 * 1024 * 1024);
    let file = FileIndex::new("min2.js", &big_line, &IndexOptions::default());
    assert!(matches!(
        file.degraded(),
        Some(Degradation::TooLarge { .. })
    ));
    assert_eq!(file.chunks().len(), 1);
}

#[test]
fn deep_nesting_and_garbage_never_crash() {
    let deep = 50_000;
    let mut inputs: Vec<(&str, String)> = vec![
        ("deep.rs", format!("fn f() {{ {} }}\n", "(".repeat(deep))),
        (
            "deep2.rs",
            format!("fn f() {}{}\n", "{".repeat(deep), "}".repeat(deep)),
        ),
        ("deep.js", format!("const a = {};\n", "[".repeat(deep))),
        ("deep.py", format!("x = {}\n", "(".repeat(deep))),
        (
            "deep.json.ts",
            format!("let a = {}1{};\n", "{a:".repeat(deep), "}".repeat(deep)),
        ),
        ("deep.c", format!("int f() {{ {} }}\n", "{".repeat(deep))),
        ("deep.rb", "class A\n".repeat(3000) + &"end\n".repeat(3000)),
    ];
    // Nested Python classes, each indented one more level.
    let mut nested = String::new();
    for i in 0..300 {
        nested.push_str(&format!("{}class C{i}:\n", " ".repeat(i)));
    }
    nested.push_str(&format!("{}pass\n", " ".repeat(300)));
    inputs.push(("nested.py", nested));
    // Garbage: binary-ish bytes, invalid UTF-8 replaced, NULs, unbalanced everything.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = Vec::new();
    for _ in 0..200_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bytes.push((seed >> 24) as u8);
    }
    let garbage = String::from_utf8_lossy(&bytes).into_owned();
    let exts = [
        "rs", "py", "js", "ts", "tsx", "go", "java", "c", "h", "cpp", "rb", "cs", "php", "sh",
        "md", "txt",
    ];
    for ext in exts {
        inputs.push((
            Box::leak(format!("garbage.{ext}").into_boxed_str()),
            garbage.clone(),
        ));
        let nul = format!(
            "\0\0fn class def {{ \0 }} <?php \u{feff} \"\\\n{}",
            "\0".repeat(100)
        );
        inputs.push((Box::leak(format!("nul.{ext}").into_boxed_str()), nul));
    }
    for (path, text) in &inputs {
        let start = Instant::now();
        let file = FileIndex::new(path, text, &IndexOptions::default());
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            start.elapsed()
        );
        assert_covered(&file, text);
    }
}

/// A tiny deterministic PRNG (xorshift) for random edits.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn char_floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn same_index(a: &FileIndex, b: &FileIndex, context: &str) {
    assert_eq!(a.definitions(), b.definitions(), "{context}");
    assert_eq!(a.outline(), b.outline(), "{context}");
    assert_eq!(a.chunks(), b.chunks(), "{context}");
    assert_eq!(a.degraded(), b.degraded(), "{context}");
    assert_eq!(a.has_syntax_errors(), b.has_syntax_errors(), "{context}");
}

#[test]
fn incremental_updates_equal_fresh_parses() {
    let snippets = [
        "fn inserted() {}\n",
        "class X:\n  pass\n",
        "}",
        "{",
        "\n\n",
        "/* comment */",
        "é",
        "def f(x):\n    return x\n",
        "namespace n { void g(); }\n",
        "    def m(self):\n        pass\n",
        "impl Foo for Bar { fn x(&self) {} }\n",
        "class Y { void z() {} }\n",
        "@decorator\n",
        "export ",
        "\"",
        "x",
        "// c\n",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut updates, mut recovered_differently) = (0, 0);
    let mut files = fixture_files();
    // And the largest of this crate's own sources.
    let mut repo = repo_sources();
    repo.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    files.extend(repo.into_iter().take(3));
    for (path, text) in files {
        let opts = IndexOptions::default();
        let mut index =
            WorkspaceIndex::build_files(&[(path.as_str(), text.as_str())], opts.clone());
        let mut current = text.clone();
        for step in 0..40 {
            let start = char_floor(&current, rng.below(current.len() + 1));
            let len = if step % 5 == 4 {
                rng.below(400)
            } else {
                rng.below(40)
            };
            let end = char_floor(&current, (start + len).min(current.len()));
            let insert = if step % 3 == 0 {
                ""
            } else {
                snippets[rng.below(snippets.len())]
            };
            let mut next = String::with_capacity(current.len() + insert.len());
            next.push_str(&current[..start]);
            next.push_str(insert);
            next.push_str(&current[end..]);
            // Alternate between giving the edit range and letting the index find it.
            let edit = (step % 2 == 0).then_some(TextEdit {
                start_byte: start,
                old_end_byte: end,
                new_end_byte: start + insert.len(),
            });
            index = index.update_file(&path, &next, edit);
            current = next;
            let updated = index
                .file(&path)
                .cloned()
                .unwrap_or_else(|| panic!("{path} missing"));
            if step > 0 && updated.language().has_grammar() {
                assert!(updated.was_incremental(), "{path} step {step}");
            }
            assert_eq!(updated.text(), Some(current.as_str()));
            let fresh = FileIndex::new(&path, &current, &opts);
            // On broken code tree-sitter's error recovery depends on the previous tree, so an
            // incremental parse may legitimately differ from a fresh one (the unit test
            // `incremental_extraction_equals_full_extraction_of_the_same_tree` checks the exact
            // property). Clean code must match exactly.
            let same = updated.definitions() == fresh.definitions()
                && updated.outline() == fresh.outline()
                && updated.chunks() == fresh.chunks();
            if !same && fresh.has_syntax_errors() {
                recovered_differently += 1;
            } else {
                same_index(&updated, &fresh, &format!("{path} step {step}"));
            }
            updates += 1;
            assert_covered(&updated, &current);
        }
        // A wrong edit range is detected and replaced by the real difference.
        let next = format!("{current}\nfn tail() {{}}\n");
        let wrong = TextEdit {
            start_byte: 0,
            old_end_byte: 1,
            new_end_byte: 1,
        };
        index = index.update_file(&path, &next, Some(wrong));
        let fresh = FileIndex::new(&path, &next, &opts);
        same_index(
            index.file(&path).map(|f| &**f).unwrap_or(&fresh),
            &fresh,
            &path,
        );
    }
    assert!(
        recovered_differently * 50 <= updates,
        "{recovered_differently} of {updates}"
    );
}

#[test]
fn versions_share_unchanged_files_and_keep_their_view() {
    let files = fixture_files();
    let v1 = Arc::new(WorkspaceIndex::build_files(&files, IndexOptions::default()));
    assert_eq!(v1.len(), files.len());
    let v2 = v1.update_file("sample.rs", "fn only() {}\n", None);
    assert_eq!(v2.version(), v1.version() + 1);
    for (a, b) in v1.files().iter().zip(v2.files()) {
        assert_eq!(a.path(), b.path());
        assert_eq!(Arc::ptr_eq(a, b), a.path() != "sample.rs", "{}", a.path());
    }
    // The old version still answers from the old text.
    assert!(v1.symbols(Some("Point"), None, Some("sample.rs")).len() >= 2);
    assert!(
        v2.symbols(Some("Point"), None, Some("sample.rs"))
            .is_empty()
    );
    assert_eq!(v2.outline("sample.rs").len(), 1);
    // New files, removal, re-reading from disk.
    let v3 = v2.update_file("new/file.go", "package x\nfunc F() {}\n", None);
    assert_eq!(v3.len(), files.len() + 1);
    assert_eq!(
        v3.symbols(Some("F"), Some(DefKind::Function), Some("new"))
            .len(),
        1
    );
    let v4 = v3.remove_file("new/file.go");
    assert_eq!(v4.len(), files.len());
    let v5 = v4
        .reload_file("sample.rs", &fixtures().join("sample.rs"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v5.chunks_for("sample.rs"), v1.chunks_for("sample.rs"));
    let v6 = v5
        .reload_file("sample.rs", Path::new("/nonexistent/rlm-lsp/sample.rs"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(v6.file("sample.rs").is_none());
    // Extending with more files merges by path.
    let v7 = v6.extend(&[
        ("sample.rs", "struct Back;\n"),
        ("zz.py", "def z(): pass\n"),
    ]);
    assert_eq!(v7.len(), files.len() + 1);
    assert_eq!(v7.symbols(Some("Back"), None, None).len(), 1);
    let paths: Vec<&str> = v7.files().iter().map(|f| f.path()).collect();
    assert!(paths.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn statistics_by_language() {
    let files = fixture_files();
    let index = WorkspaceIndex::build_files(&files, IndexOptions::default());
    let stats = index.statistics();
    assert_eq!(stats.files, files.len());
    assert!(stats.degraded.is_empty());
    for lang in [
        Language::Rust,
        Language::Python,
        Language::Javascript,
        Language::Typescript,
        Language::Tsx,
        Language::Go,
        Language::Java,
        Language::C,
        Language::Cpp,
        Language::Ruby,
        Language::CSharp,
        Language::Php,
        Language::Bash,
    ] {
        let l = &stats.languages[&lang];
        assert_eq!(l.files, 1, "{lang}");
        assert!(l.definitions > 0, "{lang}");
        assert_eq!(l.kinds.values().sum::<usize>(), l.definitions, "{lang}");
    }
    assert_eq!(stats.languages[&Language::Markdown].definitions, 0);
    let json = serde_json::to_value(&stats).unwrap_or_default();
    assert!(
        json["languages"]["rust"]["files"].as_u64() == Some(1),
        "{json}"
    );
    assert!(
        json["languages"]["c_sharp"]["kinds"]["method"].as_u64() > Some(3),
        "{json}"
    );
    assert!(
        json["languages"]["tsx"]["definitions"].as_u64() > Some(0),
        "{json}"
    );
}

#[test]
fn symbols_match_exact_then_prefix_then_case_insensitive() {
    let files = [
        (
            "a.rs",
            "fn parse() {}\nfn parse_file() {}\nstruct Parser;\nimpl Parser { fn parse(&self) {} }\n",
        ),
        (
            "b.py",
            "def Parse():\n    pass\n\ndef reparse():\n    pass\n\nclass Tokenizer:\n    def parse(self):\n        pass\n",
        ),
        ("src/c.go", "package c\nfunc ParseAll() {}\n"),
    ];
    let index = WorkspaceIndex::build_files(&files, IndexOptions::default());
    let names = |defs: Vec<&rlm_lsp::index::Definition>| {
        defs.iter()
            .map(|d| format!("{}:{}:{}", d.path, d.kind, d.name))
            .collect::<Vec<_>>()
    };
    // Exact matches only, when there are any.
    assert_eq!(
        names(index.symbols(Some("parse"), None, None)),
        [
            "a.rs:function:parse",
            "a.rs:method:parse",
            "b.py:method:parse"
        ]
    );
    // Kind and path filters.
    assert_eq!(
        names(index.symbols(Some("parse"), Some(DefKind::Method), Some("b.py"))),
        ["b.py:method:parse"]
    );
    // Prefix, when nothing is exact.
    assert_eq!(
        names(index.symbols(Some("parse_"), None, None)),
        ["a.rs:function:parse_file"]
    );
    assert_eq!(
        names(index.symbols(Some("Pars"), None, None)),
        [
            "a.rs:struct:Parser",
            "a.rs:impl:Parser",
            "b.py:function:Parse",
            "src/c.go:function:ParseAll"
        ]
    );
    // Case-insensitive: equal, then prefix, then substring.
    assert_eq!(
        names(index.symbols(Some("PARSE"), Some(DefKind::Function), None)),
        [
            "a.rs:function:parse",
            "b.py:function:Parse",
            "a.rs:function:parse_file",
            "src/c.go:function:ParseAll",
            "b.py:function:reparse"
        ]
    );
    // Qualified names: parent and member.
    assert_eq!(
        names(index.symbols(Some("Tokenizer.parse"), None, None)),
        ["b.py:method:parse"]
    );
    assert_eq!(
        names(index.symbols(Some("Parser::parse"), None, None)),
        ["a.rs:method:parse"]
    );
    // Directory filter and no name: everything there.
    assert_eq!(
        names(index.symbols(None, None, Some("src/"))),
        ["src/c.go:function:ParseAll"]
    );
    assert!(index.symbols(Some("nothing"), None, None).is_empty());
    // Outline depths.
    let outline: Vec<(usize, String)> = index
        .outline("b.py")
        .into_iter()
        .map(|(d, def)| (d, def.name.clone()))
        .collect();
    assert_eq!(
        outline,
        [
            (0, "Parse".to_owned()),
            (0, "reparse".to_owned()),
            (0, "Tokenizer".to_owned()),
            (1, "parse".to_owned())
        ]
    );
    assert_eq!(index.chunks().count(), index.chunk_count());
}

#[test]
fn scoped_search_finds_what_the_exhaustive_query_finds() {
    // No time bound: on a loaded machine a debug build's exhaustive pass over a large file can
    // pass 500 ms and degrade to line chunks, which is not what this test is about.
    let scoped_opts = IndexOptions {
        parse_timeout: Duration::from_secs(600),
        ..IndexOptions::default()
    };
    let exhaustive = IndexOptions {
        exhaustive: true,
        ..scoped_opts.clone()
    };
    // The fixtures hold no definitions nested in expressions: both searches agree exactly.
    for (path, text) in fixture_files() {
        let scoped = FileIndex::new(&path, &text, &scoped_opts);
        let all = FileIndex::new(&path, &text, &exhaustive);
        assert_eq!(scoped.definitions(), all.definitions(), "{path}");
    }
    // Real code: the scoped search may miss a definition inside an expression (a `macro_rules!`
    // in a closure), but hardly ever.
    let (mut scoped, mut all) = (0, 0);
    for (path, text) in repo_sources() {
        scoped += FileIndex::new(&path, &text, &scoped_opts)
            .definitions()
            .len();
        all += FileIndex::new(&path, &text, &exhaustive)
            .definitions()
            .len();
    }
    assert!(
        scoped <= all && scoped * 100 >= all * 99,
        "{scoped} of {all}"
    );
}

#[test]
fn kept_trees_make_the_first_update_incremental() {
    let files = fixture_files();
    let opts = IndexOptions {
        keep_trees: true,
        ..IndexOptions::default()
    };
    let index = WorkspaceIndex::build_files(&files, opts.clone());
    let (path, text) = &files
        .iter()
        .find(|(p, _)| p == "sample.py")
        .cloned()
        .unwrap_or_default();
    assert_eq!(index.file(path).and_then(|f| f.text()), Some(text.as_str()));
    let next = text.replace("def plain(x):", "def plainer(x, y):");
    let index = index.update_file(path, &next, None);
    let file = index
        .file(path)
        .cloned()
        .unwrap_or_else(|| panic!("{path}"));
    assert!(file.was_incremental());
    same_index(&file, &FileIndex::new(path, &next, &opts), path);
    assert_eq!(index.symbols(Some("plainer"), None, None).len(), 1);
    // An unchanged text gives the same version back.
    let again = index.update_file(path, &next, None);
    assert_eq!(again.version(), index.version());
}
