//! Everything the engine says to the root model: the system prompt (from `prompts/`), the
//! metadata-only first message, and the short steering lines that keep small models on track.

use super::recipes::Recipe;
use crate::workspace::Snapshot;
use std::collections::BTreeMap;

const SYSTEM: &str = include_str!("../../../prompts/system.md");

/// Characters per token, roughly, for code and English (used only for budgeting and metadata).
pub const CHARS_PER_TOKEN: usize = 4;

/// The system prompt: the REPL's helpers, how to work, and the worked examples chosen for the
/// question (`recipes.rs`).
pub fn system_prompt(sub_model_chars: usize, examples: &[&Recipe]) -> String {
    let examples = match examples {
        [one] => format!("Example.\n{}", one.text),
        many => many
            .iter()
            .enumerate()
            .map(|(i, r)| format!("Example {}.\n{}", i + 1, r.text))
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    SYSTEM
        .replace("{sub_chars}", &group_digits(sub_model_chars as u64))
        .replace("{examples}", &examples)
        .trim_end()
        .to_string()
}

/// The first user message: the question and what the workspace looks like, never its text,
/// then the engine's first search and its output (`evidence`) when it ran one.
/// The first user message: the question, a summary of the workspace, and the engine's first
/// search. `ranked`: that search ranked files or directories, and the summary's own lists of
/// them (largest files, files per directory) are left out: a small model answered "which file
/// has the most X" with the first of the largest files.
pub fn first_message(
    snapshot: &Snapshot,
    question: &str,
    max_iterations: u32,
    index_summary: Option<&str>,
    evidence: Option<&str>,
    ranked: bool,
) -> String {
    let files = snapshot.files.len();
    let chars: u64 = snapshot
        .files
        .iter()
        .map(|f| f.text.chars().count() as u64)
        .sum();
    let mut by_ext: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_lang: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_dir: BTreeMap<String, usize> = BTreeMap::new();
    for f in &snapshot.files {
        let name = f.path.rsplit('/').next().unwrap_or(&f.path);
        let ext = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => format!(".{ext}"),
            _ => "(none)".into(),
        };
        *by_ext.entry(ext).or_default() += 1;
        *by_lang
            .entry(crate::index::language_for_path(&f.path, &f.text).to_string())
            .or_default() += 1;
        let dir = match f.path.split_once('/') {
            Some((d, _)) => format!("{d}/"),
            None => "./".into(),
        };
        *by_dir.entry(dir).or_default() += 1;
    }
    let top = |m: BTreeMap<String, usize>| {
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let more = v.len().saturating_sub(12);
        let mut s = v
            .into_iter()
            .take(12)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        if more > 0 {
            s.push_str(&format!(", and {more} more"));
        }
        s
    };
    let mut largest: Vec<_> = snapshot.files.iter().collect();
    largest.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.path.cmp(&b.path)));
    let largest = largest
        .iter()
        .take(5)
        .map(|f| format!("{} ({} chars)", f.path, group_digits(f.text.len() as u64)))
        .collect::<Vec<_>>()
        .join(", ");
    let lists = if ranked {
        String::new()
    } else {
        format!(
            "Files by top-level directory: {}\nLargest files: {largest}\n",
            top(by_dir)
        )
    };
    format!(
        "Question: {question}\n\n\
         The workspace is in the REPL as `context`: {files} files, {} characters (about {} tokens), \
         far more than you can read at once.\n\
         Languages: {}\n\
         Files by type: {}\n\
         {lists}{}\n\
         You have {max_iterations} turns. {}",
        group_digits(chars),
        group_digits(chars / CHARS_PER_TOKEN as u64),
        top(by_lang),
        top(by_ext),
        index_summary.map(|s| format!("{s}\n")).unwrap_or_default(),
        match evidence {
            Some(e) => e.to_string(),
            None => "Start by searching with a helper in a ```repl block.".to_string(),
        },
    )
}

pub const NO_CODE_YET: &str = "You have not looked at the workspace yet, so that answer is a guess. \
Write a ```repl block that searches `context` for the evidence first.";

pub const NEED_CODE_OR_FINAL: &str = "Write a ```repl block to keep looking, or, if the output above \
already answers the question, reply with one line: FINAL( then the answer itself, then ).";

/// Shown when a FINAL holds only the words of our instructions (`FINAL(your best answer)`).
pub fn template_answer(answer: &str) -> String {
    format!(
        "`FINAL({answer})` copies the instructions' template; it is not an answer. Put the answer \
         itself inside FINAL(...): the names, numbers and path:line you found in the outputs."
    )
}

/// Shown when a reply held only empty fences (```` ``` ```` then `repl` then ```` ``` ````).
pub const EMPTY_REPLY: &str = "(Your last reply was empty: fence lines with no code. If the output \
above answers the question, start your reply with FINAL( then the answer itself, then ). Otherwise \
put Python code on the lines between ```repl and ```.)";

pub const UNCLOSED_BLOCK: &str = "Your code block was cut off before its closing ``` and was not run. \
Write a shorter block.";

pub const AFTER_CODE_IGNORED: &str = "Only your code was run: what you wrote after it (an imagined \
output or answer) was ignored. The real output is above.";

/// Small models go on to imagine the output of the code they just wrote; stop them there.
pub const ROOT_STOP: &[&str] = &["\nOutput:"];

/// Repeating the question after each output is what makes a small model notice that the answer
/// is on screen (measured with the 1.5B local model: without it, it kept searching).
pub fn turn_steer(question: &str, remaining: u32, holds: &str) -> String {
    match remaining {
        0 => String::new(),
        1 => format!(
            "The question is: {question}\nThis is your last turn: reply with FINAL(...) holding {holds}."
        ),
        _ => format!(
            "The question is: {question}\nIf the output above answers it, reply now with FINAL(...) holding {holds}. Otherwise write the next ```repl block ({remaining} turns left)."
        ),
    }
}

/// Shown instead of running a cell the model already ran; `next` is the chosen recipe's next
/// step.
pub fn repeated_code(turn: u32, earlier_view: &str, next: &str) -> String {
    format!(
        "You already ran this exact code in turn {turn}; it was not run again. Its output was:\n{earlier_view}\
         Do not repeat code. If that output answers the question, reply with FINAL(...) now; otherwise the next step: {next}.\n"
    )
}

/// Shown once when a FINAL cites what this workspace does not have: the made-up names of the
/// examples, paths that are not in it, or names placed in a file that does not hold them.
pub fn bad_citations(
    examples: &[String],
    unknown_paths: &[(String, Option<String>)],
    misplaced: &[(super::citations::Misplaced, Option<String>)],
) -> String {
    let mut s = String::from("Your answer was not accepted. ");
    if !examples.is_empty() {
        s.push_str(&format!(
            "{} {} from the example, not from this workspace. ",
            examples
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if examples.len() == 1 { "is" } else { "are" }
        ));
    }
    if !unknown_paths.is_empty() {
        s.push_str(&format!(
            "{} {} not in this workspace. ",
            unknown_paths
                .iter()
                .map(|(e, near)| match near {
                    Some(n) => format!("`{e}` (did you mean `{n}`?)"),
                    None => format!("`{e}`"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            if unknown_paths.len() == 1 {
                "is"
            } else {
                "are"
            }
        ));
    }
    for (m, there) in misplaced {
        s.push_str(&format!("`{}` does not occur in {}", m.name, m.path));
        match (m.line, there) {
            (Some(line), Some(def)) => s.push_str(&format!("; line {line} there is in `{def}`. ")),
            _ => s.push_str(". "),
        }
    }
    s.push_str(
        "Cite only names and paths from the outputs above, or run code to find them; then reply with FINAL(...).",
    );
    s
}

/// Shown when `llm_query` got a bare question: the sub model cannot see the workspace.
pub const SUB_CALL_NEEDS_TEXT: &str = "Note: llm_query only sees the prompt you pass it, not the \
workspace. Put the code to read in the prompt, e.g. llm_query(\"What does this do?\\n\" + read(path, 10, 80)).";

/// The last request of a run that ends without a FINAL: the question again, and no template to
/// copy (the 1.5B model answered `FINAL(your best answer)` to "reply with FINAL(your best
/// answer)": measured by the evaluation, `docs/eval.md`).
pub fn last_call(why: &str, question: &str) -> String {
    format!(
        "{why} The question is: {question}\nReply now with one line: FINAL( then your answer to \
         it, with the names, numbers and path:line from the outputs above, then ). Do not write code."
    )
}

pub const STALLED: &str = "You are repeating code you already ran.";

pub const STILL_EMPTY: &str = "Your replies hold no code.";

pub const OUT_OF_TURNS: &str = "You are out of turns.";

pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{IndexStats, SourceFile};
    use expect_test::expect;

    #[test]
    fn first_message_has_metadata_and_no_text() {
        let files = [
            ("src/main.rs", "fn main() { secret(); }\n"),
            ("src/lib.rs", "pub fn secret() {}\n"),
            ("README.md", "# Demo\n"),
            ("Makefile", "all:\n"),
        ];
        let snap = Snapshot {
            root: "/w".into(),
            files: files
                .iter()
                .map(|(p, t)| SourceFile {
                    path: p.to_string(),
                    text: t.to_string().into(),
                })
                .collect(),
            stats: IndexStats::default(),
        };
        let msg = first_message(
            &snap,
            "What does secret do?",
            20,
            Some("Definitions: 2 (function 2)"),
            None,
            false,
        );
        assert!(!msg.contains("fn main"));
        expect![[r#"
            Question: What does secret do?

            The workspace is in the REPL as `context`: 4 files, 55 characters (about 13 tokens), far more than you can read at once.
            Languages: rust 2, markdown 1, text 1
            Files by type: .rs 2, (none) 1, .md 1
            Files by top-level directory: ./ 2, src/ 2
            Largest files: src/main.rs (24 chars), src/lib.rs (19 chars), README.md (7 chars), Makefile (5 chars)
            Definitions: 2 (function 2)

            You have 20 turns. Start by searching with a helper in a ```repl block."#]]
        .assert_eq(&msg);
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(100), "100");
    }
}
