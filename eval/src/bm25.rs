//! A small BM25 over the index's chunks, for the `retrieval` baseline. Identifiers are split
//! into their snake_case and camelCase words (`parseHTTPRequest` -> `parse`, `http`, `request`),
//! and the whole identifier is kept as a term too.

use std::collections::HashMap;

/// Lowercase terms of `text`: each identifier, then its parts when it has several.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        if word.is_empty() {
            continue;
        }
        let parts = split_identifier(word);
        if parts.len() > 1 || parts.first().is_some_and(|p| *p != word.to_lowercase()) {
            out.push(word.to_lowercase());
        }
        out.extend(parts);
    }
    out.retain(|t| t.len() > 1 && !STOP.contains(&t.as_str()));
    for t in &mut out {
        stem(t);
    }
    out
}

/// The crudest stemmer: a plural or third-person `s` goes (`parses` -> `parse`, not `class`).
fn stem(t: &mut String) {
    if t.len() > 3 && t.ends_with('s') && !t.ends_with("ss") {
        t.pop();
    }
}

const STOP: [&str; 24] = [
    "the", "a", "an", "of", "in", "to", "and", "or", "is", "it", "that", "this", "for", "with",
    "as", "be", "by", "on", "are", "which", "what", "every", "answer", "does",
];

/// `snake_case` and `camelCase` parts, lowercased: `HTTPServer_new` -> `http`, `server`, `new`.
pub fn split_identifier(word: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for piece in word.split('_').filter(|p| !p.is_empty()) {
        let chars: Vec<char> = piece.chars().collect();
        let mut cur = String::new();
        for (i, &c) in chars.iter().enumerate() {
            let boundary = i > 0
                && c.is_uppercase()
                && (chars[i - 1].is_lowercase()
                    || chars[i - 1].is_ascii_digit()
                    || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
            if boundary && !cur.is_empty() {
                parts.push(std::mem::take(&mut cur).to_lowercase());
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            parts.push(cur.to_lowercase());
        }
    }
    parts
}

pub struct Bm25 {
    docs: Vec<HashMap<String, u32>>,
    lens: Vec<f64>,
    avg_len: f64,
    df: HashMap<String, u32>,
    k1: f64,
    b: f64,
}

impl Bm25 {
    pub fn new<S: AsRef<str>>(docs: &[S]) -> Bm25 {
        let mut tf = Vec::with_capacity(docs.len());
        let mut lens = Vec::with_capacity(docs.len());
        let mut df: HashMap<String, u32> = HashMap::new();
        for d in docs {
            let mut counts: HashMap<String, u32> = HashMap::new();
            let terms = tokenize(d.as_ref());
            lens.push(terms.len() as f64);
            for t in terms {
                *counts.entry(t).or_default() += 1;
            }
            for t in counts.keys() {
                *df.entry(t.clone()).or_default() += 1;
            }
            tf.push(counts);
        }
        let avg_len = if lens.is_empty() {
            1.0
        } else {
            (lens.iter().sum::<f64>() / lens.len() as f64).max(1.0)
        };
        Bm25 {
            docs: tf,
            lens,
            avg_len,
            df,
            k1: 1.2,
            b: 0.75,
        }
    }

    /// Documents by descending score (only those matching some term), ties by index.
    pub fn rank(&self, query: &str) -> Vec<(usize, f64)> {
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let n = self.docs.len() as f64;
        let mut scores: Vec<(usize, f64)> = self
            .docs
            .iter()
            .enumerate()
            .filter_map(|(i, tf)| {
                let mut s = 0.0;
                for t in &terms {
                    let Some(&f) = tf.get(t) else { continue };
                    let df = f64::from(*self.df.get(t).unwrap_or(&0));
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    let f = f64::from(f);
                    s += idf * f * (self.k1 + 1.0)
                        / (f + self.k1 * (1.0 - self.b + self.b * self.lens[i] / self.avg_len));
                }
                (s > 0.0).then_some((i, s))
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split() {
        assert_eq!(
            split_identifier("parseHTTPRequest"),
            vec!["parse", "http", "request"]
        );
        assert_eq!(split_identifier("read_to_end"), vec!["read", "to", "end"]);
        assert_eq!(split_identifier("Utf8Error"), vec!["utf8", "error"]);
        let t = tokenize("fn read_to_end(buf)");
        assert!(t.contains(&"read_to_end".to_string()) && t.contains(&"read".to_string()));
        assert!(t.contains(&"buf".to_string()) && t.contains(&"fn".to_string()));
    }

    #[test]
    fn ranks_matching_chunks_first() {
        let docs = [
            "fn parse_number(s: &str) -> u32 { s.parse().unwrap() }",
            "struct Config { verbose: bool }",
            "fn count_lines() {} // parse parse",
        ];
        let bm = Bm25::new(&docs);
        let r = bm.rank("Which function parses a number from text?");
        assert_eq!(r[0].0, 0, "{r:?}");
        assert!(!r.iter().any(|(i, _)| *i == 1));
        assert!(bm.rank("zebra").is_empty());
    }
}
