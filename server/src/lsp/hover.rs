//! What the index says of the identifier under the cursor (hover, never a model call), the code
//! actions offered on it, and `rlm.explain`, the run that explains it (cached for hover).

use super::protocol::{self, ExplainParams, ExplainResult};
use super::runs::run_result;
use super::{Backend, error, lock, text};
use crate::index::Definition;
use crate::session::Workspace;
use crate::workspace::Snapshot;
use serde_json::{Value, json};
use std::sync::Arc;
use tower_lsp_server::jsonrpc::{self, ErrorCode};
use tower_lsp_server::ls_types::*;

/// The identifier at a position, what the index knows of it, and the key its explanation is
/// cached under.
pub(super) struct SymbolAt {
    pub(super) name: String,
    /// Name, and a hash of the text of the files that define it.
    pub(super) key: (String, u64),
    pub(super) defs: Vec<Definition>,
    pub(super) snap: Arc<Snapshot>,
    pub(super) index_complete: bool,
    /// False for a buffer kept out of the snapshot (see `State::unindexed`): hover only.
    pub(super) indexed: bool,
}

impl Backend {
    /// The identifier at a position, and the key its explanation is cached under: the name and
    /// a hash of the text of every file that defines it (or of the file it is in, when the index
    /// knows no definition).
    pub(super) fn symbol_at(&self, uri: &Uri, position: Position) -> Option<SymbolAt> {
        use std::hash::{Hash, Hasher};
        let snap = self.snapshot()?;
        let path = Self::snapshot_path(&snap, uri);
        let indexed = path.as_deref().and_then(|p| snap.get(p)).is_some();
        let name = match path.as_deref().and_then(|p| snap.get(p)) {
            Some(file) => text::identifier_at(&file.text, position)?.to_string(),
            // A buffer kept out of the snapshot: hover may look up its words, nothing more.
            None => {
                let unindexed = lock(&self.state.unindexed);
                text::identifier_at(unindexed.get(uri)?, position)?.to_string()
            }
        };
        let index = self.index();
        let defs: Vec<Definition> = index
            .as_ref()
            .map(|i| {
                i.current()
                    .symbols(Some(&name), None, None)
                    .into_iter()
                    .filter(|d| d.name == name)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut paths: Vec<&str> = defs.iter().map(|d| d.path.as_str()).collect();
        if paths.is_empty()
            && let Some(p) = &path
        {
            paths.push(p);
        }
        paths.sort_unstable();
        paths.dedup();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        for p in &paths {
            p.hash(&mut h);
            snap.get(p).map(|f| f.text.as_str()).hash(&mut h);
        }
        Some(SymbolAt {
            key: (name.clone(), h.finish()),
            name,
            defs,
            snap,
            index_complete: index.is_some_and(|i| i.is_complete()),
            indexed,
        })
    }

    /// `rlm.explain {uri, position, id?}`: an RLM run on what the symbol under the cursor is
    /// for, where it is defined and who uses it, across every root. Cached for hover.
    pub(super) async fn explain(
        &self,
        arg: Option<&Value>,
        token: Option<ProgressToken>,
    ) -> jsonrpc::Result<ExplainResult> {
        let p: ExplainParams = protocol::params(protocol::Command::Explain, arg)
            .map_err(|e| error(ErrorCode::InvalidParams, e))?;
        let at = self
            .symbol_at(&p.uri, p.position)
            .filter(|at| at.indexed)
            .ok_or_else(|| {
                error(
                    ErrorCode::InvalidParams,
                    "no identifier at that position in a workspace file (hidden and ignored \
                     files are not sent to models)",
                )
            })?;
        // The index's definition sites go into the question.
        let question = Workspace::explain_question(&at.name, &at.defs);
        let title = format!("explain {}", at.name);
        let (ctx, answer) = self
            .run(p.id, title, token, move |ws, runner, tx| async move {
                ws.ask(&runner, &question, Some(tx)).await
            })
            .await?;
        lock(&self.state.explanations).insert(at.key, answer.report.answer.clone());
        Ok(ExplainResult {
            run: run_result(&ctx, &answer),
            symbol: at.name,
        })
    }

    pub(super) fn hover_markdown(&self, params: &HoverParams) -> Option<String> {
        let doc = &params.text_document_position_params;
        let SymbolAt {
            name,
            key,
            defs,
            snap,
            index_complete,
            ..
        } = self.symbol_at(&doc.text_document.uri, doc.position)?;
        let finder = memchr::memmem::Finder::new(name.as_bytes());
        let (mut mentions, mut files) = (0usize, 0usize);
        for f in &snap.files {
            let n = text::count_word(&finder, &f.text);
            if n > 0 {
                mentions += n;
                files += 1;
            }
        }
        if defs.is_empty() && mentions == 0 {
            return None;
        }
        let mut md = String::new();
        for d in defs.iter().take(3) {
            let lang = format!("{:?}", d.language).to_lowercase();
            md.push_str(&format!(
                "```{lang}\n{}\n```\n{} defined at `{}:{}`\n\n",
                d.signature, d.kind, d.path, d.start_line
            ));
        }
        if defs.len() > 3 {
            md.push_str(&format!("… and {} more definitions\n\n", defs.len() - 3));
        }
        let explained = lock(&self.state.explanations).get(&key).cloned();
        let references = mentions.saturating_sub(defs.len());
        md.push_str(&format!(
            "{} definition{} indexed; {references} other mention{} of `{name}` in {files} file{}{}",
            defs.len(),
            if defs.len() == 1 { "" } else { "s" },
            if references == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" },
            if index_complete {
                ""
            } else {
                " (the index is still being built)"
            }
        ));
        match explained {
            Some(text) => md.push_str(&format!(
                "\n\n---\n**Explanation** (rlm.explain):\n\n{text}"
            )),
            None => md.push_str("\n\n*Explain with RLM* (code action) for more."),
        }
        Some(md)
    }

    /// "Explain with RLM" and "Plan a refactor" on an identifier, and "Apply the RLM refactor
    /// plan" while one is pending: the path to the commands for editors without a plugin.
    pub(super) fn code_actions(&self, params: CodeActionParams) -> Option<CodeActionResponse> {
        let uri = params.text_document.uri;
        let position = params.range.start;
        let action = |title: &str, command: &str, args: Value| {
            CodeActionOrCommand::CodeAction(CodeAction {
                title: title.to_string(),
                kind: Some(CodeActionKind::EMPTY),
                command: Some(Command {
                    title: title.to_string(),
                    command: command.into(),
                    arguments: Some(vec![args]),
                }),
                ..CodeAction::default()
            })
        };
        let mut actions = Vec::new();
        // Hidden and ignored buffers get none: their words must not reach a model.
        if let Some(SymbolAt { name, .. }) = self.symbol_at(&uri, position).filter(|at| at.indexed)
        {
            // Without a plugin there is no prompt for an instruction: a general one. The plan
            // is previewed (a document and a question); nothing is applied until the user says so.
            let instruction = format!(
                "Improve `{name}` with the most useful small refactor (clearer names, less \
                 duplication, better error handling), updating every use"
            );
            actions.push(action(
                &format!("Explain `{name}` with RLM"),
                "rlm.explain",
                json!({"uri": uri, "position": position}),
            ));
            actions.push(action(
                &format!("Plan a refactor of `{name}` with RLM"),
                "rlm.planRefactor",
                json!({"instruction": instruction, "uri": uri, "range": params.range, "preview": true}),
            ));
        }
        if let Some(plan) = lock(&self.state.plans).last() {
            let title = format!(
                "Apply the RLM refactor plan ({})",
                plan.instruction.chars().take(60).collect::<String>()
            );
            actions.push(action(&title, "rlm.applyPlan", json!({"id": plan.id})));
        }
        (!actions.is_empty()).then_some(actions)
    }
}
