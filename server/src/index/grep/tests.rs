use super::*;
use expect_test::{Expect, expect};

const FILES: &[(&str, &str)] = &[
    (
        "src/net.rs",
        "use std::net;\nfn listen(port: u16) {\n    let port = 8443;\n}\n",
    ),
    (
        "README.md",
        "# Demo\nThe PORT is set in config.\nPort: see below\n",
    ),
    (
        "config/server.toml",
        "[server]\nport = 8443\nhost = \"héllo wörld\"\n",
    ),
    ("src/empty.rs", ""),
    ("src/no_newline.rs", "fn a() {}\nfn b() {}"),
];

fn render(hay: &[(&str, &str)], out: &GrepOutput) -> String {
    let mut s = String::new();
    for m in &out.matches {
        s.push_str(&format!("{}:{}: {}\n", hay[m.file].0, m.line, m.text));
    }
    s.push_str(&format!(
        "total {} in {} files\n",
        out.total, out.files_matched
    ));
    s
}

fn check_with(pattern: &str, ignore_case: bool, paths: &[&str], opts: GrepOptions, expect: Expect) {
    let filter = (!paths.is_empty()).then(|| PathFilter::new(paths).unwrap());
    let files = select_files(FILES, filter.as_ref());
    let p = Pattern::new(pattern, ignore_case).unwrap();
    let out = grep(FILES, &files, &p, &opts);
    // The parallel path gives the same answer.
    let par = grep(FILES, &files, &p, &GrepOptions { threads: 3, ..opts });
    assert_eq!(
        out,
        GrepOutput {
            bytes_searched: out.bytes_searched,
            ..par
        }
    );
    expect.assert_eq(&render(FILES, &out));
}

fn check(pattern: &str, ignore_case: bool, paths: &[&str], expect: Expect) {
    check_with(pattern, ignore_case, paths, GrepOptions::default(), expect);
}

#[test]
fn literal_regex_and_case() {
    check(
        "port",
        false,
        &[],
        expect![[r#"
                config/server.toml:2: port = 8443
                src/net.rs:2: fn listen(port: u16) {
                src/net.rs:3:     let port = 8443;
                total 3 in 2 files
            "#]],
    );
    check(
        "port",
        true,
        &[],
        expect![[r#"
                README.md:2: The PORT is set in config.
                README.md:3: Port: see below
                config/server.toml:2: port = 8443
                src/net.rs:2: fn listen(port: u16) {
                src/net.rs:3:     let port = 8443;
                total 5 in 3 files
            "#]],
    );
    check(
        r"^fn \w+",
        false,
        &[],
        expect![[r#"
                src/net.rs:2: fn listen(port: u16) {
                src/no_newline.rs:1: fn a() {}
                src/no_newline.rs:2: fn b() {}
                total 3 in 2 files
            "#]],
    );
    check(
        r"\d{4}$",
        false,
        &[],
        expect![[r#"
                config/server.toml:2: port = 8443
                total 1 in 1 files
            "#]],
    );
}

#[test]
fn multibyte_text_and_unicode_case() {
    check(
        "WÖRLD",
        true,
        &[],
        expect![[r#"
                config/server.toml:3: host = "héllo wörld"
                total 1 in 1 files
            "#]],
    );
    check(
        r"h.llo",
        false,
        &[],
        expect![[r#"
                config/server.toml:3: host = "héllo wörld"
                total 1 in 1 files
            "#]],
    );
}

#[test]
fn path_filters() {
    check(
        "8443",
        false,
        &["src"],
        expect![[r#"
                src/net.rs:3:     let port = 8443;
                total 1 in 1 files
            "#]],
    );
    check(
        "8443",
        false,
        &["*.toml", "./src/net.rs"],
        expect![[r#"
                config/server.toml:2: port = 8443
                src/net.rs:3:     let port = 8443;
                total 2 in 2 files
            "#]],
    );
    check(
        "8443",
        false,
        &["sr"],
        expect![[r#"
                total 0 in 0 files
            "#]],
    );
    let f = PathFilter::new(&["src/*.rs"]).unwrap();
    assert!(f.matches("src/a.rs") && !f.matches("src/x/a.rs") && !f.matches("a.rs"));
    let f = PathFilter::new(&["src/**/*.rs", ""]).unwrap();
    assert!(f.matches("anything"));
    let err = PathFilter::new(&["src/[a"]).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid glob \"src/[a\""),
        "{err}"
    );
}

#[test]
fn max_results_keeps_the_first_and_counts_all() {
    check_with(
        "e",
        false,
        &[],
        GrepOptions {
            max_results: 2,
            ..GrepOptions::default()
        },
        expect![[r#"
                README.md:1: # Demo
                README.md:2: The PORT is set in config.
                total 7 in 3 files
            "#]],
    );
}

#[test]
fn empty_matches_count_lines_once() {
    check(
        "x*",
        false,
        &["src/no_newline.rs", "src/empty.rs", "README.md"],
        expect![[r#"
                README.md:1: # Demo
                README.md:2: The PORT is set in config.
                README.md:3: Port: see below
                src/no_newline.rs:1: fn a() {}
                src/no_newline.rs:2: fn b() {}
                total 5 in 2 files
            "#]],
    );
}

#[test]
fn invalid_regex_says_why() {
    let err = Pattern::new("fn (", false).unwrap_err().to_string();
    expect![[r#"
            invalid regular expression: regex parse error:
                fn (
                   ^
            error: unclosed group"#]]
    .assert_eq(&err);
}

#[test]
fn matches_never_span_lines() {
    check(
        r"8443\s+host",
        false,
        &[],
        expect![[r#"
                total 0 in 0 files
            "#]],
    );
    check(
        r"(?s)PORT.*",
        false,
        &[],
        expect![[r#"
                README.md:2: The PORT is set in config.
                total 1 in 1 files
            "#]],
    );
    let err = Pattern::new("a\nb", false).unwrap_err().to_string();
    assert!(err.contains("line break"), "{err}");
}

#[test]
fn inner_literals_find_the_same_lines() {
    let text = "FooError here\nno match: error\nx BarError y ZedError\nIndexEx\nEx\n";
    let hay = [("a.rs", text)];
    for (pat, inner) in [
        (r"[A-Z][a-z]+Error", true),
        (r"\w+Ex", true),
        (r"Error|Ex", false),
        (r"[a-z]+", false),
    ] {
        let p = Pattern::new(pat, false).unwrap();
        assert_eq!(p.inner.is_some(), inner, "{pat}");
        let plain = Pattern {
            inner: None,
            ..p.clone()
        };
        let opts = GrepOptions::default();
        assert_eq!(
            grep(&hay[..], &[0], &p, &opts),
            grep(&hay[..], &[0], &plain, &opts),
            "{pat}"
        );
    }
    let p = Pattern::new(r"[A-Z][a-z]+Error", false).unwrap();
    let out = grep(&hay[..], &[0], &p, &GrepOptions::default());
    let lines: Vec<_> = out.matches.iter().map(|m| m.line).collect();
    assert_eq!(lines, [1, 3]);
}

#[test]
fn long_lines_are_cut_around_the_match() {
    let long = format!("{}NEEDLE{}\r\n", "a".repeat(1000), "é".repeat(1000));
    let hay = [("min.js", long.as_str())];
    let p = Pattern::new("NEEDLE", false).unwrap();
    let out = grep(
        &hay[..],
        &[0],
        &p,
        &GrepOptions {
            max_line_chars: 30,
            ..GrepOptions::default()
        },
    );
    expect!["...aaaaaaaaaaNEEDLEéééééééééééééé..."].assert_eq(&out.matches[0].text);
    assert_eq!(excerpt(b"short\r", 0, 30), "short");
    assert_eq!(excerpt("ééé".as_bytes(), 0, 3), "ééé");
    assert_eq!(excerpt("éééé".as_bytes(), 0, 3), "ééé...");
}

#[test]
fn many_files_in_parallel_keep_path_order() {
    let texts: Vec<(String, String)> = (0..200)
        .map(|i| (format!("f{i:03}.rs"), "x\nneedle\n".repeat(i % 3 + 1)))
        .rev()
        .collect();
    let files = select_files(&texts[..], None);
    assert_eq!(texts[files[0]].0, "f000.rs");
    let p = Pattern::new("needle", false).unwrap();
    for threads in [1, 2, 4] {
        let out = grep(
            &texts[..],
            &files,
            &p,
            &GrepOptions {
                max_results: 5,
                threads,
                ..GrepOptions::default()
            },
        );
        let got: Vec<_> = out
            .matches
            .iter()
            .map(|m| format!("{}:{}", texts[m.file].0, m.line))
            .collect();
        assert_eq!(
            got,
            [
                "f000.rs:2",
                "f001.rs:2",
                "f001.rs:4",
                "f002.rs:2",
                "f002.rs:4"
            ]
        );
        assert_eq!(out.total, (0..200).map(|i| i % 3 + 1).sum::<usize>());
    }
}
