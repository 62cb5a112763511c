//! The functions `planted_behaviour` tasks plant into real files (see `plant.rs`). Each is real,
//! compiled and tested Rust, so the behaviour a question describes is the behaviour of the code
//! the model reads. When planted, a function's name is replaced by a neutral one (`step_7`); its
//! body uses neutral variable names and no comments, and never mentions its own name.
//!
//! Only top-level `pub fn` items belong here: `plant.rs` reads this file's text with tree-sitter.
#![allow(
    clippy::needless_range_loop,
    clippy::manual_rotate,
    clippy::manual_is_multiple_of
)]

pub fn rotate_left_by(v: &mut [i32], n: usize) {
    let len = v.len();
    if len == 0 {
        return;
    }
    for _ in 0..n % len {
        let first = v[0];
        for i in 1..len {
            v[i - 1] = v[i];
        }
        v[len - 1] = first;
    }
}

pub fn checksum31(data: &[u8]) -> u32 {
    let mut acc: u32 = 17;
    for &b in data {
        acc = acc.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    acc
}

pub fn reverse_words(s: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for w in s.split_whitespace() {
        parts.insert(0, w);
    }
    parts.join(" ")
}

pub fn clamp_all(v: &mut [i64], lo: i64, hi: i64) {
    for x in v.iter_mut() {
        if *x < lo {
            *x = lo;
        } else if *x > hi {
            *x = hi;
        }
    }
}

pub fn run_length(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let mut n = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            n += 1;
        }
        out.push(c);
        out.push_str(&n.to_string());
    }
    out
}

pub fn count_vowels(s: &str) -> usize {
    s.chars()
        .filter(|c| matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u'))
        .count()
}

pub fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

pub fn interleave(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut i = 0;
    while i < a.len() || i < b.len() {
        if let Some(x) = a.get(i) {
            out.push(*x);
        }
        if let Some(y) = b.get(i) {
            out.push(*y);
        }
        i += 1;
    }
    out
}

pub fn luhn_valid(s: &str) -> bool {
    let mut sum = 0;
    let mut second = false;
    for c in s.chars().rev() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if second {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        second = !second;
    }
    !s.is_empty() && sum % 10 == 0
}

pub fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

pub fn is_palindrome(s: &str) -> bool {
    let v: Vec<char> = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let n = v.len();
    (0..n / 2).all(|i| v[i] == v[n - 1 - i])
}

pub fn odd_squares_sum(v: &[i64]) -> i64 {
    v.iter().filter(|x| *x % 2 != 0).map(|x| x * x).sum()
}

pub fn caesar(s: &str, k: u8) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                (b'a' + (c as u8 - b'a' + k % 26) % 26) as char
            } else if c.is_ascii_uppercase() {
                (b'A' + (c as u8 - b'A' + k % 26) % 26) as char
            } else {
                c
            }
        })
        .collect()
}

pub fn dedup_runs(v: &[i32]) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    for &x in v {
        if out.last() != Some(&x) {
            out.push(x);
        }
    }
    out
}

pub fn digital_root(mut n: u64) -> u64 {
    while n >= 10 {
        let mut s = 0;
        while n > 0 {
            s += n % 10;
            n /= 10;
        }
        n = s;
    }
    n
}

pub fn second_largest(v: &[i32]) -> Option<i32> {
    let mut a: Option<i32> = None;
    let mut b: Option<i32> = None;
    for &x in v {
        match a {
            None => a = Some(x),
            Some(m) if x > m => {
                b = a;
                a = Some(x);
            }
            Some(m) if x < m && b.is_none_or(|k| x > k) => b = Some(x),
            _ => {}
        }
    }
    b
}
