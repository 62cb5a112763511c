//! Bounded capture of a cell's output: the head and the tail are kept, the middle is counted.
//!
//! Memory stays bounded (`head_cap + 2 * tail_cap` bytes) however much is printed, and each write
//! costs time proportional to the bytes kept, not to what was printed before.

/// One stream (stdout or stderr) of one cell.
#[derive(Debug, Clone)]
pub struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: String,
    /// Set once anything went past the head: later writes never go back to the head.
    head_full: bool,
    /// The most recent bytes after the head; trimmed to `tail_cap` lazily (at `2 * tail_cap`).
    tail: String,
    total: u64,
}

impl Capture {
    /// Keeps up to `cap` bytes: half at the head, half at the tail.
    pub fn new(cap: usize) -> Capture {
        let head_cap = cap / 2;
        Capture {
            head_cap,
            tail_cap: cap - head_cap,
            head: String::new(),
            head_full: false,
            tail: String::new(),
            total: 0,
        }
    }

    pub fn clear(&mut self) {
        self.head.clear();
        self.tail = String::new();
        self.head_full = false;
        self.total = 0;
    }

    /// Bytes written since the last `clear`, including the dropped ones.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn push(&mut self, mut s: &str) {
        self.total += s.len() as u64;
        if !self.head_full {
            let room = self.head_cap - self.head.len();
            if s.len() <= room {
                self.head.push_str(s);
                return;
            }
            let take = floor_char_boundary(s, room);
            self.head.push_str(&s[..take]);
            s = &s[take..];
            self.head_full = true;
        }
        if s.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .push_str(&s[ceil_char_boundary(s, s.len() - self.tail_cap)..]);
        } else {
            self.tail.push_str(s);
            if self.tail.len() > 2 * self.tail_cap {
                let cut = ceil_char_boundary(&self.tail, self.tail.len() - self.tail_cap);
                self.tail.drain(..cut);
            }
        }
    }

    /// Bytes `finish` would keep with an unlimited budget.
    fn kept_len(&self) -> usize {
        self.head.len() + self.tail.len().min(self.tail_cap)
    }

    /// The captured text within `budget` bytes (plus a marker line when bytes were dropped).
    pub fn finish(&self, budget: usize) -> String {
        let tail = &self.tail
            [ceil_char_boundary(&self.tail, self.tail.len().saturating_sub(self.tail_cap))..];
        let kept = self.head.len() + tail.len();
        if kept as u64 == self.total && kept <= budget {
            let mut out = String::with_capacity(kept);
            out.push_str(&self.head);
            out.push_str(tail);
            return out;
        }
        // Share the budget between head and tail, giving what one side does not need to the other.
        let half = budget / 2;
        let (head_budget, tail_budget) = if self.head.len() < half {
            (self.head.len(), budget - self.head.len())
        } else if tail.len() < budget - half {
            (budget - tail.len(), tail.len())
        } else {
            (half, budget - half)
        };
        let head = &self.head[..floor_char_boundary(&self.head, head_budget)];
        let tail = &tail[ceil_char_boundary(tail, tail.len().saturating_sub(tail_budget))..];
        let dropped = self.total - (head.len() + tail.len()) as u64;
        let mut out = String::with_capacity(head.len() + tail.len() + 64);
        out.push_str(head);
        if !head.is_empty() && !head.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("[... {dropped} bytes of output dropped ...]\n"));
        out.push_str(tail);
        out
    }
}

/// Splits `budget` bytes between stdout and stderr and renders both.
pub fn finish_pair(out: &Capture, err: &Capture, budget: usize) -> (String, String) {
    let (o, e) = (out.kept_len(), err.kept_len());
    let half = budget / 2;
    let (bo, be) = if o + e <= budget {
        (o, e)
    } else if o < half {
        (o, budget - o)
    } else if e < budget - half {
        (budget - e, e)
    } else {
        (half, budget - half)
    };
    (out.finish(bo), err.finish(be))
}

/// The largest char boundary `<= i` (`str::floor_char_boundary` is unstable).
pub fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary `>= i`.
pub fn ceil_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// `s` cut to at most about `max` bytes (head and tail kept, with a marker in the middle).
pub fn cap_string(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut c = Capture::new(max);
    c.push(&s);
    c.finish(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_exactly() {
        let mut c = Capture::new(100);
        c.push("hello ");
        c.push("world\n");
        assert_eq!(c.finish(100), "hello world\n");
        assert_eq!(c.total(), 12);
        c.clear();
        assert_eq!(c.finish(100), "");
    }

    #[test]
    fn head_and_tail_are_kept_with_a_marker() {
        let mut c = Capture::new(20);
        for i in 0..1000 {
            c.push(&format!("{i}\n"));
        }
        let text = c.finish(20);
        assert!(text.starts_with("0\n1\n2\n3\n4\n"), "{text}");
        assert!(text.ends_with("998\n999\n"), "{text}");
        assert!(text.contains("bytes of output dropped"), "{text}");
        let total: u64 = (0..1000).map(|i: i32| i.to_string().len() as u64 + 1).sum();
        assert_eq!(c.total(), total);
        let dropped: u64 = text
            .lines()
            .find(|l| l.contains("dropped"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(dropped, total - 20);
    }

    #[test]
    fn one_huge_write_and_multibyte_boundaries() {
        let mut c = Capture::new(11);
        c.push(&"é".repeat(1000));
        let text = c.finish(11);
        assert!(text.starts_with("éé"), "{text}");
        assert!(text.ends_with("éé"), "{text}");
        assert_eq!(c.total(), 2000);
        // A write that does not fit the head must not let a later small write jump ahead.
        let mut c = Capture::new(9);
        c.push("abc");
        c.push("éé");
        c.push("d");
        assert_eq!(c.finish(100), "abcééd");
    }

    #[test]
    fn budget_is_shared_between_streams() {
        let mut out = Capture::new(1000);
        let mut err = Capture::new(1000);
        out.push(&"o".repeat(5000));
        err.push("e\n");
        let (o, e) = finish_pair(&out, &err, 100);
        assert_eq!(e, "e\n");
        assert!(o.len() < 98 + 64, "{}", o.len());
        assert!(o.contains("4902 bytes of output dropped"), "{o}");
    }

    #[test]
    fn cap_string_keeps_short_strings() {
        assert_eq!(cap_string("abc".into(), 10), "abc");
        let s = cap_string("x".repeat(100), 10);
        assert!(s.contains("90 bytes of output dropped"), "{s}");
    }
}
