//! Inputs for the fuzzer: a doc sample mutated byte-wise and structurally, or plain random
//! bytes. Seeded, so a run can be repeated.

/// Fragments that break decoders in practice: non-ASCII at offsets a byte slice may cut,
/// numbers out of range, characters SQS refuses, deep nesting, JSON's odd corners.
const TOKENS: &[&str] = &[
    "é",
    "日本",
    "\u{1F600}",
    "\u{FFFF}",
    "\\u0000",
    "\\ud800",
    "\"",
    "\\",
    "null",
    "true",
    "-0",
    "1e999",
    "-9223372036854775809",
    "18446744073709551616",
    "0.0000001",
    "+02:00",
    "-14:00",
    "+ab:cd",
    "Z",
    "T",
    ".12345678",
    "9999-12-31T23:59:59Z",
    "+262143-01-01T00:00:00Z",
    "[[[[[[[[",
    "]]]]",
    "{}",
    "[]",
    "{\"a\":",
    "\"lastUpdateDateTime\":",
    "\"id\":",
    "\"value\":[",
    "\"@odata.count\":",
    "\"@odata.nextLink\":\"https://evil.example/x\"",
    "\"timestamp\":",
    "\"_id\":",
    "\"evidence\":[{",
    "\"@odata.type\":\"#microsoft.graph.security.fileEvidence\"",
    "\"additionalData\":{",
    "\"severity\":",
    "\"data\":[",
];

pub struct Mutator {
    state: u64,
    corpus: Vec<Vec<u8>>,
}

impl Mutator {
    pub fn new(seed: u64, corpus: Vec<Vec<u8>>) -> Self {
        Mutator { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, corpus }
    }

    /// xorshift64*: fast, seeded, good enough to pick mutations.
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn next_input(&mut self) -> Vec<u8> {
        if self.corpus.is_empty() || self.below(10) == 0 {
            let len = self.below(256);
            return (0..len).map(|_| self.next() as u8).collect();
        }
        let pick = self.below(self.corpus.len());
        let mut v = self.corpus[pick].clone();
        for _ in 0..1 + self.below(6) {
            self.mutate(&mut v);
        }
        v
    }

    fn mutate(&mut self, v: &mut Vec<u8>) {
        let at = self.below(v.len() + 1);
        match self.below(7) {
            0 if !v.is_empty() => {
                let i = self.below(v.len());
                v[i] ^= 1 << self.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + 1 + self.below(32)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[self.below(TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            3 if !v.is_empty() => {
                // Replace a run with a token: swaps values for odd ones.
                let end = (at + 1 + self.below(16)).min(v.len());
                let t = TOKENS[self.below(TOKENS.len())].as_bytes();
                v.splice(at.min(end)..end, t.iter().copied());
            }
            4 if !v.is_empty() => {
                // Copy a slice of itself elsewhere (repeats keys, nests objects).
                let start = self.below(v.len());
                let end = (start + 1 + self.below(64)).min(v.len());
                let chunk: Vec<u8> = v[start..end].to_vec();
                let to = self.below(v.len() + 1);
                v.splice(to..to, chunk);
            }
            5 if !self.corpus.is_empty() => {
                // Splice with another sample.
                let pick = self.below(self.corpus.len());
                let other = self.corpus[pick].clone();
                let from = self.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            _ => v.truncate(at),
        }
    }
}
