//! `rlm-lsp refactor` and `rlm-lsp explain`: the language server's "Plan a refactor" and
//! "Explain with RLM" from the command line, with the flags and environment of `ask`.

use super::{RunFlags, opened, runner, summary};
use anyhow::Context as _;
use rlm_lsp::engine::refactor::FileChange;
use rlm_lsp::session::{RefactorPlan, Workspace};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RefactorArgs {
    /// What to change, in words ("rename parse_config to load_config")
    instruction: String,
    #[command(flatten)]
    run: RunFlags,
    /// Print only the unified diff (for `git apply`)
    #[arg(long, conflicts_with = "apply")]
    diff: bool,
    /// Write the plan's changes to the files, refusing if any of them changed on disk since it
    /// was read
    #[arg(long)]
    apply: bool,
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Where the symbol is: PATH:LINE or PATH:LINE:COL (1-based; a path as the workspace
    /// shows it, or relative to it)
    target: String,
    #[command(flatten)]
    run: RunFlags,
}

pub async fn refactor(a: RefactorArgs) -> anyhow::Result<()> {
    let f = &a.run;
    let ws = opened(f)?;
    let runner = runner(&f.settings).await?;
    let plan: RefactorPlan = f
        .drive(|tx| Box::pin(ws.plan_refactor(&runner, &a.instruction, None, Some(tx))))
        .await?;
    if a.apply {
        let written = apply(&ws, &plan)?;
        eprintln!("rlm-lsp: wrote {}", written.join(", "));
    }
    if f.json {
        let mut v = plan.answer.to_json();
        v["plan"] = serde_json::json!(plan.plan);
        v["diff"] = serde_json::json!(plan.diff);
        v["check"] = serde_json::to_value(&plan.check)?;
        v["applied"] = serde_json::json!(a.apply);
        println!("{}", serde_json::to_string(&v)?);
    } else if a.diff {
        print!("{}", plan.diff);
    } else {
        let mut out = plan.plan.trim_end().to_string();
        if let Some(line) = plan.check_line() {
            out.push_str(&format!("\n\n{line}"));
        }
        if plan.is_empty() {
            out.push_str("\n\nNo edit passed the checks: nothing to apply.");
        } else {
            out.push_str(&format!("\n\n```diff\n{}```", plan.diff));
        }
        println!("{out}\n\n{}", summary(&plan.answer.report));
    }
    if plan.is_empty() {
        anyhow::bail!("the plan has no edit that applies");
    }
    Ok(())
}

/// Writes the plan's changes, after checking that every file it touches still holds what the
/// run read (and that every path it creates is still free); refuses, naming the files,
/// otherwise. Returns the paths written.
fn apply(ws: &Workspace, plan: &RefactorPlan) -> anyhow::Result<Vec<String>> {
    let snap = ws.snapshot();
    let changes: Vec<FileChange> = plan.file_changes(ws);
    let disk = |path: &str| -> anyhow::Result<PathBuf> {
        match snap.root_of(path) {
            Some((root, rel)) if !root.read_only => Ok(root.path.join(rel)),
            Some((root, _)) => anyhow::bail!("{path} is in the read-only root {}", root.name),
            None => anyhow::bail!("{path} is in no root of the workspace"),
        }
    };
    let mut changed = Vec::new();
    for c in &changes {
        let path = disk(&c.path)?;
        let now = std::fs::read(&path).ok();
        let same = match (&c.old, &now) {
            (Some(old), Some(now)) => old.as_bytes() == now.as_slice(),
            (None, None) => true,
            _ => false,
        };
        let target_free = c
            .renamed_to
            .as_deref()
            .map(|to| disk(to).map(|p| !p.exists()))
            .transpose()?
            .unwrap_or(true);
        if !same || !target_free {
            changed.push(
                c.renamed_to
                    .clone()
                    .filter(|_| !target_free)
                    .unwrap_or(c.path.clone()),
            );
        }
    }
    if !changed.is_empty() {
        anyhow::bail!(
            "not applied: {} changed on disk since the plan was made; run the refactor again",
            changed.join(", ")
        );
    }
    let mut written = Vec::new();
    for c in &changes {
        let path = disk(&c.path)?;
        let target = match &c.renamed_to {
            Some(to) => disk(to)?,
            None => path.clone(),
        };
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&target, &c.new).with_context(|| format!("writing {}", target.display()))?;
        if target != path {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        written.push(c.renamed_to.clone().unwrap_or(c.path.clone()));
    }
    Ok(written)
}

pub async fn explain(a: ExplainArgs) -> anyhow::Result<()> {
    let f = &a.run;
    let (path, line, column) = parse_target(&a.target)?;
    let ws = opened(f)?;
    let path = snapshot_path(&ws, &path)?;
    let name = match column {
        0 => symbol_on_line(&ws, &path, line)?,
        col => ws.symbol_at(&path, line, col)?,
    };
    let runner = runner(&f.settings).await?;
    let explanation = f
        .drive(|tx| Box::pin(ws.explain_symbol(&runner, &name, Some(tx))))
        .await?;
    if f.json {
        let mut v = explanation.answer.to_json();
        v["symbol"] = serde_json::json!(explanation.symbol);
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!(
            "`{}`\n\n{}\n\n{}",
            explanation.symbol,
            explanation.answer.markdown(),
            summary(&explanation.answer.report)
        );
    }
    Ok(())
}

/// The symbol a line is about, when no column is given: the first identifier on it that the
/// index knows a definition of (`pub fn parse(` gives `parse`), else its first identifier.
fn symbol_on_line(ws: &Workspace, path: &str, line: u32) -> anyhow::Result<String> {
    let text = &ws
        .snapshot()
        .get(path)
        .ok_or_else(|| anyhow::anyhow!("{path} is not a file of the workspace"))?
        .text;
    let line_text = text
        .lines()
        .nth(line.saturating_sub(1) as usize)
        .filter(|_| line > 0)
        .ok_or_else(|| anyhow::anyhow!("{path} has no line {line}"))?;
    let words: Vec<&str> = line_text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty() && !w.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    // Let the index finish a small workspace, so definitions are known.
    ws.wait_indexed(std::time::Duration::from_secs(5));
    words
        .iter()
        .find(|w| !ws.definitions(w).is_empty())
        .or(words.first())
        .map(|w| w.to_string())
        .ok_or_else(|| anyhow::anyhow!("no identifier at {path}:{line}"))
}

/// `PATH:LINE[:COL]` (1-based); without a column (0), the line's symbol is found by name.
fn parse_target(target: &str) -> anyhow::Result<(String, u32, u32)> {
    let bad = || {
        anyhow::anyhow!("expected PATH:LINE or PATH:LINE:COL, e.g. src/lib.rs:12:8, not {target:?}")
    };
    let mut parts = target.rsplitn(3, ':');
    let last = parts.next().ok_or_else(bad)?;
    let middle = parts.next().ok_or_else(bad)?;
    match (parts.next(), middle.parse::<u32>(), last.parse::<u32>()) {
        (Some(path), Ok(line), Ok(col)) => Ok((path.to_string(), line, col)),
        (_, Err(_), Ok(line)) => {
            let path = target.rsplit_once(':').map(|(p, _)| p).ok_or_else(bad)?;
            Ok((path.to_string(), line, 0))
        }
        _ => Err(bad()),
    }
}

/// The snapshot path of `path`: as the workspace shows it, or a path on disk under a root.
fn snapshot_path(ws: &Workspace, path: &str) -> anyhow::Result<String> {
    let snap = ws.snapshot();
    if snap.get(path).is_some() {
        return Ok(path.to_string());
    }
    let disk = std::fs::canonicalize(path).ok();
    for r in &snap.stats.roots {
        let root = std::fs::canonicalize(&r.path).unwrap_or(r.path.clone());
        if let Some(rel) = disk.as_deref().and_then(|d| d.strip_prefix(&root).ok()) {
            let p = format!("{}{}", r.prefix, rel.to_string_lossy());
            if snap.get(&p).is_some() {
                return Ok(p);
            }
        }
    }
    anyhow::bail!("{path} is not a file of the workspace (see `rlm-lsp index` for what is indexed)")
}

#[cfg(test)]
mod tests {
    use super::parse_target;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("src/a.rs:12:8").unwrap(),
            ("src/a.rs".into(), 12, 8)
        );
        assert_eq!(
            parse_target("src/a.rs:12").unwrap(),
            ("src/a.rs".into(), 12, 0)
        );
        assert!(parse_target("src/a.rs").is_err());
        assert!(parse_target("src/a.rs:x").is_err());
    }
}
