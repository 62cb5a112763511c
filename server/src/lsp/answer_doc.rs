//! An answer as a Markdown file the editor opens (`window/showDocument`), for clients that do
//! not show a command's result themselves (Helix's `:lsp-workspace-command`, code actions).
//! The file lives in the user's cache directory, never in the workspace.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The Markdown for the result of `rlm.ask`, `rlm.explain` or `rlm.planRefactor`: the question,
/// the answer (or the plan), the citations (verified ones as absolute `path:line`, which editors
/// open with "go to file"), and a summary line.
pub fn render(result: &Value) -> String {
    let question = result["trajectory"][0]["question"]
        .as_str()
        .and_then(|q| q.lines().next())
        .unwrap_or_default();
    let body = result["plan"]
        .as_str()
        .or(result["answer"].as_str())
        .unwrap_or_default();
    let mut md = format!("# {question}\n\n{body}\n");
    if let Some(diff) = result["diff"].as_str().filter(|d| !d.is_empty()) {
        md.push_str(&format!("\n## Diff\n\n```diff\n{diff}```\n"));
    }
    let cites = result["citations"].as_array().cloned().unwrap_or_default();
    if !cites.is_empty() {
        md.push_str("\n## Citations\n\n");
        for c in &cites {
            let (path, line) = (c["path"].as_str().unwrap_or_default(), &c["line"]);
            match c["uri"].as_str().and_then(|u| u.strip_prefix("file://")) {
                Some(disk) if c["verified"] == true => {
                    md.push_str(&format!("- {disk}:{line}\n"));
                }
                _ => md.push_str(&format!(
                    "- {path}:{line} (unverified: {})\n",
                    c["reason"].as_str().unwrap_or("not checked")
                )),
            }
        }
    }
    md.push_str(&format!(
        "\n---\nrun {}: {} turns, {} sub-calls, {:.1} s, stop: {}\n",
        result["id"].as_str().unwrap_or("?"),
        result["iterations"],
        result["subCalls"],
        result["wallMs"].as_f64().unwrap_or(0.0) / 1000.0,
        result["stopReason"].as_str().unwrap_or("?"),
    ));
    md
}

/// Writes the answer document for run `id` under `dir` and returns its path.
pub fn write(dir: &Path, id: &str, markdown: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    // Run ids come from the client: keep only what is safe in a file name.
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, markdown)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use serde_json::json;

    #[test]
    fn renders_question_answer_citations_and_summary() {
        let result = json!({
            "id": "run-3",
            "answer": "It is 42, see a.rs:2.",
            "citations": [
                {"path": "a.rs", "line": 2, "verified": true, "uri": "file:///w/a.rs"},
                {"path": "b.rs", "line": 9, "verified": false, "reason": "the file has 2 lines"},
            ],
            "iterations": 2, "subCalls": 1, "wallMs": 1530, "stopReason": "final",
            "trajectory": [{"type": "run_start", "question": "What is the answer?\n\nmore"}],
        });
        expect![[r#"
            # What is the answer?

            It is 42, see a.rs:2.

            ## Citations

            - /w/a.rs:2
            - b.rs:9 (unverified: the file has 2 lines)

            ---
            run run-3: 2 turns, 1 sub-calls, 1.5 s, stop: final
        "#]]
        .assert_eq(&render(&result));
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "../x y", "text").unwrap();
        assert_eq!(path, dir.path().join("___x_y.md"));
    }
}
