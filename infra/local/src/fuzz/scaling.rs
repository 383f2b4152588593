//! Time as well as panics: each shape of hostile email a sender can craft (issue 29 §5) is parsed
//! at two sizes, ten times apart, and ten times the input may cost at most twenty times the
//! time. Quadratic work shows as a hundredfold; noise below a few milliseconds is ignored.

use std::time::{Duration, Instant};

/// A hostile shape: an email of about `n` bytes.
struct Shape {
    name: &'static str,
    make: fn(usize) -> Vec<u8>,
}

const HEAD: &str = "From: a@fabrikam.example\r\nTo: b@contoso.com\r\nSubject: hi\r\nMessage-ID: <x@y>\r\n";

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            // A boundary as long as half the message, and a body of dashes: every `--` compares it.
            name: "long_boundary",
            make: |n| {
                let b = "-".repeat(n / 2);
                format!("{HEAD}Content-Type: multipart/mixed; boundary=\"{b}X\"\r\n\r\n{}", "-".repeat(n / 2)).into_bytes()
            },
        },
        Shape {
            // The longest boundary RFC 2046 allows, against a body of dashes.
            name: "widest_boundary",
            make: |n| {
                let b = format!("{}X", "-".repeat(69));
                format!("{HEAD}Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n\r\n{}", "-".repeat(n)).into_bytes()
            },
        },
        Shape {
            // Encoded words that never decode, retried to the end of the field.
            name: "encoded_words",
            make: |n| format!("{HEAD}X-A: {}\r\n\r\nbody", "=?ab?q?".repeat(n / 7)).into_bytes(),
        },
        Shape {
            // RFC 2231 continuations merged by copying what came before.
            name: "continuations",
            make: |n| {
                let pieces: String = (0..n / 12).map(|i| format!("; b*{i}=x")).collect();
                format!("{HEAD}Content-Type: text/plain{pieces}\r\n\r\nbody").into_bytes()
            },
        },
        Shape { name: "many_headers", make: |n| format!("{HEAD}{}\r\nbody", "a: b\r\n".repeat(n / 6)).into_bytes() },
        Shape {
            // Distinct URLs: their dedup.
            name: "many_urls",
            make: |n| {
                let urls: String = (0..n / 24).map(|i| format!("http://e.example/{i:012} ")).collect();
                format!("{HEAD}Content-Type: text/plain\r\n\r\n{urls}").into_bytes()
            },
        },
        Shape {
            // Multiparts inside multiparts, each with its own boundary.
            name: "deep_nesting",
            make: |n| {
                let depth = n / 80;
                let mut s = String::from(HEAD);
                for i in 0..depth {
                    s.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
                }
                s.push_str("Content-Type: text/plain\r\n\r\nhttp://e.example/x\r\n");
                for i in (0..depth).rev() {
                    s.push_str(&format!("--b{i}--\r\n"));
                }
                s.into_bytes()
            },
        },
        Shape {
            name: "many_parts",
            make: |n| {
                let mut s = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
                for i in 0..n / 60 {
                    s.push_str(&format!("--b\r\nContent-Type: text/plain\r\n\r\nhttp://e.example/{i}\r\n"));
                }
                s.push_str("--b--\r\n");
                s.into_bytes()
            },
        },
        Shape {
            // An attached message in Base64 whose own headers are hostile.
            name: "encoded_message",
            make: |n| {
                use base64::Engine as _;
                let inner = format!("{HEAD}X-A: {}\r\n\r\nbody", "=?ab?q?".repeat(n / 10));
                let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
                let lines: String = b64.as_bytes().chunks(76).map(|c| format!("{}\r\n", String::from_utf8_lossy(c))).collect();
                format!(
                    "{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n{lines}--b--\r\n"
                )
                .into_bytes()
            },
        },
    ]
}

/// The least of five timings (the others carry the noise of a busy machine).
fn best_of_five(input: &[u8]) -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(m365_ingest::domain::mime::parse(std::hint::black_box(input)));
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Below this, a timing is noise, not growth.
const FLOOR: Duration = Duration::from_millis(5);

/// Runs every shape at `base` and ten times `base` bytes; false when one grew more than twentyfold.
pub fn check(base: usize) -> bool {
    let mut ok = true;
    for s in shapes() {
        let (small, large) = ((s.make)(base), (s.make)(base * 10));
        let (t1, t10) = (best_of_five(&small), best_of_five(&large));
        let ratio = t10.as_secs_f64() / t1.max(FLOOR).as_secs_f64();
        let grew = t10 > FLOOR && ratio > 20.0;
        println!(
            "fuzz: mime time {:<16} {:>8} B {:>9.1?}  {:>9} B {:>9.1?}  ×{ratio:.1}{}",
            s.name,
            small.len(),
            t1,
            large.len(),
            t10,
            if grew { "  GREW FASTER THAN ITS INPUT" } else { "" }
        );
        ok &= !grew;
    }
    ok
}
