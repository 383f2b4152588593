//! Time as well as panics: each shape of hostile email a sender can craft (issue 29 §5) is parsed
//! at two sizes, ten times apart, and ten times the input may cost at most twenty times the
//! time. Quadratic work shows as a hundredfold; noise below a few milliseconds is ignored.
//! Two families: shapes past a bound of `mime_guard` (they time the guard and the headers-only
//! read) and shapes just inside every bound (they time mail-parser's whole parse where it costs
//! the most the guard allows; one that trips a bound fails the run, as it would time the wrong path).

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
            make: |n| nested(n / 80, ""),
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
                let inner = format!("{HEAD}X-A: {}\r\n\r\nbody", "=?ab?q?".repeat(n / 10));
                attached(&inner, "b").into_bytes()
            },
        },
    ]
}

/// Shapes built just inside every bound of `mime_guard`: the count each bound limits grows with
/// the input and reaches about 95% of the bound at the larger size, so mail-parser itself walks
/// the costly region the guard leaves it (the shapes above trip a bound and time the
/// headers-only read). `large` is the larger of the two sizes.
fn inside_shapes() -> Vec<Inside> {
    use m365_ingest::domain::email::mime_guard::{MAX_CONTINUATIONS, MAX_ENCODED_WORD_WORK, MAX_FIELD_BYTES, MAX_HEADER_LINES, MAX_PARTS};
    /// `bound` scaled to `n` of `large` bytes, 95% of it at `large`.
    fn share(bound: usize, n: usize, large: usize) -> usize {
        (bound as u128 * 95 * n as u128 / (100 * large as u128)).max(1) as usize
    }
    /// A text body of about `bytes`, words and a URL a line.
    fn filler(bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 80);
        let mut i = 0;
        while s.len() < bytes {
            s.push_str(&format!("see http://e.example/{i} now and then words\r\n"));
            i += 1;
        }
        s
    }
    vec![
        Inside {
            // Body parts, each of about large/MAX_PARTS bytes.
            name: "parts_at_bound",
            make: |n, large| {
                let parts = share(MAX_PARTS, n, large);
                let mut s = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
                for _ in 0..parts {
                    s.push_str("--b\r\nContent-Type: text/plain\r\n\r\n");
                    s.push_str(&filler((large / MAX_PARTS).saturating_sub(40).max(1)));
                }
                s.push_str("--b--\r\n");
                s.into_bytes()
            },
        },
        Inside {
            // Header lines of about large/MAX_HEADER_LINES bytes each.
            name: "header_lines_at_bound",
            make: |n, large| {
                let width = large / MAX_HEADER_LINES;
                let lines: String = (0..share(MAX_HEADER_LINES, n, large) - 10)
                    .map(|i| format!("X-H{i}: {}\r\n", "v".repeat(width.saturating_sub(12))))
                    .collect();
                format!("{HEAD}{lines}\r\nbody").into_bytes()
            },
        },
        Inside {
            // One To: of addresses folded over many lines, as long as a field may be.
            name: "field_at_bound",
            make: |n, large| {
                let bytes = share(MAX_FIELD_BYTES, n, large);
                let mut to = String::from("To: ");
                let mut i = 0;
                while to.len() < bytes {
                    to.push_str(&format!("user{i:06}@contoso.com,\r\n "));
                    i += 1;
                }
                to.push_str("last@contoso.com\r\n");
                format!("{HEAD}{to}Content-Type: text/plain\r\n\r\n{}", filler(n.saturating_sub(bytes))).into_bytes()
            },
        },
        Inside {
            // One field as long as a field may be, with as many failed encoded words as the
            // work bound lets it hold at the larger size (each retried to the end of the field).
            name: "encoded_words_at_bound",
            make: |n, large| {
                let field = share(MAX_FIELD_BYTES, n, large);
                let words = (MAX_ENCODED_WORD_WORK as usize * 95 / 100) / share(MAX_FIELD_BYTES, large, large);
                let mut value = "=?ab?q? ".repeat(words);
                while value.len() < field {
                    value.push_str("padding ");
                }
                // A Subject: mail-parser decodes its encoded words (an X- field it keeps raw).
                format!(
                    "From: a@fabrikam.example\r\nTo: b@contoso.com\r\nMessage-ID: <x@y>\r\nSubject: {value}\r\n\r\n{}",
                    filler(n.saturating_sub(field))
                )
                .into_bytes()
            },
        },
        Inside {
            // One filename in RFC 2231 pieces, merged by copying what came before.
            name: "continuations_at_bound",
            make: |n, large| {
                let pieces = share(MAX_CONTINUATIONS, n, large);
                let piece = MAX_FIELD_BYTES * 9 / 10 / MAX_CONTINUATIONS;
                let params: String = (0..pieces).map(|i| format!(";\r\n filename*{i}=\"{}\"", "n".repeat(piece - 20))).collect();
                let field = params.len();
                format!(
                    "{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/octet-stream{params}\r\n\
                     Content-Disposition: attachment\r\n\r\nx\r\n--b\r\nContent-Type: text/plain\r\n\r\n{}--b--\r\n",
                    filler(n.saturating_sub(field))
                )
                .into_bytes()
            },
        },
        Inside {
            // As many declared-and-never-met boundaries as allowed, each a scan of what follows,
            // over a body of the widest delimiter-like lines.
            name: "unmet_boundaries_at_bound",
            make: |n, _| {
                let wide = "-".repeat(68);
                let mut s = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
                for i in 0..8 {
                    s.push_str(&format!("--b\r\nContent-Type: multipart/mixed; boundary=\"{wide}{i}\"\r\n\r\n"));
                }
                while s.len() < n {
                    s.push_str(&format!("--{wide}x\r\n"));
                }
                s.push_str("--b--\r\n");
                s.into_bytes()
            },
        },
        Inside {
            // Multiparts nested as deep as the part bound allows (each level opens and closes).
            name: "nesting_at_bound",
            make: |n, large| nested(share(MAX_PARTS / 2, n, large), &filler(large / MAX_PARTS)),
        },
        Inside {
            // Messages attached in Base64 inside each other as deep as mail-parser opens them,
            // the innermost of many parts.
            name: "encoded_messages_at_bound",
            make: |n, large| {
                let parts = share(MAX_PARTS, n, large) * 3 / 4;
                let mut inner = format!("{HEAD}Content-Type: multipart/mixed; boundary=\"i\"\r\n\r\n");
                for _ in 0..parts {
                    inner.push_str("--i\r\nContent-Type: text/plain\r\n\r\n");
                    inner.push_str(&filler(large / MAX_PARTS / 2));
                }
                inner.push_str("--i--\r\n");
                for level in 0..3 {
                    inner = attached(&inner, &format!("o{level}"));
                }
                inner.into_bytes()
            },
        },
    ]
}

/// A shape that must stay inside every bound: an email of about `n` bytes, given the larger size.
struct Inside {
    name: &'static str,
    make: fn(usize, usize) -> Vec<u8>,
}

/// Multiparts `depth` deep, each with its own boundary and `pad` before its first part.
fn nested(depth: usize, pad: &str) -> Vec<u8> {
    let mut s = String::from(HEAD);
    for i in 0..depth {
        s.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n{pad}--b{i}\r\n"));
    }
    s.push_str("Content-Type: text/plain\r\n\r\nhttp://e.example/x\r\n");
    for i in (0..depth).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s.into_bytes()
}

/// A message whose one part is `inner` attached in Base64 (lines of 76), under `boundary`.
fn attached(inner: &str, boundary: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    let lines: String = b64.as_bytes().chunks(76).map(|c| format!("{}\r\n", String::from_utf8_lossy(c))).collect();
    format!(
        "{HEAD}Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{lines}--{boundary}--\r\n"
    )
}

/// The least of five timings (the others carry the noise of a busy machine).
fn best_of_five(input: &[u8]) -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = std::hint::black_box(m365_ingest::domain::email::mime::parse(std::hint::black_box(input)));
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Below this, a timing is noise, not growth.
const FLOOR: Duration = Duration::from_millis(5);

/// Runs every shape at `base` and ten times `base` bytes; false when one grew more than twentyfold
/// or a shape meant to be inside the bounds tripped one.
pub fn check(base: usize) -> bool {
    let large = base * 10;
    let mut ok = true;
    let past = shapes().into_iter().map(|s| (s.name, (s.make)(base), (s.make)(large), false));
    let inside = inside_shapes().into_iter().map(|s| (s.name, (s.make)(base, large), (s.make)(large, large), true));
    for (name, small, big, must_fit) in past.chain(inside) {
        let tripped: Vec<String> = [&small, &big].iter().filter_map(|m| m365_ingest::domain::email::mime_guard::check(m).err()).collect();
        let path = if tripped.is_empty() { "whole parse" } else { "headers only" };
        let (t1, t10) = (best_of_five(&small), best_of_five(&big));
        let ratio = t10.as_secs_f64() / t1.max(FLOOR).as_secs_f64();
        let grew = t10 > FLOOR && ratio > 20.0;
        let misbuilt = must_fit && !tripped.is_empty();
        println!(
            "fuzz: mime time {name:<26} {:>8} B {:>9.1?}  {:>9} B {:>9.1?}  ×{ratio:.1}  {path}{}{}",
            small.len(),
            t1,
            big.len(),
            t10,
            if grew { "  GREW FASTER THAN ITS INPUT" } else { "" },
            if misbuilt { format!("  MEANT TO BE INSIDE THE BOUNDS, TRIPS: {}", tripped.join("; ")) } else { String::new() }
        );
        ok &= !grew && !misbuilt;
    }
    ok
}
