//! What the root model sees of a cell's output: head and tail, with the true length stated, so a
//! noisy cell cannot flood a small model's window.

/// Keeps about `max_chars` characters: 60% from the head, the rest from the tail, cut at line
/// boundaries where one is near. `total_bytes` is the size of the full output, which is larger
/// than `text` when the worker already kept only head and tail. Trailing whitespace is dropped.
pub fn truncate_for_model(text: &str, total_bytes: usize, max_chars: usize) -> String {
    let complete = total_bytes <= text.len();
    let text = text.trim_end();
    let n = text.chars().count();
    if n <= max_chars && complete {
        return text.to_string();
    }
    let total = total_bytes.max(text.len());
    let head_n = max_chars * 3 / 5;
    let tail_n = (max_chars - head_n).min(n.saturating_sub(head_n));
    let head = snap_back_to_line(take_chars(text, head_n));
    let tail = snap_forward_to_line(take_last_chars(text, tail_n));
    let omitted = total.saturating_sub(head.len() + tail.len());
    format!(
        "{head}\n... [{omitted} characters omitted; the full output was {total} characters. Print less: filter, count, or slice] ...\n{tail}"
    )
}

fn take_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn take_last_chars(s: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    match s.char_indices().rev().nth(n - 1) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// Drops a partial last line when a newline is close enough that little is lost.
fn snap_back_to_line(s: &str) -> &str {
    match s.rfind('\n') {
        Some(i) if s.len() - i < 200 => &s[..i],
        _ => s,
    }
}

fn snap_forward_to_line(s: &str) -> &str {
    match s.find('\n') {
        Some(i) if i < 200 => &s[i + 1..],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn short_output_is_unchanged() {
        assert_eq!(truncate_for_model("a\nb\n", 4, 100), "a\nb");
        let s = "é and ü\n";
        assert_eq!(truncate_for_model(s, s.len(), 100), "é and ü");
    }

    #[test]
    fn long_output_keeps_head_and_tail_on_line_boundaries() {
        let text: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let n = text.len();
        expect![[r#"
            line 1
            line 2
            line 3
            line 4
            line 5
            line 6
            ... [239 characters omitted; the full output was 311 characters. Print less: filter, count, or slice] ...
            line 37
            line 38
            line 39
            line 40"#]]
        .assert_eq(&truncate_for_model(&text, n, 80));
    }

    #[test]
    fn states_the_true_length_when_the_worker_already_cut() {
        let out = truncate_for_model("abc", 100_000_000, 1000);
        assert!(
            out.contains("the full output was 100000000 characters"),
            "{out}"
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "é".repeat(1000);
        let out = truncate_for_model(&text, 1000, 10);
        assert!(out.starts_with("éééééé\n"), "{out}");
    }
}
