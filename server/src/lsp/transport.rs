//! The frames between the client and the protocol layer. `tower-lsp-server` stops reading at the
//! first message it cannot decode (its framed reader ends after an error), so one malformed
//! message would leave every later request unanswered. Frames are checked here first: a body
//! that is not a JSON-RPC message is answered with a JSON-RPC error (`-32700` parse error,
//! `-32600` invalid request; `id` null when none can be read) and never reaches the protocol
//! layer, which keeps reading. A request for a `$/` method is answered here too: the protocol
//! layer drops its own "method not found" for those, which would leave the request unanswered.
//!
//! The pumps also say when the client is done (`exit` passed on, or its input ended): a handler
//! waiting for the client's answer to a request of the server's would otherwise keep the
//! protocol layer from ever returning (see `serve`).

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// The largest body accepted (a whole file sent with `didOpen` fits easily).
const MAX_BODY: usize = 256 << 20;

/// Streams for the protocol layer: `(input, output)` ends that it reads and writes, with pumps
/// between them and the real `input`/`output` running in the background; and a receiver that
/// resolves once the client is done (`exit` passed on, or its input ended or failed).
pub fn checked<I, O>(
    input: I,
    output: O,
) -> (
    tokio::io::DuplexStream,
    tokio::io::DuplexStream,
    oneshot::Receiver<()>,
)
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (server_in, pump_in) = tokio::io::duplex(1 << 20);
    let (pump_out, server_out) = tokio::io::duplex(1 << 20);
    let (errors_tx, errors_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        read_client(input, pump_in, errors_tx).await;
        let _ = done_tx.send(());
    });
    tokio::spawn(write_client(server_out, output, errors_rx));
    (server_in, pump_out, done_rx)
}

/// Reads the client's frames; passes good ones on, answers bad ones through `errors`. Returns
/// when the client's input ends, or after passing `exit` on (nothing after it is read).
async fn read_client<I: AsyncRead + Unpin>(
    input: I,
    mut server: tokio::io::DuplexStream,
    errors: mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut input = BufReader::new(input);
    loop {
        let body = match read_frame(&mut input).await {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("reading a message from the client: {e}");
                let reply = error_response(Value::Null, -32700, &e);
                let _ = errors.send(frame_bytes(reply.as_bytes()));
                continue;
            }
        };
        match check(&body) {
            Ok(Checked::Pass) => {
                if server.write_all(&frame_bytes(&body)).await.is_err() {
                    break;
                }
            }
            Ok(Checked::Exit) => {
                // The protocol layer stops reading after `exit`; so does this pump. Its input is
                // left open: the protocol layer ends on `exit` itself.
                let _ = server.write_all(&frame_bytes(&body)).await;
                return;
            }
            Err(reply) => {
                tracing::warn!(
                    "answered a malformed message: {}",
                    String::from_utf8_lossy(&reply)
                );
                let _ = errors.send(frame_bytes(&reply));
            }
        }
    }
    // The client is gone: the protocol layer sees its input end.
    let _ = server.shutdown().await;
}

/// Writes the protocol layer's frames to the client, and the error replies between them (never
/// inside one).
async fn write_client<O: AsyncWrite + Unpin>(
    server: tokio::io::DuplexStream,
    mut output: O,
    mut errors: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    let mut server = BufReader::new(server);
    let mut errors_open = true;
    loop {
        tokio::select! {
            f = read_frame(&mut server) => match f {
                Ok(Some(body)) => {
                    if output.write_all(&frame_bytes(&body)).await.is_err() {
                        return;
                    }
                }
                _ => break,
            },
            e = errors.recv(), if errors_open => match e {
                Some(bytes) => {
                    if output.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => errors_open = false,
            },
        }
        let _ = output.flush().await;
    }
    let _ = output.flush().await;
}

/// One frame's body: headers up to the blank line (`Content-Length` required), then the body.
/// `Ok(None)` at the end of the stream.
async fn read_frame<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut len: Option<usize> = None;
    let mut any = false;
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading headers: {e}"))?;
        if n == 0 {
            return if any {
                Err("the stream ended inside a message's headers".into())
            } else {
                Ok(None)
            };
        }
        any = true;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse().ok();
        }
    }
    let len = len.ok_or("a message without a valid Content-Length header")?;
    if len > MAX_BODY {
        return Err(format!(
            "a message of {len} bytes is over the {MAX_BODY}-byte limit"
        ));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)
        .await
        .map_err(|e| format!("reading a body of {len} bytes: {e}"))?;
    Ok(Some(body))
}

/// A message the protocol layer can decode.
#[derive(Debug, PartialEq)]
enum Checked {
    Pass,
    /// The `exit` notification: the last message the protocol layer reads.
    Exit,
}

/// `Ok` for a JSON-RPC 2.0 message the protocol layer can decode and answers; else the error
/// reply.
fn check(body: &[u8]) -> Result<Checked, Vec<u8>> {
    let reply = |id: Value, code: i64, why: &str| Err(error_response(id, code, why).into_bytes());
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return reply(Value::Null, -32700, &format!("Parse error: {e}")),
    };
    let Some(obj) = v.as_object() else {
        return reply(
            Value::Null,
            -32600,
            "Invalid request: a message must be a JSON object",
        );
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let id_ok = matches!(id, Value::Null | Value::String(_)) || id.as_i64().is_some();
    let is_request = obj.get("method").is_some_and(Value::is_string);
    let is_response = obj.contains_key("result") || obj.contains_key("error");
    let version_ok = obj.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let params_ok = obj
        .get("params")
        .is_none_or(|p| p.is_object() || p.is_array() || p.is_null());
    if !version_ok || !id_ok || !(is_request || is_response) || !params_ok {
        let id = if id_ok { id } else { Value::Null };
        return reply(
            id,
            -32600,
            "Invalid request: expected {\"jsonrpc\": \"2.0\", \"method\": string, \"id\"?: \
             number or string, \"params\"?: object or array}",
        );
    }
    let method = obj
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !id.is_null() && method.starts_with("$/") {
        // No `$/` method of LSP is a request; tower-lsp-server would swallow the error.
        return reply(id, -32601, &format!("Method not found: {method}"));
    }
    if method == "exit" {
        // tower-lsp-server stops reading at `exit`, with an id or without.
        return Ok(Checked::Exit);
    }
    Ok(Checked::Pass)
}

fn error_response(id: Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

fn frame_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Option<(Value, i64)> {
        check(body.as_bytes()).err().map(|r| {
            let v: Value = serde_json::from_slice(&r).unwrap();
            (v["id"].clone(), v["error"]["code"].as_i64().unwrap())
        })
    }

    #[test]
    fn bad_messages_get_the_right_error() {
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#),
            None
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#),
            None
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":"a","result":null}"#), None);
        assert_eq!(code("{this is not json"), Some((Value::Null, -32700)));
        assert_eq!(code("[1, 2]"), Some((Value::Null, -32600)));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":7}"#),
            Some((json!(7), -32600))
        );
        assert_eq!(code(r#"{"id":7,"method":"x"}"#), Some((json!(7), -32600)));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#),
            Some((Value::Null, -32600))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":3,"method":"x","params":5}"#),
            Some((json!(3), -32600))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":"q","method":"$/unknown","params":{}}"#),
            Some((json!("q"), -32601))
        );
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}"#),
            Ok(Checked::Pass)
        );
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","method":"exit"}"#),
            Ok(Checked::Exit)
        );
        assert_eq!(
            check(br#"{"jsonrpc":"2.0","id":4,"method":"exit"}"#),
            Ok(Checked::Exit)
        );
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_garbage_is_an_error() {
        let data =
            b"Content-Length: 2\r\n\r\n{}Content-Type: x\r\n\r\nContent-Length: 3\r\n\r\n[1]";
        let mut r = BufReader::new(&data[..]);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"{}");
        assert!(read_frame(&mut r).await.is_err());
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"[1]");
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }
}
