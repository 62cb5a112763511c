//! Reading the root model's reply: fenced code blocks to run, and a FINAL answer given as text.

/// What a reply asks the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// `repl` / `python` / `py` fenced blocks, in order.
    pub code_blocks: Vec<String>,
    /// A code block that was opened but never closed (the reply hit its token limit).
    pub unclosed_block: bool,
    /// A FINAL given on its own line outside code.
    pub final_answer: Option<FinalAnswer>,
    /// The reply up to the end of its last code block: what the model wrote after it (often an
    /// imagined output and answer) is dropped from the conversation.
    pub kept: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalAnswer {
    /// `FINAL(answer)`: the answer text.
    Text(String),
    /// `FINAL_VAR(name)`: the name of a REPL variable holding the answer.
    Var(String),
}

const CODE_LANGS: &[&str] = &["repl", "python", "py", "python3"];

pub fn parse_reply(reply: &str) -> ParsedReply {
    let mut code_blocks = Vec::new();
    let mut prose = String::new();
    let mut open: Option<(String, bool, usize)> = None; // (body, runnable, fence length)
    // A bare ``` just opened, and the prose's length before its line: when the next line is
    // only a language name ("```\nrepl\n...", a small model's slip), the block is code.
    let mut bare_open: Option<usize> = None;
    // Inside a repl block: the Python triple-quoted string a line left open, if any. A fence
    // line inside one is text (a plan or an llm_query prompt with a fenced snippet), not the
    // end of the cell.
    let mut in_string: Option<&'static str> = None;
    let mut kept_len = reply.len();
    let mut offset = 0;
    for line in reply.split_inclusive('\n') {
        let line_end = offset + line.len();
        offset = line_end;
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(rest) = trimmed.strip_prefix("```") {
                    let ticks = 3 + rest.chars().take_while(|&c| c == '`').count();
                    let lang = rest.trim_start_matches('`').trim().to_ascii_lowercase();
                    let runnable = CODE_LANGS.contains(&lang.as_str());
                    bare_open = lang.is_empty().then_some(prose.len());
                    open = Some((String::new(), runnable, ticks));
                    in_string = None;
                    if !runnable {
                        // Kept in the prose: a FINAL( ... ) may span blocks (a plan's edits).
                        prose.push_str(line);
                        prose.push('\n');
                    }
                } else {
                    prose.push_str(line);
                    prose.push('\n');
                }
            }
            Some((body, runnable, ticks)) => {
                if let Some(prose_len) = bare_open.take()
                    && CODE_LANGS.contains(&trimmed.trim_end().to_ascii_lowercase().as_str())
                {
                    *runnable = true;
                    prose.truncate(prose_len);
                    continue;
                }
                let closes = trimmed.starts_with(&"`".repeat(*ticks))
                    && trimmed.trim_end().chars().all(|c| c == '`')
                    && !(*runnable && in_string.is_some());
                if closes {
                    if *runnable && !body.trim().is_empty() {
                        code_blocks.push(std::mem::take(body));
                        kept_len = line_end;
                    } else if !*runnable {
                        prose.push_str(line);
                        prose.push('\n');
                    }
                    open = None;
                } else {
                    if *runnable {
                        in_string = triple_quote_state(line, in_string);
                    } else {
                        prose.push_str(line);
                        prose.push('\n');
                    }
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    let mut final_answer = find_final(&prose);
    let mut unclosed_block = matches!(&open, Some((body, true, _)) if !body.trim().is_empty());
    // "```repl\nFINAL(8 files ...)" and nothing after: a model answering in its habitual fence,
    // not a cell cut off by the token limit.
    if let Some((body, true, _)) = &open
        && final_answer.is_none()
        && code_blocks.is_empty()
        && let Some(text) = final_call_text(body)
    {
        final_answer = Some(FinalAnswer::Text(text));
        unclosed_block = false;
    }

    if code_blocks.is_empty() {
        kept_len = reply.len();
    }
    ParsedReply {
        code_blocks,
        unclosed_block,
        final_answer,
        kept: reply[..kept_len].trim_end().to_string(),
    }
}

/// A reply with nothing in it but fence lines and language names (a small model's
/// "```\nrepl\n```"): neither code nor an answer.
pub fn is_empty_reply(reply: &str) -> bool {
    reply.lines().all(|line| {
        let t = line
            .trim()
            .trim_start_matches('`')
            .trim()
            .to_ascii_lowercase();
        t.is_empty() || CODE_LANGS.contains(&t.as_str())
    })
}

/// Which triple-quoted Python string is open after `line`, given the one open before it.
fn triple_quote_state(line: &str, mut open: Option<&'static str>) -> Option<&'static str> {
    let mut rest = line;
    loop {
        match open {
            Some(q) => match rest.find(q) {
                Some(i) => {
                    rest = &rest[i + 3..];
                    open = None;
                }
                None => return open,
            },
            None => {
                // A `#` comment ends what can open a string on this line.
                let code = rest.split('#').next().unwrap_or(rest);
                let next = ["\"\"\"", "'''"]
                    .into_iter()
                    .filter_map(|q| code.find(q).map(|i| (i, q)))
                    .min();
                match next {
                    Some((i, q)) => {
                        rest = &rest[i + 3..];
                        open = Some(q);
                    }
                    None => return None,
                }
            }
        }
    }
}

/// The last line outside code that starts with `FINAL(` or `FINAL_VAR(`; the answer runs to its
/// balanced closing parenthesis, across lines. A FINAL mentioned mid-sentence ("then I will call
/// FINAL(answer)") is a plan, not an answer, and is ignored.
pub fn find_final(prose: &str) -> Option<FinalAnswer> {
    let lines: Vec<&str> = prose.lines().collect();
    for start in (0..lines.len()).rev() {
        let line = strip_decoration(lines[start]);
        let (is_var, rest) = if let Some(r) = line.strip_prefix("FINAL_VAR(") {
            (true, r)
        } else if let Some(r) = line.strip_prefix("FINAL(") {
            (false, r)
        } else {
            continue;
        };
        let mut tail = rest.to_string();
        for l in &lines[start + 1..] {
            tail.push('\n');
            tail.push_str(l);
        }
        let inner = balanced_prefix(&tail);
        let inner = inner.trim();
        if is_var {
            let name = inner
                .trim_matches(|c| c == '"' || c == '\'' || c == '`')
                .trim();
            if is_identifier(name) {
                return Some(FinalAnswer::Var(name.to_string()));
            }
            // `FINAL_VAR("run_all", "src/lib.rs:12")`: small models pass the answer itself.
            let text = literal_args(inner);
            if text.is_empty() {
                continue;
            }
            return Some(FinalAnswer::Text(text));
        }
        let text = unquote(inner);
        if text.is_empty() {
            continue;
        }
        return Some(FinalAnswer::Text(text));
    }
    None
}

/// A block that is not Python (it failed to parse, or the model was told not to write code)
/// whose first line is one whole `FINAL(...)` call, with the evidence pasted under it: the text
/// inside. `final_call_text` with the lines after the call.
pub fn leading_final(block: &str) -> Option<String> {
    let first = block.trim().lines().next()?;
    let rest = first
        .strip_prefix("FINAL(")
        .or_else(|| first.strip_prefix("FINAL_VAR("))?;
    // The call must close on its first line.
    (balanced_prefix(rest).len() < rest.trim_end().len()).then_some(())?;
    final_call_text(first)
}

/// A code block that is nothing but `FINAL(...)`: the text inside, unquoted. Small models write
/// `FINAL(The answer is ...)` as code; Python rejects the unquoted prose, but the intent is plain.
pub fn final_call_text(block: &str) -> Option<String> {
    let block = block.trim();
    let (rest, is_var) = match block.strip_prefix("FINAL(") {
        Some(r) => (r, false),
        None => (block.strip_prefix("FINAL_VAR(")?, true),
    };
    let inner = balanced_prefix(rest);
    // The call must be the whole block: what follows its closing parenthesis is only whitespace.
    let after = rest.get(inner.len()..)?.trim_start_matches(')').trim();
    if !after.is_empty() {
        return None;
    }
    let text = if is_var {
        literal_args(inner)
    } else {
        unquote(inner.trim())
    };
    (!text.is_empty()).then_some(text)
}

/// The arguments of a call written with literals (`"a", 'b', c`), as one text: `a, b, c`.
fn literal_args(inner: &str) -> String {
    inner
        .split(',')
        .map(|a| unquote(a.trim()))
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An answer made only of the words of our own instructions (`FINAL(your best answer)`,
/// `FINAL(path:line)`, `FINAL(...)`): small models copy the template instead of answering.
pub fn is_placeholder(answer: &str) -> bool {
    const TEMPLATE: &[&str] = &[
        "your",
        "best",
        "final",
        "the",
        "answer",
        "here",
        "path",
        "line",
        "path:line",
    ];
    let words: Vec<String> = answer
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '(' | ')' | '`' | '"' | '\'' | '*'))
        .map(|w| w.trim_end_matches(':').to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let dots = |w: &String| w.chars().all(|c| c == '.' || c == '…');
    // Only the template's words, and one that says "answer" or "path:line": a one-word real
    // answer such as `final` or `path` stays an answer.
    words
        .iter()
        .all(|w| dots(w) || TEMPLATE.contains(&w.trim_end_matches('.')))
        && (words.iter().all(dots)
            || words
                .iter()
                .any(|w| matches!(w.trim_end_matches('.'), "answer" | "path:line")))
}

/// Small models often wrap the marker in Markdown: `**FINAL(42)**`, `` `FINAL(42)` ``, `> FINAL(42)`.
fn strip_decoration(line: &str) -> &str {
    line.trim()
        .trim_start_matches(['*', '`', '>', '-', '_'])
        .trim_start()
}

/// The text up to the parenthesis that closes an already-open one; the whole text when unbalanced.
fn balanced_prefix(s: &str) -> &str {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    s.trim_end().trim_end_matches(['*', '`'])
}

/// `FINAL("42")` means the answer 42, not the string with quotes.
fn unquote(s: &str) -> String {
    for q in ["\"\"\"", "'''", "\"", "'"] {
        if s.len() >= 2 * q.len() && s.starts_with(q) && s.ends_with(q) {
            return s[q.len()..s.len() - q.len()].trim().to_string();
        }
    }
    s.to_string()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check(reply: &str, expect: Expect) {
        let parsed = parse_reply(reply);
        let mut out = String::new();
        for (i, b) in parsed.code_blocks.iter().enumerate() {
            out.push_str(&format!("block {i}:\n{b}"));
        }
        if parsed.unclosed_block {
            out.push_str("unclosed block\n");
        }
        out.push_str(&format!("final: {:?}\n", parsed.final_answer));
        if parsed.kept != reply.trim_end() {
            out.push_str(&format!("kept: {:?}\n", parsed.kept));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn repl_and_python_fences_run_others_do_not() {
        check(
            "Let me look.\n```repl\nprint(len(context))\n```\nand\n```python\nx = 1\n```\n```rust\nfn main() {}\n```\n",
            expect![[r#"
                block 0:
                print(len(context))
                block 1:
                x = 1
                final: None
                kept: "Let me look.\n```repl\nprint(len(context))\n```\nand\n```python\nx = 1\n```"
            "#]],
        );
    }

    #[test]
    fn final_inside_code_is_code_not_text() {
        check(
            "```repl\nFINAL(answer)\n```\n",
            expect![[r#"
                block 0:
                FINAL(answer)
                final: None
            "#]],
        );
    }

    #[test]
    fn plan_mentioning_final_is_not_an_answer() {
        check(
            "First I will search, then call FINAL(answer) with what I find.\n",
            expect![[r#"
                final: None
            "#]],
        );
    }

    #[test]
    fn final_with_nested_parentheses_and_lines() {
        check(
            "The search found it.\nFINAL(The limit is `max(a, b)` (see src/lib.rs:10)\nand it is applied twice.)\n",
            expect![[r#"
                final: Some(Text("The limit is `max(a, b)` (see src/lib.rs:10)\nand it is applied twice."))
            "#]],
        );
    }

    #[test]
    fn quoted_decorated_and_unbalanced_finals() {
        check(
            "**FINAL(\"4817263\")**",
            expect![[r#"
                final: Some(Text("4817263"))
            "#]],
        );
        check(
            "FINAL(the answer is 7",
            expect![[r#"
                final: Some(Text("the answer is 7"))
            "#]],
        );
        check(
            "FINAL()\n",
            expect![[r#"
                final: None
            "#]],
        );
    }

    #[test]
    fn final_var_takes_an_identifier() {
        check(
            "FINAL_VAR(result)",
            expect![[r#"
                final: Some(Var("result"))
            "#]],
        );
        check(
            "FINAL_VAR('answer_text')",
            expect![[r#"
                final: Some(Var("answer_text"))
            "#]],
        );
        // Not a variable's name: the model passed the answer itself.
        check(
            "FINAL_VAR(\"run_all\", \"src/lib.rs:12\")",
            expect![[r#"
                final: Some(Text("run_all, src/lib.rs:12"))
            "#]],
        );
        assert_eq!(
            final_call_text("FINAL_VAR(\"run_all\", 'src/lib.rs:12')"),
            Some("run_all, src/lib.rs:12".into())
        );
    }

    /// A plan as the edit format asks for it: FINAL( then prose and ```edit blocks, then ).
    #[test]
    fn a_final_spanning_edit_blocks_keeps_them() {
        let reply = "I found both uses.\nFINAL(Rename `alpha` to `first`.\n```edit a.rs\n<<<<<<< SEARCH\nfn alpha() {\n=======\nfn first() {\n>>>>>>> REPLACE\n```\n)\n";
        let p = parse_reply(reply);
        assert!(p.code_blocks.is_empty());
        let Some(FinalAnswer::Text(t)) = p.final_answer else {
            panic!("{p:?}");
        };
        assert!(
            t.starts_with("Rename `alpha` to `first`.\n```edit a.rs\n<<<<<<< SEARCH"),
            "{t}"
        );
        assert!(t.trim_end().ends_with(">>>>>>> REPLACE\n```"), "{t}");
    }

    /// A plan built in a cell as a triple-quoted string holds fence lines: they do not end the
    /// cell. A fence outside the string still does.
    #[test]
    fn fences_inside_a_triple_quoted_string_do_not_end_the_cell() {
        let reply = "```repl\nplan = \"\"\"Rename it.\n```edit a.rs\n<<<<<<< SEARCH\nfn alpha() {\n=======\nfn first() {\n>>>>>>> REPLACE\n```\n\"\"\"\nFINAL(plan)\n```\nDone.\n";
        let p = parse_reply(reply);
        assert_eq!(p.code_blocks.len(), 1, "{p:?}");
        assert!(
            p.code_blocks[0].contains(">>>>>>> REPLACE\n```\n\"\"\"\nFINAL(plan)\n"),
            "{p:?}"
        );
        let prompt = "```python\nanswer = llm_query('''Explain:\n```rust\nfn a() {}\n```\n''')\nprint(answer)\n```\n";
        let p = parse_reply(prompt);
        assert_eq!(p.code_blocks.len(), 1);
        assert!(p.code_blocks[0].ends_with("print(answer)\n"), "{p:?}");
        assert_eq!(
            triple_quote_state("x = 1  # a comment with \"\"\" in it", None),
            None
        );
        assert_eq!(
            triple_quote_state("s = '''a''' + \"\"\"b", None),
            Some("\"\"\"")
        );
    }

    #[test]
    fn a_final_line_over_pasted_evidence_is_the_answer() {
        // Recorded from the 1.5B model at 4f20ece, asked for its answer after repeating itself.
        let block = "FINAL(74 of 4601 definitions match)\nregex-syntax-0.8.12/src/ast/visitor.rs:118: fn visit<V: Visitor>(ast: &Ast, visitor: V) -> Result<V::Output, V::Err> {\n";
        assert_eq!(
            leading_final(block).as_deref(),
            Some("74 of 4601 definitions match")
        );
        assert_eq!(final_call_text(block), None);
        // A first line that does not close its call is not one.
        assert_eq!(leading_final("FINAL(a,\nb)\nx = 1"), None);
        assert_eq!(leading_final("x = 1\nFINAL(x)"), None);
    }

    #[test]
    fn an_unclosed_fence_holding_only_a_final_is_a_final() {
        // Recorded from the 1.5B model, asked for its answer after repeating itself.
        check(
            "```repl\nFINAL(8 files contain the word `process` (16 matching lines), e.g. anyhow-1.0.105/build.rs and rayon-core-1.13.0/src/lib.rs.)",
            expect![[r#"
                final: Some(Text("8 files contain the word `process` (16 matching lines), e.g. anyhow-1.0.105/build.rs and rayon-core-1.13.0/src/lib.rs."))
            "#]],
        );
        // A cell cut off mid-way is still an unclosed block.
        check(
            "```repl\nx = grep('a')\nFINAL(x",
            expect![[r#"
                unclosed block
                final: None
            "#]],
        );
    }

    #[test]
    fn a_final_fenced_as_text_is_a_final() {
        let p = parse_reply("```\nFINAL(4817263 at web/a.ts:31)\n```\n");
        assert_eq!(
            p.final_answer,
            Some(FinalAnswer::Text("4817263 at web/a.ts:31".into()))
        );
        let p = parse_reply("Here:\n```text\nFINAL(42)\n");
        assert_eq!(p.final_answer, Some(FinalAnswer::Text("42".into())));
        // A text block that merely shows FINAL mid-way is not one.
        let p = parse_reply("```\nthen call FINAL(x)\n```\n");
        assert_eq!(p.final_answer, None);
    }

    #[test]
    fn template_words_are_not_an_answer() {
        for t in [
            "your best answer",
            "Your answer",
            "path:line",
            "...",
            "`your final answer`",
            "the answer, path:line",
            "",
        ] {
            assert!(is_placeholder(t), "{t:?}");
        }
        for t in [
            "42",
            "run_all, src/lib.rs:12",
            "The answer is 42 (a.rs:3)",
            // Real one-word answers that happen to be template words.
            "final",
            "path",
            "line",
            "`final`",
            "here",
        ] {
            assert!(!is_placeholder(t), "{t:?}");
        }
        assert!(!is_placeholder("answer 42"));
    }

    #[test]
    fn final_call_blocks_give_their_text() {
        assert_eq!(
            final_call_text("FINAL(The answer is f(x), see a.rs:3)\n"),
            Some("The answer is f(x), see a.rs:3".into())
        );
        assert_eq!(final_call_text("FINAL('42')"), Some("42".into()));
        assert_eq!(final_call_text("x = 1\nFINAL(x)"), None);
        assert_eq!(final_call_text("FINAL(a)\nprint(1)"), None);
        assert_eq!(final_call_text("FINAL()"), None);
    }

    #[test]
    fn truncated_reply_leaves_an_unclosed_block() {
        check(
            "```repl\nfor p in context:\n    print(p",
            expect![[r#"
                unclosed block
                final: None
            "#]],
        );
    }

    #[test]
    fn imagined_output_after_code_is_dropped() {
        check(
            "```repl\nprint(1)\n```\nOutput:\n1 hit\n\nFINAL(The magic number is 420.)",
            expect![[r#"
                block 0:
                print(1)
                final: Some(Text("The magic number is 420."))
                kept: "```repl\nprint(1)\n```"
            "#]],
        );
    }

    #[test]
    fn a_language_name_on_the_line_after_a_bare_fence_makes_it_code() {
        let p = parse_reply("```\nrepl\nprint(definitions(\"a\"))\n```\n");
        assert_eq!(
            p.code_blocks,
            vec!["print(definitions(\"a\"))\n".to_string()]
        );
        assert!(p.final_answer.is_none());
        // A bare block of text stays text, and a bare block of code is not run.
        let p = parse_reply("```\nfn main() {}\n```\nFINAL(done)\n");
        assert!(p.code_blocks.is_empty());
        assert!(p.final_answer.is_some());
    }

    #[test]
    fn fences_with_no_code_are_an_empty_reply() {
        for empty in [
            "```\nrepl\n```",
            "```repl\n```",
            "",
            "  \n",
            "```python\n\n```\n",
        ] {
            assert!(is_empty_reply(empty), "{empty:?}");
            assert!(parse_reply(empty).code_blocks.is_empty(), "{empty:?}");
        }
        for not_empty in [
            "42",
            "```\nprint(1)\n```",
            "FINAL(repl)",
            "The answer is repl.",
        ] {
            assert!(!is_empty_reply(not_empty), "{not_empty:?}");
        }
    }

    #[test]
    fn code_and_final_in_one_reply() {
        check(
            "```repl\nprint(1)\n```\nFINAL(1)",
            expect![[r#"
                block 0:
                print(1)
                final: Some(Text("1"))
                kept: "```repl\nprint(1)\n```"
            "#]],
        );
    }
}
