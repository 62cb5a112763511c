//! The report: JSON (every row, the summary, the settings), Markdown tables, and a PNG of score
//! against workspace size per method.

use crate::harness::{Row, Summary, summarize};
use crate::methods::Method;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// The command line that produced the report.
    pub command: String,
    pub started: String,
    pub model: String,
    pub base_url: String,
    pub methods: Vec<Method>,
    pub settings: serde_json::Value,
    pub wall_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub meta: Meta,
    pub summary: Vec<Summary>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn new(meta: Meta, rows: Vec<Row>) -> Report {
        Report {
            summary: summarize(&rows),
            meta,
            rows,
        }
    }

    /// Writes `report.json`, `report.md` and `score_vs_size.png` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        plot(&self.summary, &dir.join("score_vs_size.png"))?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.meta;
        let _ = writeln!(md, "# rlm-eval report\n");
        let _ = writeln!(
            md,
            "Model `{}` at `{}`; {} rows; {:.0} s in all; started {}.\n\n```sh\n{}\n```\n",
            m.model,
            m.base_url,
            self.rows.len(),
            m.wall_s,
            m.started,
            m.command
        );
        let methods: Vec<Method> = {
            let s: BTreeSet<Method> = self.rows.iter().map(|r| r.method).collect();
            s.into_iter().collect()
        };
        let mut workspaces: Vec<(u64, String)> = self
            .summary
            .iter()
            .map(|s| (s.size_tokens, s.workspace.clone()))
            .collect();
        workspaces.sort();
        workspaces.dedup();

        let _ = writeln!(md, "## Mean score by workspace size\n");
        let _ = write!(md, "| workspace | size (tokens, est.) |");
        for me in &methods {
            let _ = write!(md, " {} |", me.as_str());
        }
        let _ = write!(md, "\n|---|---|");
        for _ in &methods {
            let _ = write!(md, "---|");
        }
        md.push('\n');
        for (size, ws) in &workspaces {
            let _ = write!(md, "| {ws} | {} |", group_digits(*size));
            for me in &methods {
                match self
                    .summary
                    .iter()
                    .find(|s| s.method == *me && &s.workspace == ws)
                {
                    Some(s) => {
                        let _ = write!(md, " {:.2} (n={}) |", s.mean_score, s.tasks);
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }

        let _ = writeln!(md, "\n## Cost and latency (means per task)\n");
        let _ = writeln!(
            md,
            "| workspace | method | score | prompt tok | completion tok | wall s | iterations | sub-calls | cost | truncated | overflow | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for (size, ws) in &workspaces {
            for me in &methods {
                if let Some(s) = self
                    .summary
                    .iter()
                    .find(|s| s.method == *me && &s.workspace == ws && s.size_tokens == *size)
                {
                    let _ = writeln!(
                        md,
                        "| {ws} | {} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {}/{} | {}/{} | {} |",
                        me.as_str(),
                        s.mean_score,
                        s.mean_prompt_tokens,
                        s.mean_completion_tokens,
                        s.mean_wall_s,
                        s.mean_iterations,
                        s.mean_sub_calls,
                        s.total_cost_usd
                            .map_or("unknown".into(), |c| format!("${c:.4}")),
                        s.truncated,
                        s.tasks,
                        s.overflow,
                        s.tasks,
                        s.errors
                    );
                }
            }
        }

        let _ = writeln!(md, "\n## Mean score by task kind\n");
        let mut kinds: BTreeMap<(String, Method), (f64, usize)> = BTreeMap::new();
        for r in &self.rows {
            let e = kinds.entry((r.kind.clone(), r.method)).or_default();
            e.0 += r.score;
            e.1 += 1;
        }
        let kind_names: BTreeSet<&String> = kinds.keys().map(|(k, _)| k).collect();
        let _ = write!(md, "| kind |");
        for me in &methods {
            let _ = write!(md, " {} |", me.as_str());
        }
        let _ = write!(md, "\n|---|");
        for _ in &methods {
            let _ = write!(md, "---|");
        }
        md.push('\n');
        for k in kind_names {
            let _ = write!(md, "| {k} |");
            for me in &methods {
                match kinds.get(&(k.clone(), *me)) {
                    Some((s, n)) => {
                        let _ = write!(md, " {:.2} (n={n}) |", s / *n as f64);
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }

        md.push_str(&self.by_kind_and_size(&methods));
        md.push_str(&self.sub_calls_by_kind(&methods));
        md.push_str(&self.stop_reasons(&methods));
        md.push_str(&self.unknown_paths(&methods));

        let _ = writeln!(
            md,
            "\n## Plot\n\n`score_vs_size.png`: mean score (y, 0 to 1) against workspace size in estimated tokens \
             (x, log scale), one line per method: {}.\n",
            methods
                .iter()
                .map(|m| format!("{} = {}", m.as_str(), color_name(*m)))
                .collect::<Vec<_>>()
                .join(", ")
        );

        let _ = writeln!(md, "## Every task\n");
        let _ = writeln!(
            md,
            "| task | method | score | prompt + completion tok | wall s | it. | sub | notes | answer (start) | scoring |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &self.rows {
            let mut notes = Vec::new();
            if r.truncated {
                notes.push("truncated".to_string());
            }
            if r.overflow {
                notes.push("overflow".into());
            }
            if let Some(s) = &r.stop_reason
                && s != "final"
            {
                notes.push(s.clone());
            }
            if let Some(e) = &r.error {
                notes.push(format!("error: {}", cell(e, 80)));
            }
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {} + {} | {:.1} | {} | {} | {} | {} | {} |",
                r.task_id,
                r.method.as_str(),
                r.score,
                r.prompt_tokens,
                r.completion_tokens,
                r.wall_ms as f64 / 1000.0,
                r.iterations,
                r.sub_calls,
                notes.join(", "),
                cell(&r.answer, 100),
                cell(&r.score_detail, 100)
            );
        }
        md
    }
}

impl Report {
    /// Size classes in order of size (rows without a class go by their workspace label).
    fn sizes(&self) -> Vec<String> {
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.rows {
            let e = sizes.entry(r.size_key().to_string()).or_insert(u64::MAX);
            *e = (*e).min(r.size_tokens);
        }
        let mut v: Vec<(u64, String)> = sizes.into_iter().map(|(k, t)| (t, k)).collect();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }

    /// Mean score per task kind, one table per size class.
    pub fn by_kind_and_size(&self, methods: &[Method]) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "\n## Mean score by task kind and size\n");
        for size in self.sizes() {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.size_key() == size).collect();
            let tokens: BTreeSet<u64> = rows.iter().map(|r| r.size_tokens).collect();
            let workspaces: BTreeSet<&str> = rows.iter().map(|r| r.workspace.as_str()).collect();
            let names = workspaces.into_iter().collect::<Vec<_>>().join("; ");
            let _ = writeln!(
                md,
                "### {}{names} ({} tokens, est.)\n",
                if names == size {
                    String::new()
                } else {
                    format!("{size}: ")
                },
                tokens
                    .iter()
                    .map(|t| group_digits(*t))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut cells: BTreeMap<(&str, Method), (f64, usize)> = BTreeMap::new();
            for r in &rows {
                let e = cells.entry((r.kind.as_str(), r.method)).or_default();
                e.0 += r.score;
                e.1 += 1;
            }
            let kinds: BTreeSet<&str> = cells.keys().map(|(k, _)| *k).collect();
            header(&mut md, "kind", methods);
            for k in kinds {
                let _ = write!(md, "| {k} |");
                for me in methods {
                    match cells.get(&(k, *me)) {
                        Some((s, n)) => {
                            let _ = write!(md, " {:.2} (n={n}) |", s / *n as f64);
                        }
                        None => md.push_str(" – |"),
                    }
                }
                md.push('\n');
            }
            let _ = write!(md, "| **all** |");
            for me in methods {
                let rs: Vec<&&Row> = rows.iter().filter(|r| r.method == *me).collect();
                if rs.is_empty() {
                    md.push_str(" – |");
                } else {
                    let mean = rs.iter().map(|r| r.score).sum::<f64>() / rs.len() as f64;
                    let wall = rs.iter().map(|r| r.wall_ms as f64).sum::<f64>() / rs.len() as f64;
                    let tok = rs
                        .iter()
                        .map(|r| (r.prompt_tokens + r.completion_tokens) as f64)
                        .sum::<f64>()
                        / rs.len() as f64;
                    let _ = write!(
                        md,
                        " {mean:.2} (n={}; {:.0} tok, {:.1} s per task) |",
                        rs.len(),
                        tok,
                        wall / 1000.0
                    );
                }
            }
            md.push_str("\n\n");
        }
        md
    }

    /// How many runs of each engine method made at least one sub-call, per task kind.
    pub fn sub_calls_by_kind(&self, methods: &[Method]) -> String {
        let rlm: Vec<Method> = methods.iter().copied().filter(|m| m.is_rlm()).collect();
        if rlm.is_empty() {
            return String::new();
        }
        let mut md = String::new();
        let _ = writeln!(
            md,
            "\n## RLM runs that made sub-calls\n\nRuns with at least one sub-call / runs (sub-calls in all).\n"
        );
        let mut cells: BTreeMap<(&str, Method), (usize, usize, u64)> = BTreeMap::new();
        for r in self.rows.iter().filter(|r| r.method.is_rlm()) {
            for k in [r.kind.as_str(), "**all**"] {
                let e = cells.entry((k, r.method)).or_default();
                e.0 += usize::from(r.sub_calls > 0);
                e.1 += 1;
                e.2 += u64::from(r.sub_calls);
            }
        }
        let kinds: BTreeSet<&str> = cells.keys().map(|(k, _)| *k).collect();
        header(&mut md, "kind", &rlm);
        for k in kinds
            .iter()
            .filter(|k| **k != "**all**")
            .chain([&"**all**"])
        {
            let _ = write!(md, "| {k} |");
            for me in &rlm {
                match cells.get(&(*k, *me)) {
                    Some((with, n, total)) => {
                        let _ = write!(md, " {with}/{n} ({total}) |");
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        md
    }

    /// Why each run stopped, per method, counted by the engine's `stop_reason` string.
    pub fn stop_reasons(&self, methods: &[Method]) -> String {
        let mut counts: BTreeMap<(Method, String), usize> = BTreeMap::new();
        for r in &self.rows {
            let reason = match (&r.stop_reason, &r.error) {
                (Some(s), _) => s.clone(),
                (None, Some(_)) => "error".to_string(),
                (None, None) => "(single call)".to_string(),
            };
            *counts.entry((r.method, reason)).or_default() += 1;
        }
        let reasons: BTreeSet<&String> = counts.keys().map(|(_, r)| r).collect();
        let mut md = String::new();
        let _ = writeln!(md, "\n## Stop reasons\n");
        let _ = write!(md, "| method |");
        for r in &reasons {
            let _ = write!(md, " {r} |");
        }
        let _ = write!(md, "\n|---|");
        for _ in &reasons {
            md.push_str("---|");
        }
        md.push('\n');
        for me in methods {
            let _ = write!(md, "| {} |", me.as_str());
            for r in &reasons {
                let n = counts.get(&(*me, (*r).clone())).copied().unwrap_or(0);
                let _ = write!(md, " {n} |");
            }
            md.push('\n');
        }
        md
    }

    /// Answers citing a path that is no file of their workspace, per method.
    pub fn unknown_paths(&self, methods: &[Method]) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "\n## Answers citing paths that are not in the workspace\n\nA path-looking token (`name.rs`, \
             `path:line`) that designates no file of the task's workspace. Answers / answers checked \
             (rows written before this was recorded are not checked); examples.\n\n| method | answers | \
             examples |\n|---|---|---|"
        );
        for me in methods {
            let checked: Vec<&Row> = self
                .rows
                .iter()
                .filter(|r| r.method == *me && r.unknown_paths.is_some())
                .collect();
            let bad: Vec<&&Row> = checked
                .iter()
                .filter(|r| r.unknown_paths.as_ref().is_some_and(|u| !u.is_empty()))
                .collect();
            let examples: Vec<String> = bad
                .iter()
                .take(3)
                .map(|r| {
                    format!(
                        "{}: {}",
                        r.task_id,
                        r.unknown_paths.as_deref().unwrap_or_default().join(", ")
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {}/{} | {} |",
                me.as_str(),
                bad.len(),
                checked.len(),
                cell(&examples.join("; "), 200)
            );
        }
        md
    }
}

/// A table header: the first column, then one per method.
fn header(md: &mut String, first: &str, methods: &[Method]) {
    let _ = write!(md, "| {first} |");
    for me in methods {
        let _ = write!(md, " {} |", me.as_str());
    }
    let _ = write!(md, "\n|---|");
    for _ in methods {
        md.push_str("---|");
    }
    md.push('\n');
}

/// Rows read from several files (`rows-*.jsonl` of a run in parts, or `report.json`s): a later
/// row for the same task and method replaces an earlier one. Returns the rows and how many
/// were replaced.
pub fn merge_rows(parts: Vec<Vec<Row>>) -> (Vec<Row>, usize) {
    let mut out: Vec<Row> = Vec::new();
    let mut at: BTreeMap<(String, Method), usize> = BTreeMap::new();
    let mut replaced = 0;
    for rows in parts {
        for r in rows {
            match at.get(&(r.task_id.clone(), r.method)) {
                Some(&i) => {
                    out[i] = r;
                    replaced += 1;
                }
                None => {
                    at.insert((r.task_id.clone(), r.method), out.len());
                    out.push(r);
                }
            }
        }
    }
    (out, replaced)
}

/// Text made safe for one Markdown table cell, cut to `max` characters.
fn cell(s: &str, max: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    let one = one.replace('|', "\\|");
    if one.chars().count() > max {
        format!("{}…", one.chars().take(max).collect::<String>())
    } else {
        one
    }
}

pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn color(m: Method) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match m {
        Method::Rlm => RGBColor(214, 39, 40),
        Method::RlmNoSubcalls => RGBColor(255, 127, 14),
        Method::Direct => RGBColor(31, 119, 180),
        Method::Retrieval => RGBColor(44, 160, 44),
        Method::RlmNoRecipes => RGBColor(148, 103, 189),
        Method::RlmNoEvidence => RGBColor(140, 86, 75),
    }
}

fn color_name(m: Method) -> &'static str {
    match m {
        Method::Rlm => "red",
        Method::RlmNoSubcalls => "orange",
        Method::Direct => "blue",
        Method::Retrieval => "green",
        Method::RlmNoRecipes => "purple",
        Method::RlmNoEvidence => "brown",
    }
}

/// A font for the plot's labels: DejaVu Sans when installed (`RLM_EVAL_FONT` names another TTF).
fn load_font() -> bool {
    use std::sync::OnceLock;
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let candidates = [
            std::env::var("RLM_EVAL_FONT").unwrap_or_default(),
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into(),
            "/usr/share/fonts/TTF/DejaVuSans.ttf".into(),
            "/usr/share/fonts/dejavu/DejaVuSans.ttf".into(),
        ];
        for c in candidates.iter().filter(|c| !c.is_empty()) {
            if let Ok(bytes) = std::fs::read(c) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    bytes,
                )
                .is_ok()
                {
                    return true;
                }
            }
        }
        false
    })
}

/// Mean score against workspace size (log x axis), one line per method. Labels and a legend are
/// drawn when a font is available; the Markdown report names the colours either way.
pub fn plot(summary: &[Summary], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let fonts = load_font();
    let sizes: Vec<f64> = summary
        .iter()
        .map(|s| s.size_tokens.max(1) as f64)
        .collect();
    let lo = sizes.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = sizes.iter().copied().fold(1.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo / 1.5, hi * 1.5)
    } else {
        (100.0, 1e7)
    };
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if fonts {
        builder
            .caption("score against workspace size", ("sans-serif", 22))
            .x_label_area_size(45)
            .y_label_area_size(55);
    }
    let mut chart = builder
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.05f64)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut mesh = chart.configure_mesh();
    if fonts {
        mesh.x_desc("workspace size (estimated tokens)")
            .y_desc("mean score")
            .x_label_formatter(&|v| {
                if *v >= 1e6 {
                    format!("{:.1}M", v / 1e6)
                } else if *v < 1e3 {
                    format!("{v:.0}")
                } else {
                    format!("{:.0}K", v / 1e3)
                }
            });
    } else {
        mesh.disable_x_axis().disable_y_axis();
    }
    mesh.draw().map_err(|e| anyhow::anyhow!("{e}"))?;
    let methods: BTreeSet<Method> = summary.iter().map(|s| s.method).collect();
    for m in methods {
        let mut pts: Vec<(f64, f64)> = summary
            .iter()
            .filter(|s| s.method == m)
            .map(|s| (s.size_tokens.max(1) as f64, s.mean_score))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = color(m);
        let series = chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if fonts {
            series.label(m.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
            });
        }
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 5, c.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    if fonts {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(task: &str, kind: &str, size: &str, method: Method, score: f64) -> Row {
        Row {
            task_id: task.into(),
            kind: kind.into(),
            size: size.into(),
            workspace: format!("ws-{size}"),
            size_tokens: if size == "1m" { 1_000_000 } else { 100_000 },
            files: 3,
            method,
            score,
            score_detail: String::new(),
            answer: String::new(),
            error: None,
            prompt_tokens: 100,
            cached_tokens: 0,
            completion_tokens: 10,
            cost_usd: None,
            wall_ms: 2000,
            iterations: 1,
            sub_calls: 0,
            stop_reason: None,
            context_tokens: 0,
            max_prompt_tokens: 0,
            truncated: false,
            overflow: false,
            usage: vec![],
            unknown_paths: Some(vec![]),
            question_hash: String::new(),
        }
    }

    #[test]
    fn aggregates_by_kind_size_sub_calls_stops_and_unknown_paths() {
        let mut rows = vec![
            row("a", "top_dir", "100k", Method::Rlm, 1.0),
            row("b", "top_dir", "100k", Method::Rlm, 0.0),
            row("c", "count_files", "1m", Method::Rlm, 0.5),
            row("a", "top_dir", "100k", Method::Retrieval, 0.25),
            row("a", "top_dir", "100k", Method::RlmNoEvidence, 1.0),
        ];
        rows[0].sub_calls = 3;
        rows[0].stop_reason = Some("final".into());
        rows[1].stop_reason = Some("stalled".into());
        rows[2].stop_reason = Some("some_new_reason".into());
        rows[4].stop_reason = Some("final".into());
        rows[2].unknown_paths = Some(vec!["src/nope.rs:3".into()]);
        rows[3].unknown_paths = None;
        // A later part's row for the same task and method replaces the earlier one.
        let mut later = row("b", "top_dir", "100k", Method::Rlm, 0.5);
        later.stop_reason = Some("stalled".into());
        let (rows, replaced) = merge_rows(vec![rows, vec![later]]);
        assert_eq!((rows.len(), replaced), (5, 1));
        let meta = Meta {
            command: "t".into(),
            started: String::new(),
            model: "m".into(),
            base_url: String::new(),
            methods: vec![],
            settings: serde_json::Value::Null,
            wall_s: 0.0,
        };
        let r = Report::new(meta, rows);
        let methods = [Method::Retrieval, Method::Rlm, Method::RlmNoEvidence];
        let by = r.by_kind_and_size(&methods);
        assert!(
            by.find("### 100k").unwrap() < by.find("### 1m").unwrap(),
            "{by}"
        );
        assert!(
            by.contains("| top_dir | 0.25 (n=1) | 0.75 (n=2) | 1.00 (n=1) |"),
            "{by}"
        );
        assert!(by.contains("| count_files | – | 0.50 (n=1) | – |"), "{by}");
        let sub = r.sub_calls_by_kind(&methods);
        assert!(sub.contains("| top_dir | 1/2 (3) | 0/1 (0) |"), "{sub}");
        assert!(sub.contains("| **all** | 1/3 (3) | 0/1 (0) |"), "{sub}");
        assert!(!sub.contains("retrieval"), "{sub}");
        let stops = r.stop_reasons(&methods);
        assert!(
            stops.contains("| method | (single call) | final | some_new_reason | stalled |"),
            "{stops}"
        );
        assert!(stops.contains("| rlm | 0 | 1 | 1 | 1 |"), "{stops}");
        let unknown = r.unknown_paths(&methods);
        assert!(
            unknown.contains("| rlm | 1/3 | c: src/nope.rs:3 |"),
            "{unknown}"
        );
        assert!(unknown.contains("| retrieval | 0/0 |"), "{unknown}");
        let md = r.markdown();
        assert!(md.contains("## Stop reasons") && md.contains("rlm-no-evidence"));
    }

    #[test]
    fn digits_and_cells() {
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(12), "12");
        assert_eq!(cell("a|b\nc", 10), "a\\|b c");
    }
}
