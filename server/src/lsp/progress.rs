//! Progress of runs: LSP work-done progress (a line of text and a percentage, for any client)
//! and `rlm/progress` (the same with its figures: turn, sub-calls, tokens, cost), both from the
//! engine's events through `session::RunProgress`, which prices nothing itself.

use super::protocol::{RunProgressNotification, RunProgressParams};
use crate::session::ProgressUpdate;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::Progress;
use tower_lsp_server::ls_types::*;

async fn send(client: &Client, token: ProgressToken, value: WorkDoneProgress) {
    client
        .send_notification::<Progress>(ProgressParams {
            token,
            value: ProgressParamsValue::WorkDone(value),
        })
        .await;
}

pub(super) async fn begin_progress(client: &Client, token: ProgressToken, message: String) {
    send(
        client,
        token,
        WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: "rlm: asking".into(),
            cancellable: Some(true),
            message: Some(message),
            percentage: Some(0),
        }),
    )
    .await;
}

pub(super) async fn end_progress(client: &Client, token: ProgressToken, message: String) {
    send(
        client,
        token,
        WorkDoneProgress::End(WorkDoneProgressEnd {
            message: Some(message),
        }),
    )
    .await;
}

/// One step of run `id`: the work-done report (when the run has a token) and `rlm/progress`.
pub(super) async fn report_progress(
    client: &Client,
    token: Option<&ProgressToken>,
    id: &str,
    update: ProgressUpdate,
) {
    if let Some(t) = token {
        send(
            client,
            t.clone(),
            WorkDoneProgress::Report(WorkDoneProgressReport {
                cancellable: Some(true),
                message: Some(update.message.clone()),
                percentage: Some(update.percentage),
            }),
        )
        .await;
    }
    client
        .send_notification::<RunProgressNotification>(RunProgressParams {
            id: id.to_string(),
            progress: update.into(),
        })
        .await;
}
