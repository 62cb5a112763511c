use super::calls::{InCode, commented, defines};
use super::results::{describe, search_line};
use super::*;
use crate::index::Chunk;
use crate::repl::index::SearchHit;

#[test]
fn line_suffixes_and_counts() {
    assert_eq!(
        split_line_suffix("src/a.rs:12"),
        Some(("src/a.rs", 12, None))
    );
    assert_eq!(
        split_line_suffix("src/a.rs:12-40"),
        Some(("src/a.rs", 12, Some(40)))
    );
    assert_eq!(split_line_suffix("src/a.rs"), None);
    assert_eq!(split_line_suffix("c:/x"), None);
    assert_eq!(line_count(b""), 0);
    assert_eq!(line_count(b"a"), 1);
    assert_eq!(line_count(b"a\n"), 1);
    assert_eq!(line_count(b"a\n\nb"), 3);
}

/// Which lines grep reports as calls of `name`, and which of those `callers()` drops as
/// definitions.
#[test]
fn call_sites_and_definition_lines() {
    let lines = [
        "let x = parse(a);",
        "fn parse(a: &str) -> u32 {",
        "pub fn parse<T>(a: T) {",
        "let n = parse::<u32>(s);",
        "let n = s.parse::<u32>().unwrap();",
        "println!(\"{}\", parse (x));",
        "parse!(x);",
        "    def parse(self, text):",
        "    async def parse(self):",
        "func (p *Parser) parse(x int) error {",
        "func parse(x int) error {",
        "function parse(x) {",
        "function* parse(x) {",
        "export const parse = (x) => 1;",
        "let p = parser(x);",
        "x.reparse(y)",
        "#define parse(x) ((x) + 1)",
        "  def self.parse(text)",
        "Parser.parse(text)",
        "fun parse(s: String): Int {",
        "let f = parse;",
        "///        let mid = parse(v);",
        "    let a = 1; // then parse(a)",
        "   * parse(x) in a block comment",
        "    # parse(x) in a Python comment",
        "#[cfg(test)] fn t() { parse(1); }",
    ];
    let pattern = Pattern::new(&call_pattern("parse"), false).unwrap();
    let text = lines.join("\n");
    let hay: &[(&str, &str)] = &[("a.rs", &text)];
    let files = grep::select_files(hay, None);
    let out = grep::grep(hay, &files, &pattern, &GrepOptions::default());
    let shown: Vec<String> = out
        .matches
        .iter()
        .map(|m| {
            let tag = if defines(&m.text, "parse") {
                "def "
            } else if commented(&m.text, "parse") {
                "cmt "
            } else {
                "call"
            };
            format!("{tag} {}", m.text)
        })
        .collect();
    expect_test::expect![[r#"
            call let x = parse(a);
            def  fn parse(a: &str) -> u32 {
            call let n = parse::<u32>(s);
            call let n = s.parse::<u32>().unwrap();
            call println!("{}", parse (x));
            def      def parse(self, text):
            def      async def parse(self):
            def  func (p *Parser) parse(x int) error {
            def  func parse(x int) error {
            def  function parse(x) {
            def  function* parse(x) {
            def  #define parse(x) ((x) + 1)
            def    def self.parse(text)
            call Parser.parse(text)
            def  fun parse(s: String): Int {
            cmt  ///        let mid = parse(v);
            cmt      let a = 1; // then parse(a)
            cmt     * parse(x) in a block comment
            cmt      # parse(x) in a Python comment
            call #[cfg(test)] fn t() { parse(1); }"#]]
    .assert_eq(&shown.join("\n"));
    assert!(
        defines("pub fn parse<T>(a: T) {", "parse"),
        "generic definitions"
    );
    assert!(!defines("let x = parse(a);", "parse"));
    assert_eq!(call_pattern("a.b"), r"\ba\.b\b(?:\s*::\s*<[^()]*>)?\s*\(");
}

/// `callers()` keeps a hit only when a call on its line is in code: not in a block comment
/// opened lines above (a doc test in `/*! ... */`), not in a string; files of unknown
/// languages are judged line by line.
#[test]
fn call_sites_in_comments_and_strings_are_dropped() {
    let rust = "/*! ```compile_fail\nlet mid = partition(v);\n``` */\nfn quick_sort(v: &mut [u8]) {\n    let mid = partition(v);\n    log(\"partition(v) failed\");\n    let x = \"a\"; let m = partition(&mut v[..x.len()]);\n}\n";
    let py = "'''\npartition(v)\n'''\nx = partition(v)  # partition(v)\n";
    let md = "Call `partition(v)` first.\n";
    let hay: &[(&str, &str)] = &[("a.rs", rust), ("b.py", py), ("c.md", md)];
    let pattern = Pattern::new(&call_pattern("partition"), false).unwrap();
    let files = grep::select_files(hay, None);
    let out = grep::grep(hay, &files, &pattern, &GrepOptions::default());
    let mut in_code = InCode::new("partition");
    let shown: Vec<String> = out
        .matches
        .iter()
        .map(|m| {
            let tag = if in_code.keeps(hay, m) {
                "call"
            } else {
                "drop"
            };
            format!("{tag} {}:{} {}", hay[m.file].0, m.line, m.text.trim())
        })
        .collect();
    expect_test::expect![[r#"
        drop a.rs:2 let mid = partition(v);
        call a.rs:5 let mid = partition(v);
        drop a.rs:6 log("partition(v) failed");
        call a.rs:7 let x = "a"; let m = partition(&mut v[..x.len()]);
        drop b.py:2 partition(v)
        call b.py:4 x = partition(v)  # partition(v)
        call c.md:1 Call `partition(v)` first."#]]
    .assert_eq(&shown.join("\n"));
}

#[test]
fn search_results_show_one_line() {
    let chunk = |name: Option<&str>| Chunk {
        path: "src/a.rs".into(),
        kind: "function".into(),
        name: name.map(Into::into),
        parent: None,
        language: crate::index::Language::Rust,
        start_byte: 0,
        end_byte: 10,
        start_line: 3,
        end_line: 9,
    };
    let hit = |name| SearchHit {
        chunk: chunk(name),
        score: 7.345,
    };
    assert_eq!(
        search_line(&hit(Some("parse"))),
        "src/a.rs:3-9 function parse (7.3)"
    );
    assert_eq!(search_line(&hit(None)), "src/a.rs:3-9 function (7.3)");
}

#[test]
fn impls_show_their_trait() {
    let mut d = Definition {
        name: "Args".into(),
        kind: DefKind::Impl,
        language: crate::index::Language::Rust,
        path: "src/cli.rs".into(),
        start_byte: 0,
        end_byte: 10,
        start_line: 3,
        end_line: 9,
        parent: None,
        signature: "impl Default for Args {".into(),
        detail: Some("Default".into()),
    };
    assert_eq!(display_name(&d), "Default for Args");
    assert_eq!(
        describe(
            d.kind.as_str(),
            Some(&display_name(&d)),
            None,
            &d.path,
            (3, 9)
        ),
        "impl Default for Args at src/cli.rs:3-9"
    );
    d.detail = None;
    assert_eq!(display_name(&d), "Args");
    assert_eq!(py_str("it's"), "'it\\'s'");
}
