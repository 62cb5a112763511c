use super::*;
use crate::workspace::{IndexStats, SourceFile};

fn snap() -> Snapshot {
    Snapshot {
        root: "/w".into(),
        files: vec![
            SourceFile {
                path: "a.rs".into(),
                text: Arc::new(
                    "fn alpha() -> u32 {\n    42\n}\n\nfn main() {\n    alpha();\n}\n".into(),
                ),
            },
            SourceFile {
                path: "b.rs".into(),
                text: Arc::new("fn beta() {}\nfn beta2() {}\n".into()),
            },
        ],
        stats: IndexStats {
            roots: vec![crate::workspace::RootStats::new(
                std::path::Path::new("/w"),
                "w".into(),
                false,
            )],
            ..IndexStats::default()
        },
    }
}

fn block(path: &str, search: &str, replace: &str) -> String {
    format!("```edit {path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n")
}

#[test]
fn good_edits_pass_and_bad_ones_are_dropped_with_reasons() {
    let answer = format!(
        "Rename alpha to first.\n{}{}{}{}{}",
        block("a.rs", "fn alpha() -> u32 {\n", "fn first() -> u32 {\n"),
        block("a.rs", "    alpha();\n", "    first();\n"),
        block("b.rs", "fn beta() {}\n", "fn beta( {}\n"),
        block("c.rs", "x\n", "y\n"),
        block("a.rs", "not there\n", "x\n"),
    );
    let checked = check(&answer, &snap());
    assert_eq!(checked.plan, "Rename alpha to first.");
    assert_eq!(checked.edits.len(), 2);
    assert_eq!(checked.edits[0].start, 0);
    assert_eq!(checked.edits[1].new_text, "    first();\n");
    let reasons: Vec<_> = checked
        .dropped
        .iter()
        .map(|d| format!("{}: {}", d.path, d.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            "a.rs: its SEARCH lines are not in the current text",
            "b.rs: the edited file no longer parses (new syntax errors)",
            "c.rs: no such file in the workspace",
        ]
    );
}

#[test]
fn creates_and_renames_are_checked() {
    let answer = "Split it.\n\
            ```create util.rs\npub fn helper() -> u32 {\n    1\n}\n```\n\
            ```rename b.rs -> beta.rs\n```\n\
            ```rename a.rs -> alpha.rs```\n\
            ```create a.rs\nfn x() {}\n```\n\
            ```create broken.rs\nfn x( {\n```\n\
            ```create ../escape.rs\nfn x() {}\n```\n\
            ```create util.rs\nfn again() {}\n```\n\
            ```rename gone.rs -> here.rs\n```\n\
            Done.";
    let checked = check(answer, &snap());
    assert_eq!(checked.plan, "Split it.\nDone.");
    assert_eq!(
        checked.files,
        [
            FileOp::Create {
                path: "util.rs".into(),
                text: "pub fn helper() -> u32 {\n    1\n}\n".into()
            },
            FileOp::Rename {
                from: "b.rs".into(),
                to: "beta.rs".into()
            },
            FileOp::Rename {
                from: "a.rs".into(),
                to: "alpha.rs".into()
            },
        ]
    );
    let reasons: Vec<_> = checked
        .dropped
        .iter()
        .map(|d| format!("{}: {}", d.path, d.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            "a.rs: a file is already there",
            "broken.rs: the new file does not parse",
            "../escape.rs: not a plain relative path inside the workspace",
            "util.rs: another operation of the plan writes it too",
            "here.rs: gone.rs: no such file in the workspace",
        ]
    );
}

#[test]
fn the_diff_shows_edits_renames_and_new_files() {
    let answer = format!(
        "Rename alpha.\n{}{}```rename b.rs -> beta.rs\n```\n```create util.rs\npub fn helper() {{}}\n```\n",
        block("a.rs", "fn alpha() -> u32 {\n", "fn first() -> u32 {\n"),
        block("a.rs", "    alpha();\n", "    first();\n"),
    );
    let checked = check(&answer, &snap());
    assert!(checked.dropped.is_empty(), "{:?}", checked.dropped);
    expect_test::expect![[r#"
            --- a/a.rs
            +++ b/a.rs
            @@ -1,7 +1,7 @@
            -fn alpha() -> u32 {
            +fn first() -> u32 {
                 42
             }
             
             fn main() {
            -    alpha();
            +    first();
             }
            rename from b.rs
            rename to beta.rs
            --- /dev/null
            +++ b/util.rs
            @@ -0,0 +1 @@
            +pub fn helper() {}
        "#]]
    .assert_eq(&unified_diff(&checked, &snap()));
}

#[test]
fn recorded_edits_are_checked_like_edit_blocks() {
    let snap = snap();
    let a = snap.get("a.rs").unwrap().text.clone();
    let at = |needle: &str| a.find(needle).unwrap();
    let rename = |start: usize, len: usize| EditOp::Replace {
        path: "a.rs".into(),
        start,
        end: start + len,
        text: "first".into(),
    };
    let recorded = [
        rename(at("alpha()"), 5),
        rename(at("alpha();"), 5),
        // The same edit again (a helper run twice) is one edit.
        rename(at("alpha();"), 5),
        EditOp::Replace {
            path: "b.rs".into(),
            start: 3,
            end: 999,
            text: "x".into(),
        },
        EditOp::Create {
            path: "c.rs".into(),
            text: "fn c() {}\n".into(),
        },
    ];
    let checked = check_plan("Renamed.", &recorded, &snap);
    assert_eq!(checked.edits.len(), 2, "{checked:?}");
    assert_eq!(
        checked.files,
        [FileOp::Create {
            path: "c.rs".into(),
            text: "fn c() {}\n".into()
        }]
    );
    let reasons: Vec<_> = checked
        .dropped
        .iter()
        .map(|d| format!("{}: {}", d.path, d.reason))
        .collect();
    assert_eq!(reasons, ["b.rs: its range is not in the current text"]);
    let after = &file_changes(&checked, &snap)[0].new;
    assert!(
        after.contains("fn first() -> u32") && after.contains("    first();"),
        "{after}"
    );
    // discard_edits() forgets what came before it.
    let checked = check_plan("", &[rename(0, 2), EditOp::Clear], &snap);
    assert!(checked.edits.is_empty() && checked.dropped.is_empty());
}
