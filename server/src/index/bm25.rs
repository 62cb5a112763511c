//! BM25 ranking over text documents (the index's chunks), as an inverted index: term ->
//! postings `(document, term frequency)`. Building tokenizes documents in parallel; a query
//! touches only the postings of its own terms, so ranking 100K chunks takes milliseconds.
//!
//! Identifiers are split into their snake_case and camelCase words (`parseHTTPRequest` ->
//! `parse`, `http`, `request`), and the whole identifier is kept as a term too. Used by the
//! REPL's `search()` and by the evaluation's `retrieval` baseline.

use rayon::prelude::*;
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

/// A BM25 index (k1 = 1.2, b = 0.75) over a fixed list of documents.
pub struct Bm25 {
    /// Term -> its row in `postings`.
    terms: HashMap<String, u32>,
    /// Per term: `(document, frequency)`, documents ascending.
    postings: Vec<Vec<(u32, u32)>>,
    /// Terms per document.
    lens: Vec<u32>,
    avg_len: f64,
    k1: f64,
    b: f64,
}

impl std::fmt::Debug for Bm25 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25")
            .field("documents", &self.lens.len())
            .field("terms", &self.terms.len())
            .finish_non_exhaustive()
    }
}

/// One document's distinct terms with their counts, and its length in terms.
fn term_counts(doc: &str) -> (u32, Vec<(String, u32)>) {
    let mut terms = tokenize(doc);
    let len = terms.len() as u32;
    terms.sort_unstable();
    let mut counts: Vec<(String, u32)> = Vec::new();
    for t in terms {
        match counts.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => counts.push((t, 1)),
        }
    }
    (len, counts)
}

impl Bm25 {
    /// Indexes `docs` (tokenized in parallel on rayon's pool).
    pub fn new<S: AsRef<str> + Sync>(docs: &[S]) -> Bm25 {
        let counted: Vec<(u32, Vec<(String, u32)>)> = docs
            .par_iter()
            .with_min_len(64)
            .map(|d| term_counts(d.as_ref()))
            .collect();
        Bm25::from_counts(counted)
    }

    /// Indexes documents produced on the fly (`doc(i)` for `i` in `0..n`, in parallel): for
    /// documents assembled from pieces, without keeping them all in memory.
    pub fn from_fn(n: usize, doc: impl Fn(usize) -> String + Sync) -> Bm25 {
        let counted: Vec<(u32, Vec<(String, u32)>)> = (0..n)
            .into_par_iter()
            .with_min_len(64)
            .map(|i| term_counts(&doc(i)))
            .collect();
        Bm25::from_counts(counted)
    }

    fn from_counts(counted: Vec<(u32, Vec<(String, u32)>)>) -> Bm25 {
        let mut terms: HashMap<String, u32> = HashMap::new();
        let mut postings: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut lens = Vec::with_capacity(counted.len());
        for (doc, (len, counts)) in counted.into_iter().enumerate() {
            lens.push(len);
            for (term, tf) in counts {
                let next = postings.len() as u32;
                let id = *terms.entry(term).or_insert(next);
                if id == next {
                    postings.push(Vec::new());
                }
                postings[id as usize].push((doc as u32, tf));
            }
        }
        let avg_len = if lens.is_empty() {
            1.0
        } else {
            (lens.iter().map(|&l| f64::from(l)).sum::<f64>() / lens.len() as f64).max(1.0)
        };
        Bm25 {
            terms,
            postings,
            lens,
            avg_len,
            k1: 1.2,
            b: 0.75,
        }
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Distinct terms.
    pub fn vocabulary(&self) -> usize {
        self.terms.len()
    }

    /// Terms in all documents (with repeats).
    pub fn total_terms(&self) -> u64 {
        self.lens.iter().map(|&l| u64::from(l)).sum()
    }

    /// Documents by descending score (only those matching some term), ties by index.
    pub fn rank(&self, query: &str) -> Vec<(usize, f64)> {
        let mut scores = self.scores(query);
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores
    }

    /// The best `k` documents of [`Bm25::rank`], in the same order.
    pub fn top(&self, query: &str, k: usize) -> Vec<(usize, f64)> {
        let mut scores = self.scores(query);
        let order = |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < scores.len() {
            if k == 0 {
                return Vec::new();
            }
            scores.select_nth_unstable_by(k - 1, order);
            scores.truncate(k);
        }
        scores.sort_by(order);
        scores
    }

    /// `(document, score)` of every document matching a term of `query`, in document order.
    fn scores(&self, query: &str) -> Vec<(usize, f64)> {
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let n = self.lens.len() as f64;
        // Dense scores, and the documents touched (every added score is positive).
        let mut acc = vec![0.0f64; self.lens.len()];
        let mut touched: Vec<u32> = Vec::new();
        for t in &terms {
            let Some(&id) = self.terms.get(t) else {
                continue;
            };
            let list = &self.postings[id as usize];
            let df = list.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, f) in list {
                let f = f64::from(f);
                let len = f64::from(self.lens[doc as usize]);
                let s = idf * f * (self.k1 + 1.0)
                    / (f + self.k1 * (1.0 - self.b + self.b * len / self.avg_len));
                let slot = &mut acc[doc as usize];
                if *slot == 0.0 {
                    touched.push(doc);
                }
                *slot += s;
            }
        }
        let mut out: Vec<(usize, f64)> = touched
            .into_iter()
            .map(|d| (d as usize, acc[d as usize]))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        out.sort_unstable_by_key(|(d, _)| *d);
        out
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

    /// The scores of the plain formula, document by document (the index before this one).
    fn reference(docs: &[&str], query: &str) -> Vec<(usize, f64)> {
        let tf: Vec<HashMap<String, u32>> = docs
            .iter()
            .map(|d| {
                let mut m = HashMap::new();
                for t in tokenize(d) {
                    *m.entry(t).or_insert(0) += 1;
                }
                m
            })
            .collect();
        let lens: Vec<f64> = docs.iter().map(|d| tokenize(d).len() as f64).collect();
        let avg = (lens.iter().sum::<f64>() / lens.len() as f64).max(1.0);
        let n = docs.len() as f64;
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let mut out: Vec<(usize, f64)> = (0..docs.len())
            .filter_map(|i| {
                let mut s = 0.0;
                for t in &terms {
                    let Some(&f) = tf[i].get(t) else { continue };
                    let df = tf.iter().filter(|m| m.contains_key(t)).count() as f64;
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    let f = f64::from(f);
                    s += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * lens[i] / avg));
                }
                (s > 0.0).then_some((i, s))
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    #[test]
    fn inverted_index_scores_equal_the_plain_formula() {
        let docs = [
            "src/parser.rs\nparse_expr\nfn parse_expr(tokens: &[Token]) -> Expr { parse_term(tokens) }",
            "src/lexer.rs\nTokenizer\npub struct Tokenizer { pos: usize }",
            "src/lexer.rs\nnext_token\nfn next_token(&mut self) -> Option<Token> { None }",
            "README.md\nUsage\nRun the parser on a file; tokens are printed.",
            "",
            "src/parser.rs\nParseError\nenum ParseError { UnexpectedToken(Token), Eof }",
        ];
        let bm = Bm25::new(&docs);
        assert_eq!(bm.len(), docs.len());
        for q in [
            "parse tokens",
            "ParseError unexpected token",
            "where is the tokenizer",
            "zebra",
            "",
        ] {
            let got = bm.rank(q);
            let want = reference(&docs, q);
            assert_eq!(got.len(), want.len(), "{q}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0, "{q}: {got:?} vs {want:?}");
                assert!((g.1 - w.1).abs() < 1e-9, "{q}: {got:?} vs {want:?}");
            }
            for k in 0..=docs.len() + 1 {
                let top = bm.top(q, k);
                assert_eq!(top, got[..k.min(got.len())].to_vec(), "{q} top {k}");
            }
        }
        let built = Bm25::from_fn(docs.len(), |i| docs[i].to_string());
        assert_eq!(built.rank("parse tokens"), bm.rank("parse tokens"));
    }

    #[test]
    fn ties_keep_document_order() {
        let bm = Bm25::new(&["alpha beta", "gamma", "alpha beta", "alpha beta"]);
        let r = bm.top("alpha", 2);
        assert_eq!(r.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
        assert!(Bm25::new::<&str>(&[]).rank("alpha").is_empty());
    }
}
