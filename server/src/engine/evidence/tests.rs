use super::*;
use expect_test::expect;

#[test]
fn names_come_from_code_spans_identifiers_and_capitalized_words() {
    let cases = [
        "Where is `Parser` defined?",
        "Which functions call parse_expr?",
        "Where is `Visitor::visit_item` used?",
        "Which types implement the Serialize trait?",
        "How many files contain `unsafe`?",
        "What is the default timeout of the client?",
        "What does `normalize_path()` do in HttpClient?",
        "Which function rotates a slice left by n positions? Name it and its file.",
        "What is MAX_DEPTH set to?",
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|q| format!("{q} -> {:?}", names_in(q)))
        .collect();
    expect![[r#"
            Where is `Parser` defined? -> ["Parser"]
            Which functions call parse_expr? -> ["parse_expr"]
            Where is `Visitor::visit_item` used? -> ["visit_item"]
            Which types implement the Serialize trait? -> ["Serialize"]
            How many files contain `unsafe`? -> ["unsafe"]
            What is the default timeout of the client? -> []
            What does `normalize_path()` do in HttpClient? -> ["normalize_path", "HttpClient"]
            Which function rotates a slice left by n positions? Name it and its file. -> []
            What is MAX_DEPTH set to? -> ["MAX_DEPTH"]"#]]
    .assert_eq(&got.join("\n"));
}

#[test]
fn the_cell_follows_the_recipe() {
    expect![[r##"
            # The engine's first search for the names and words of the question.
            calls = callers("flush_all")
            print("files:", calls.files)
            print(calls)
        "##]]
    .assert_eq(&cell("Who calls `flush_all`?", Some("callers")));
    expect![[r##"
            # The engine's first search for the names and words of the question.
            files = files_matching("\\bunsafe\\b")
            print(len(files), "files")
            print(files)
        "##]]
    .assert_eq(&cell("How many files contain `unsafe`?", Some("count")));
    expect![[r##"
        # The engine's first search for the names and words of the question.
        calls = callers("retry_with_backoff")
        print(len(calls.files), "files call", "retry_with_backoff", "(its definition apart)")
        print(calls)
    "##]]
    .assert_eq(&cell(
        "How many files call `retry_with_backoff`?",
        Some("count"),
    ));
    expect![[r##"
            # The engine's first search for the names and words of the question.
            print(definitions("Parser"))
            refs = references("Parser")
            print(refs.total, "references in", refs.files, "files")
            found = search("Where is Parser defined?", k=5)
            words = ["parser"]
            lines = []
            for c in found[:5]:
                for n, l in enumerate(c.text.splitlines(), c.start_line):
                    hits = sum(w in l.lower() for w in words)
                    if hits:
                        where = f" (in {c.kind} {c.name})" if c.name else ""
                        lines.append((-hits, c.path, n, where, l.strip()[:160]))
            best = -min(lines)[0] if lines else 0
            for h, path, n, where, l in sorted(lines)[:6]:
                if -h >= max(1, best - 1):
                    print(f"{path}:{n}{where}: {l}")
            print(found)
        "##]]
    .assert_eq(&cell("Where is Parser defined?", Some("where_defined")));
    expect![[r##"
        # The engine's first search for the names and words of the question.
        found = find_function("computes a CRC of a buffer", k=6)
        print(found)
    "##]]
    .assert_eq(&cell(
        "Which function computes a CRC of a buffer?",
        Some("behaviour"),
    ));
    // Where some text is, not what a function does: the word search, which names the function
    // each line is in (the haystack test's question).
    let text = cell(
        "Which function contains the note that states the magic number? Name the function.",
        Some("behaviour"),
    );
    assert!(
        text.contains("found = search(") && !text.contains("find_function"),
        "{text}"
    );
}

#[test]
fn behaviour_questions_are_reduced_to_the_behaviour() {
    let got: Vec<String> = [
        "Which function in this codebase computes the greatest common divisor of two unsigned 64-bit integers by Euclid's algorithm (repeated remainders)? Its name does not say what it does. Answer with the function's name and the path of the file that defines it.",
        "Find the function that turns a hex string into bytes.",
        "What code is responsible for retrying failed requests?",
        "Which function? Tell me.",
        "Where is the code that checks whether a path is hidden",
        "Which function in this codebase does this describe? \"Convert to a standard library trait object. This implemented as a cheap pointer.\" Facts about it: it is a method (it takes self); it is public. Answer with the function's name and the path of the file that defines it.",
    ]
    .iter()
    .map(|q| behaviour_of(q))
    .collect();
    expect![[r#"
        computes the greatest common divisor of two unsigned 64-bit integers by Euclid's algorithm (repeated remainders)
        turns a hex string into bytes
        is responsible for retrying failed requests
        Which function
        checks whether a path is hidden
        Convert to a standard library trait object. This implemented as a cheap pointer. Facts about it: it is a method (it takes self); it is public"#]].assert_eq(&got.join("\n"));
}

#[test]
fn a_rename_starts_from_its_edits() {
    expect![[r##"
        # The engine's first search for the names and words of the question.
        print(definitions("halt_unwinding"))
        edits = rename_symbol("halt_unwinding", "halt_unwinding_renamed")
        print(edits)
        print(proposed_edits())
    "##]]
    .assert_eq(&cell(
        "Plan this refactor: rename the function `halt_unwinding` to `halt_unwinding_renamed` everywhere. The user is at rayon-core-1.13.0/src/unwind.rs:13.",
        Some("rename"),
    ));
    // The type a method belongs to is not the new name.
    assert_eq!(
        rename_pair(
            "Plan this refactor: rename the method `construct_from_boxed` of `Error` to `construct_from_boxed_renamed` everywhere."
        ),
        Some((
            "construct_from_boxed".to_string(),
            "construct_from_boxed_renamed".to_string()
        ))
    );
    assert_eq!(
        rename_pair("Rename `Parser` to `Reader`"),
        Some(("Parser".into(), "Reader".into()))
    );
    assert_eq!(rename_pair("How does rename work?"), None);
}

#[test]
fn which_file_questions_count_per_file() {
    expect![[r##"
        # The engine's first search for the names and words of the question.
        per_file = count_by_file("unsafe\\s*\\{")
        print(per_file)
    "##]]
    .assert_eq(&cell(
        "Which file contains the most `unsafe { ... }` blocks? Answer with the file path.",
        Some("most_by_dir"),
    ));
}

#[test]
fn counting_questions_get_their_filters() {
    expect![[r##"
            # The engine's first search for the names and words of the question.
            per_dir = count_by_dir("unsafe\\s*\\{", depth=3)
            print(per_dir)
        "##]]
    .assert_eq(&cell(
        "Consider the directories exactly 3 levels below the workspace root (paths of 3 components, of the form `a/b/c`). Which of them contains the most `unsafe { ... }` blocks in Rust files? Answer with the directory's path.",
        Some("most_by_dir"),
    ));
    expect![[r##"
            # The engine's first search for the names and words of the question.
            per_dir = count_by_dir(symbols(kind="struct", max_results=None), depth=1)
            print(per_dir)
        "##]]
    .assert_eq(&cell(
        "Which top-level directory has the most struct definitions?",
        Some("most_by_dir"),
    ));
    expect![[r##"
            # The engine's first search for the names and words of the question.
            defs = symbols(kind="function", max_results=None) + symbols(kind="method", max_results=None)
            import re
            counted = [d for d in defs if d.signature.lstrip().startswith("pub ") and re.search("->\\s*(?:[\\w:]+::)?Result\\b", d.signature)]
            print(len(counted), "of", len(defs), "definitions match")
            for d in counted[:5]:
                print(f"{d.path}:{d.start_line}: {d.signature}")
        "##]]
    .assert_eq(&cell(
        "How many public functions (declared exactly `pub fn`, methods included) have a return type named `Result` (such as `Result<T, E>` or `io::Result<T>`)? Answer with one number.",
        Some("count_definitions"),
    ));
    expect![[r##"
        # The engine's first search for the names and words of the question.
        impls = implementations("Debug")
        impls2 = implementations("Drop")
        both = sorted(set(impls.types) & set(impls2.types))
        print(len(both), "types implement both", "Debug", "and", "Drop" + ":", ", ".join(both) or "none")
        for i in list(impls) + list(impls2):
            if i.type_name in both:
                print(f"{i.path}:{i.start_line}: {i.signature}")
    "##]]
    .assert_eq(&cell(
        "Which types implement both the trait `Debug` and the trait `Drop`?",
        Some("implementations"),
    ));
}
