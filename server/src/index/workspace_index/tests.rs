use super::edit::{diff, input_edit, point_at};
use super::*;
use crate::index::lang::{self, language_for_path};
use crate::index::parse::Previous;
use std::time::Instant;
use tree_sitter::Point;

#[test]
fn diffs() {
    assert_eq!(diff("abc", "abc"), None);
    assert_eq!(
        diff("abXc", "abYYc"),
        Some(TextEdit {
            start_byte: 2,
            old_end_byte: 3,
            new_end_byte: 4
        })
    );
    assert_eq!(
        diff("aaa", "aaaa"),
        Some(TextEdit {
            start_byte: 3,
            old_end_byte: 3,
            new_end_byte: 4
        })
    );
    // Multi-byte characters sharing a leading byte.
    let e = diff("xé", "xè").unwrap_or_else(|| unreachable!());
    assert_eq!((e.start_byte, e.old_end_byte, e.new_end_byte), (1, 3, 3));
    let long_a = "x".repeat(1000) + "A" + &"y".repeat(1000);
    let long_b = "x".repeat(1000) + "BB" + &"y".repeat(1000);
    assert_eq!(
        diff(&long_a, &long_b),
        Some(TextEdit {
            start_byte: 1000,
            old_end_byte: 1001,
            new_end_byte: 1002
        })
    );
    assert_eq!(
        point_at("ab\ncd\ne", 0, Point::new(0, 0), 7),
        Point::new(2, 1)
    );
    assert_eq!(point_at("ab\ncd", 3, Point::new(1, 0), 5), Point::new(1, 2));
}

#[test]
fn shareable_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<WorkspaceIndex>();
    check::<Arc<FileIndex>>();
}

#[test]
fn a_header_switching_language_is_parsed_afresh() {
    let opts = IndexOptions::default();
    let index = WorkspaceIndex::new(opts.clone());
    let index = index.update_file("x.h", "int f(void);\nstruct s { int a; };\n", None);
    assert_eq!(index.file("x.h").map(|f| f.language()), Some(Language::C));
    let cpp = "namespace n {\nclass A { void m(); };\n}\n";
    let index = index.update_file("x.h", cpp, None);
    let file = index.file("x.h").cloned().unwrap_or_else(|| unreachable!());
    assert_eq!(file.language(), Language::Cpp);
    assert!(!file.was_incremental());
    assert_eq!(
        file.definitions(),
        FileIndex::new("x.h", cpp, &opts).definitions()
    );
}

/// The exact property of incremental extraction: on the same (incrementally parsed) tree it
/// finds what a full extraction finds. (Against a fresh parse it can differ on broken code:
/// tree-sitter's error recovery depends on the previous tree.)
#[test]
fn incremental_extraction_equals_full_extraction_of_the_same_tree() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/index");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap_or_default())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 14);
    let snippets = [
        "",
        "}",
        "{",
        "(",
        ")",
        "\"",
        "'''",
        "/*",
        "*/",
        "\n",
        "fn f() {}\n",
        "def g():\n  pass\n",
        "class C { void m() {} }\n",
        "@dec\n",
        "export ",
        "template <class T>\n",
        "end\n",
        "namespace n {\n",
        "impl A for B {\n",
        "    def m(self):\n        return 1\n",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    let far = Instant::now() + Duration::from_secs(3600);
    let mut worker = Worker::new();
    let mut checked = 0;
    for (path, text) in &files {
        let language = language_for_path(path, text);
        let Ok(spec) = lang::spec(language) else {
            continue;
        };
        let Ok(mut tree) = worker.parse(spec, text, None, far) else {
            continue;
        };
        let Ok(mut current) = worker.extract(spec, path, text, &tree, far, false) else {
            continue;
        };
        let mut text = text.clone();
        for step in 0..150 {
            let mut start = rand(text.len() + 1);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let len = if step % 7 == 6 { rand(300) } else { rand(30) };
            let mut end = (start + len).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let insert = snippets[rand(snippets.len())];
            let next = format!("{}{insert}{}", &text[..start], &text[end..]);
            let Some(input) = input_edit(&text, &next, None) else {
                continue;
            };
            let mut old_tree = tree.clone();
            old_tree.edit(&input);
            let Ok(new_tree) = worker.parse(spec, &next, Some(&old_tree), far) else {
                continue;
            };
            let prev = Previous {
                defs: &current.defs,
                extra: &current.extra,
                tree: &old_tree,
                old_text: &text,
                edit: &input,
            };
            let inc = worker.extract_incremental(spec, path, &next, &new_tree, far, &prev);
            let full = worker.extract(spec, path, &next, &new_tree, far, false);
            let (Ok(inc), Ok(full)) = (inc, full) else {
                panic!("{path} step {step}: extraction failed");
            };
            assert_eq!(inc.defs, full.defs, "{path} step {step}");
            assert_eq!(inc.depths, full.depths, "{path} step {step}");
            assert_eq!(inc.containers, full.containers, "{path} step {step}");
            assert_eq!(
                inc.extra.name_starts, full.extra.name_starts,
                "{path} step {step}"
            );
            checked += 1;
            text = next;
            tree = new_tree;
            current = inc;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn name_matching() {
    assert_eq!(name_match("parse", "parse"), Some(Match::Exact));
    assert_eq!(name_match("parse_file", "parse"), Some(Match::Prefix));
    assert_eq!(
        name_match("Parse", "parse"),
        Some(Match::CaseInsensitiveExact)
    );
    assert_eq!(
        name_match("ParseFile", "parse"),
        Some(Match::CaseInsensitivePrefix)
    );
    assert_eq!(
        name_match("do_parse", "PARSE"),
        Some(Match::CaseInsensitiveSubstring)
    );
    assert_eq!(
        name_match("Ärger", "ärg"),
        Some(Match::CaseInsensitivePrefix)
    );
    assert_eq!(name_match("x", "y"), None);
    assert!(path_matches("src/a.rs", "src"));
    assert!(path_matches("src/a.rs", "src/"));
    assert!(path_matches("src/a.rs", "src/a.rs"));
    assert!(!path_matches("srcx/a.rs", "src"));
}
