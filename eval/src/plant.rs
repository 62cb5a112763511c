//! `planted_behaviour`: a function whose name says nothing about it (`step_7`), with no comment,
//! planted at a top-level position of a real file of the workspace; the question describes its
//! behaviour in words. The functions are the compiled and tested ones of `behaviours.rs`; the
//! planted text travels in the task file as an [`Overlay`], so a run needs no generator state.

use crate::facts;
use crate::task::{Overlay, stable_hash};

/// A well-mixed hash (FNV-1a then splitmix64's finalizer): strings that differ only at their
/// start still order independently.
fn mixed_hash(s: &str) -> u64 {
    let mut z = stable_hash(s).wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// The source the planted functions are cut from.
const SOURCE: &str = include_str!("behaviours.rs");

/// Each function of `behaviours.rs` and what it does, in words (no identifiers).
pub const BEHAVIOURS: [(&str, &str); 16] = [
    (
        "rotate_left_by",
        "rotates the elements of a slice of integers in place to the left by a given number of \
         positions, wrapping around (the first elements move to the end)",
    ),
    (
        "checksum31",
        "computes a 32-bit checksum of a slice of bytes: starting from 17, for each byte it \
         multiplies the running value by 31 and adds the byte, wrapping on overflow",
    ),
    (
        "reverse_words",
        "returns its input text with the order of its whitespace-separated words reversed (each \
         word itself unchanged), joined by single spaces",
    ),
    (
        "clamp_all",
        "limits every element of a slice of 64-bit integers, in place, to a range given by a lower \
         and an upper bound (smaller values become the lower bound, larger ones the upper bound)",
    ),
    (
        "run_length",
        "run-length encodes a string: each run of one repeated character becomes the character \
         followed by the run's length in decimal (\"aaab\" becomes \"a3b1\")",
    ),
    (
        "count_vowels",
        "counts the vowels (a, e, i, o and u, in either case) in a string",
    ),
    (
        "gcd",
        "computes the greatest common divisor of two unsigned 64-bit integers by Euclid's \
         algorithm (repeated remainders)",
    ),
    (
        "interleave",
        "interleaves two slices of integers into a new vector: the first element of the first \
         slice, the first of the second, the second of the first, and so on, then what is left of \
         the longer one",
    ),
    (
        "luhn_valid",
        "checks a string of decimal digits with the Luhn algorithm: every second digit from the \
         right is doubled (minus 9 when the double exceeds 9) and the sum of all digits must be a \
         multiple of 10",
    ),
    (
        "collatz_steps",
        "counts the steps a positive integer takes to reach 1 when each step halves an even \
         number and turns an odd number n into 3n + 1",
    ),
    (
        "is_palindrome",
        "tells whether a string reads the same backwards as forwards when only its letters and \
         digits are compared, ignoring case",
    ),
    (
        "odd_squares_sum",
        "adds up the squares of the odd numbers in a slice of 64-bit integers",
    ),
    (
        "caesar",
        "shifts every ASCII letter of a string forward in the alphabet by a given number of \
         places, wrapping from z around to a and keeping upper and lower case; other characters \
         stay as they are",
    ),
    (
        "dedup_runs",
        "returns a copy of a slice of integers without consecutive repeated elements, keeping the \
         first of each run (1, 1, 2, 1 becomes 1, 2, 1)",
    ),
    (
        "digital_root",
        "repeatedly adds up the decimal digits of an unsigned integer until a single digit \
         remains, and returns that digit",
    ),
    (
        "second_largest",
        "returns the second largest distinct value in a slice of integers, or nothing when there \
         is no such value",
    ),
];

/// Function name -> its source text in `behaviours.rs`.
static FUNCTIONS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    let f = facts::analyze("behaviours.rs", SOURCE);
    let mut out = Vec::new();
    for fact in &f.fns {
        // The item's text: from its `pub fn` line to the closing brace at column 0.
        let start = SOURCE
            .lines()
            .take(fact.line as usize - 1)
            .map(|l| l.len() + 1)
            .sum::<usize>();
        let rest = &SOURCE[start..];
        let end = rest.find("\n}\n").map_or(rest.len(), |i| i + 3);
        out.push((fact.name.clone(), rest[..end].to_string()));
    }
    out
});

/// The source of the function `key` with its name replaced by `name`.
pub fn planted_source(key: &str, name: &str) -> Option<String> {
    let (_, text) = FUNCTIONS.iter().find(|(k, _)| k == key)?;
    Some(text.replacen(&format!("fn {key}("), &format!("fn {name}("), 1))
}

/// Names that say nothing about a function.
const NAME_STEMS: [&str; 8] = [
    "step",
    "apply_pass",
    "stage",
    "phase",
    "pass",
    "run_step",
    "handle",
    "op",
];

/// A neutral name for the `i`-th plant of a workspace, not used as a word anywhere in it.
pub fn neutral_name(seed: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let h = mixed_hash(seed);
    for k in 0..1000u64 {
        let stem = NAME_STEMS[((h + k) % NAME_STEMS.len() as u64) as usize];
        let n = 2 + (h / 7 + k * 13) % 97;
        let name = format!("{stem}_{n}");
        if !taken(&name) {
            return name;
        }
    }
    format!("step_{h:x}")
}

/// One planted function: where, what, and the overlay that puts it there.
#[derive(Debug, Clone)]
pub struct Plant {
    pub key: &'static str,
    pub description: &'static str,
    pub name: String,
    pub overlay: Overlay,
}

/// Chooses up to `n` plants for a workspace: distinct behaviours, each in another `.rs` file that
/// parses cleanly, at a top-level position, under a neutral name no file of the workspace uses.
/// `texts` are the workspace's files `(path, text)`; `seed` makes the choice per workspace.
pub fn choose(texts: &[(&str, &str)], seed: &str, n: usize) -> Vec<Plant> {
    let mut behaviours: Vec<_> = BEHAVIOURS.iter().collect();
    behaviours.sort_by_key(|(k, _)| (mixed_hash(&format!("{seed}/{k}")), *k));
    let words: BTreeSet<&str> = texts
        .iter()
        .flat_map(|(_, t)| {
            t.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.contains('_'))
        })
        .collect();
    // Files worth planting into: Rust, real size, parsed without errors, with a gap; library
    // code first (under `src/`, not a test, bench or example).
    let mut files: Vec<(&str, &str)> = texts
        .iter()
        .filter(|(p, t)| p.ends_with(".rs") && (2_000..200_000).contains(&t.len()))
        .copied()
        .collect();
    let library =
        |p: &str| p.contains("src/") && !["test", "bench", "example"].iter().any(|w| p.contains(w));
    files.sort_by_key(|(p, _)| (!library(p), mixed_hash(&format!("{seed}@{p}")), *p));
    let mut used_files = BTreeSet::new();
    let mut used_names: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for (key, description) in behaviours {
        if out.len() >= n {
            break;
        }
        let name = neutral_name(&format!("{seed}/{key}"), &|s| {
            words.contains(s) || used_names.contains(s)
        });
        let Some(code) = planted_source(key, &name) else {
            continue;
        };
        let Some((path, text, line)) = files.iter().find_map(|(p, t)| {
            if used_files.contains(p) || !facts::parses_cleanly(t) {
                return None;
            }
            let gaps = facts::top_level_gaps(t);
            if gaps.is_empty() {
                return None;
            }
            let g = gaps[(mixed_hash(&format!("{seed}/{key}/{p}")) % gaps.len() as u64) as usize];
            Some((*p, *t, g))
        }) else {
            break;
        };
        let overlay = Overlay {
            path: path.to_string(),
            line,
            insert: format!("\n{code}\n"),
            base_hash: format!("{:016x}", stable_hash(text)),
        };
        used_files.insert(path);
        used_names.insert(name.clone());
        out.push(Plant {
            key,
            description,
            name,
            overlay,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviours as b;

    #[test]
    fn every_behaviour_has_its_function_and_the_reverse() {
        let keys: BTreeSet<&str> = BEHAVIOURS.iter().map(|(k, _)| *k).collect();
        let fns: BTreeSet<&str> = FUNCTIONS.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, fns);
        assert!(keys.len() >= 8);
        for (key, _) in BEHAVIOURS {
            let src = planted_source(key, "step_7").unwrap();
            assert!(src.starts_with("pub fn step_7("), "{src}");
            assert!(src.ends_with("}\n"), "{src}");
            assert!(
                !src.contains(key),
                "the body never names the behaviour: {src}"
            );
            assert!(!src.contains("//"), "no comments: {src}");
            assert!(facts::parses_cleanly(&src), "{src}");
            let f = facts::analyze("x.rs", &src);
            assert_eq!(f.fns.len(), 1, "{src}");
        }
    }

    #[test]
    fn the_planted_code_does_what_the_question_says() {
        let mut v = [1, 2, 3, 4, 5];
        b::rotate_left_by(&mut v, 7);
        assert_eq!(v, [3, 4, 5, 1, 2]);
        assert_eq!(b::checksum31(b""), 17);
        assert_eq!(b::checksum31(b"a"), 17 * 31 + 97);
        assert_eq!(b::reverse_words("one  two three"), "three two one");
        let mut w = [-5, 3, 99];
        b::clamp_all(&mut w, 0, 10);
        assert_eq!(w, [0, 3, 10]);
        assert_eq!(b::run_length("aaab"), "a3b1");
        assert_eq!(b::count_vowels("hEllo wOrld"), 3);
        assert_eq!(b::gcd(84, 36), 12);
        assert_eq!(
            b::interleave(&[1, 3, 5, 7], &[2, 4]),
            vec![1, 2, 3, 4, 5, 7]
        );
        assert!(b::luhn_valid("79927398713"));
        assert!(!b::luhn_valid("79927398710"));
        assert_eq!(b::collatz_steps(6), 8);
        assert!(b::is_palindrome("A man, a plan, a canal: Panama"));
        assert!(!b::is_palindrome("abc"));
        assert_eq!(b::odd_squares_sum(&[1, 2, 3, -5]), 1 + 9 + 25);
        assert_eq!(b::caesar("Xyz, abc!", 3), "Abc, def!");
        assert_eq!(b::dedup_runs(&[1, 1, 2, 1]), vec![1, 2, 1]);
        assert_eq!(b::digital_root(9875), 2);
        assert_eq!(b::second_largest(&[4, 9, 9, 7]), Some(7));
        assert_eq!(b::second_largest(&[3, 3]), None);
    }

    const FILE: &str = "use std::fmt;\n\npub struct Holder {\n    v: u32,\n}\n\nimpl Holder {\n    pub fn get(&self) -> u32 {\n        self.v\n    }\n}\n\nfn tail() -> u8 {\n    let apply_pass_5 = 1;\n    apply_pass_5\n}\n";

    fn workspace() -> Vec<(String, String)> {
        (0..3)
            .map(|i| {
                let text = FILE.replace("Holder", &format!("Holder{i}")) + &"// pad\n".repeat(300);
                (format!("src/m{i}.rs"), text)
            })
            .chain([("README.md".to_string(), "step_7".to_string())])
            .collect()
    }

    #[test]
    fn plants_are_distinct_at_top_level_and_parse() {
        let ws = workspace();
        let texts: Vec<(&str, &str)> = ws.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let plants = choose(&texts, "seed", 3);
        assert_eq!(plants.len(), 3);
        let files: BTreeSet<&str> = plants.iter().map(|p| p.overlay.path.as_str()).collect();
        assert_eq!(files.len(), 3, "one plant per file");
        let keys: BTreeSet<&str> = plants.iter().map(|p| p.key).collect();
        assert_eq!(keys.len(), 3, "distinct behaviours");
        for p in &plants {
            assert!(p.name != "step_7" && p.name != "apply_pass_5", "{}", p.name);
            let (_, text) = texts.iter().find(|(f, _)| *f == p.overlay.path).unwrap();
            let planted = p.overlay.apply(text).unwrap();
            assert!(facts::parses_cleanly(&planted), "{planted}");
            let f = facts::analyze(&p.overlay.path, &planted);
            let g = f.fns.iter().find(|f| f.name == p.name).expect("planted");
            assert!(g.parent.is_none(), "at the top level");
            assert!(g.doc.is_empty());
        }
        // Deterministic.
        let again = choose(&texts, "seed", 3);
        assert_eq!(
            plants.iter().map(|p| &p.overlay).collect::<Vec<_>>(),
            again.iter().map(|p| &p.overlay).collect::<Vec<_>>()
        );
        // Not more plants than files to put them in.
        assert_eq!(choose(&texts, "seed", 5).len(), 3);
    }
}
