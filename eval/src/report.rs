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
    }
}

fn color_name(m: Method) -> &'static str {
    match m {
        Method::Rlm => "red",
        Method::RlmNoSubcalls => "orange",
        Method::Direct => "blue",
        Method::Retrieval => "green",
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

    #[test]
    fn digits_and_cells() {
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(12), "12");
        assert_eq!(cell("a|b\nc", 10), "a\\|b c");
    }
}
