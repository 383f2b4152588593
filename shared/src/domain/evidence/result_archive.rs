//! A live response GetFile result, as it comes: the file itself, or an archive holding it.
//!
//! Microsoft does not document the format of a GetFile download (get-live-response-result.md
//! shows only the link; ms-apis.md §7). Open-source callers unpack gzip (demisto/content's
//! Defender for Endpoint integration saves "Response Result.gz"; alpine-sec/thevlad
//! decompresses it), and a zip is what the portal's own downloads are. So the bytes are read
//! by their first bytes: gzip (`1f 8b 08`), zip (`PK\x03\x04`), anything else the file itself.
//! An archive is opened with bounds: its output within the size kept, at most `max_ratio`
//! times its input beyond the first MiB (a small bomb inflates a thousandfold), and one file
//! in it (a second gzip member or zip entry is refused). The caller hashes both what came and
//! what was unpacked, because the file an alert names can itself be a gzip or a zip.

use flate2::{Decompress, FlushDecompress, Status};

/// How the result came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Gzip,
    Zip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes unpacked.
    pub max_bytes: u64,
    /// Unpacked bytes beyond the first MiB per byte received.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 512 << 20, max_ratio: 200 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    /// `size`: the bytes unpacked when it passed the limit (the file holds at least these).
    #[error("the unpacked result is larger than the {limit} bytes kept")]
    TooLarge { size: u64, limit: u64 },
    #[error("the result archive unpacks to more than {ratio} times its {received} bytes: refused as a decompression bomb")]
    Ratio { received: u64, ratio: u64 },
    #[error("the result archive holds more than one file")]
    MoreThanOneFile,
    #[error("the result archive is damaged: {0}")]
    Corrupt(String),
    #[error("the result archive uses {0}, which is not unpacked")]
    Unsupported(String),
}

const FREE_BYTES: u64 = 1 << 20;
/// Output produced per inflate call: each call's output is counted against the bounds before
/// the next, so a chunk stops unpacking within one step of a bound.
const STEP: usize = 256 << 10;

enum State {
    /// Too few bytes yet to tell the format.
    Sniff(Vec<u8>),
    Raw,
    /// A gzip or zip header being collected.
    Header(Format, Vec<u8>),
    Inflate(Format, Box<Decompress>),
    /// A stored zip entry: this many bytes of it still to come.
    Stored(u64),
    /// After the one file: only a trailer may follow (gzip's 8 bytes; zip's descriptor and
    /// central directory), not a second file.
    After(Format, Vec<u8>),
}

pub struct Unpacker {
    state: State,
    limits: Limits,
    received: u64,
    unpacked: u64,
    format: Option<Format>,
}

impl Unpacker {
    pub fn new(limits: Limits) -> Self {
        Unpacker { state: State::Sniff(Vec::new()), limits, received: 0, unpacked: 0, format: None }
    }

    /// Bytes taken as they come, whatever their first bytes say (a file that is itself an
    /// archive, sent as it is), within the size bound.
    pub fn as_it_came(limits: Limits) -> Self {
        Unpacker { state: State::Raw, limits, received: 0, unpacked: 0, format: Some(Format::Raw) }
    }

    /// The format, once the first bytes told it.
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// Feeds bytes as they arrive; appends what they unpack to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), UnpackError> {
        self.received += input.len() as u64;
        let mut input = input;
        loop {
            match &mut self.state {
                State::Sniff(seen) => {
                    seen.extend_from_slice(input);
                    if seen.len() < 4 {
                        return Ok(());
                    }
                    let seen = std::mem::take(seen);
                    let format = sniff(&seen);
                    self.format = Some(format);
                    self.state = match format {
                        Format::Raw => State::Raw,
                        f => State::Header(f, Vec::new()),
                    };
                    // The sniffed bytes are fed again to the state they decided.
                    self.received -= seen.len() as u64;
                    return self.feed(&seen, out);
                }
                State::Raw => {
                    self.count(input.len())?;
                    out.extend_from_slice(input);
                    return Ok(());
                }
                State::Header(format, buf) => {
                    let format = *format;
                    buf.extend_from_slice(input);
                    let Some(len) = header_len(format, buf)? else { return Ok(()) };
                    let rest = buf.split_off(len);
                    let header = std::mem::take(buf);
                    let flags = zip_flags(&header);
                    if format == Format::Zip && flags & 1 != 0 {
                        return Err(UnpackError::Unsupported("an encrypted entry".into()));
                    }
                    if format == Format::Zip && zip_method(&header).is_some_and(|(_, size)| size == u64::from(u32::MAX)) {
                        return Err(UnpackError::Unsupported("a ZIP64 entry".into()));
                    }
                    self.state = match (format, zip_method(&header)) {
                        (Format::Zip, Some((0, size))) => {
                            if size == 0 && flags & 8 != 0 {
                                return Err(UnpackError::Unsupported("a stored entry of unknown size".into()));
                            }
                            State::Stored(size)
                        }
                        (Format::Zip, Some((8, _))) | (Format::Gzip, _) => State::Inflate(format, Box::new(Decompress::new(false))),
                        (_, Some((m, _))) => return Err(UnpackError::Unsupported(format!("compression method {m}"))),
                        (Format::Zip, None) | (Format::Raw, _) => return Err(UnpackError::Corrupt("no header".into())),
                    };
                    self.received -= rest.len() as u64;
                    return self.feed(&rest, out);
                }
                State::Stored(left) => {
                    let take = (*left).min(input.len() as u64) as usize;
                    *left -= take as u64;
                    let ended = *left == 0;
                    self.count(take)?;
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if !ended {
                        return Ok(());
                    }
                    self.state = State::After(Format::Zip, Vec::new());
                }
                State::Inflate(format, z) => {
                    let format = *format;
                    let before_in = z.total_in();
                    // At most STEP bytes a call: decompress_vec writes into spare capacity only.
                    let mut step = Vec::with_capacity(STEP);
                    let status =
                        z.decompress_vec(input, &mut step, FlushDecompress::None).map_err(|e| UnpackError::Corrupt(e.to_string()))?;
                    let used = (z.total_in() - before_in) as usize;
                    input = &input[used..];
                    self.count(step.len())?;
                    out.extend_from_slice(&step);
                    if status == Status::StreamEnd {
                        self.state = State::After(format, Vec::new());
                        continue;
                    }
                    if used == 0 && step.is_empty() && !input.is_empty() {
                        return Err(UnpackError::Corrupt("the compressed stream stopped taking input".into()));
                    }
                    if input.is_empty() && step.len() < STEP {
                        return Ok(());
                    }
                }
                State::After(format, tail) => {
                    // Only the new bytes (and the three before them) can complete a signature.
                    let from = tail.len().saturating_sub(3);
                    tail.extend_from_slice(input);
                    match format {
                        Format::Gzip if tail.len() > 8 => return Err(UnpackError::MoreThanOneFile),
                        Format::Zip if second_local_header(&tail[from..]) => return Err(UnpackError::MoreThanOneFile),
                        // A zip's tail is its central directory: bounded by what it may hold.
                        Format::Zip if tail.len() > 1 << 20 => {
                            return Err(UnpackError::Corrupt("a tail past its central directory".into()))
                        }
                        _ => return Ok(()),
                    }
                }
            }
        }
    }

    /// The end of the result: an archive must have ended whole.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<Format, UnpackError> {
        if let State::Sniff(seen) = &mut self.state {
            // A file of fewer than four bytes is the file itself.
            let seen = std::mem::take(seen);
            self.format = Some(Format::Raw);
            self.state = State::Raw;
            self.received -= seen.len() as u64;
            self.feed(&seen, out)?;
        }
        match &self.state {
            State::Raw => Ok(Format::Raw),
            State::After(Format::Gzip, tail) if tail.len() == 8 => {
                let size = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
                if u64::from(size) != self.unpacked & 0xFFFF_FFFF {
                    return Err(UnpackError::Corrupt("its length does not match its trailer".into()));
                }
                Ok(Format::Gzip)
            }
            State::After(Format::Zip, _) => Ok(Format::Zip),
            _ => Err(UnpackError::Corrupt("it ended before the file did".into())),
        }
    }

    fn count(&mut self, n: usize) -> Result<(), UnpackError> {
        self.unpacked += n as u64;
        if self.unpacked > self.limits.max_bytes {
            return Err(UnpackError::TooLarge { size: self.unpacked, limit: self.limits.max_bytes });
        }
        if self.format != Some(Format::Raw) && self.unpacked > FREE_BYTES + self.received.saturating_mul(self.limits.max_ratio) {
            return Err(UnpackError::Ratio { received: self.received, ratio: self.limits.max_ratio });
        }
        Ok(())
    }
}

fn sniff(b: &[u8]) -> Format {
    match b {
        [0x1f, 0x8b, 0x08, ..] => Format::Gzip,
        [b'P', b'K', 3, 4, ..] => Format::Zip,
        _ => Format::Raw,
    }
}

/// The header's length once all of it is in `b` (RFC 1952 §2.3; APPNOTE 4.3.7).
fn header_len(format: Format, b: &[u8]) -> Result<Option<usize>, UnpackError> {
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| usize::from(u16::from_le_bytes([s[0], s[1]])));
    match format {
        Format::Gzip => {
            let Some(&flags) = b.get(3) else { return Ok(None) };
            if flags & 0xE0 != 0 {
                return Err(UnpackError::Corrupt("reserved gzip flags set".into()));
            }
            let mut at = 10;
            if flags & 4 != 0 {
                let Some(x) = u16_at(at) else { return Ok(None) };
                at += 2 + x;
            }
            for flag in [8u8, 16] {
                if flags & flag != 0 {
                    // A zero-terminated name or comment; bounded so a header cannot grow forever.
                    let Some(rest) = b.get(at..) else { return Ok(None) };
                    let Some(end) = rest.iter().position(|c| *c == 0) else {
                        return if rest.len() > 64 << 10 {
                            Err(UnpackError::Corrupt("a gzip header without end".into()))
                        } else {
                            Ok(None)
                        };
                    };
                    at += end + 1;
                }
            }
            if flags & 2 != 0 {
                at += 2;
            }
            Ok((b.len() >= at).then_some(at))
        }
        Format::Zip => match (u16_at(26), u16_at(28)) {
            (Some(name), Some(extra)) => Ok((b.len() >= 30 + name + extra).then_some(30 + name + extra)),
            _ => Ok(None),
        },
        Format::Raw => Ok(Some(0)),
    }
}

fn zip_flags(h: &[u8]) -> u16 {
    h.get(6..8).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

/// A zip local header's method and compressed size.
fn zip_method(h: &[u8]) -> Option<(u16, u64)> {
    if !h.starts_with(b"PK\x03\x04") {
        return None;
    }
    let method = u16::from_le_bytes([*h.get(8)?, *h.get(9)?]);
    let size = u32::from_le_bytes(h.get(18..22)?.try_into().ok()?);
    Some((method, u64::from(size)))
}

fn second_local_header(tail: &[u8]) -> bool {
    // After an entry: its data descriptor (optional signature, 12 or 16 bytes, or 20/24 with
    // ZIP64), then the central directory; a local header there is a second file.
    memchr::memmem::find(tail, b"PK\x03\x04").is_some()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::domain::evidence::result_archive::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = e.write_all(data);
        e.finish().unwrap_or_default()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = e.write_all(data);
        e.finish().unwrap_or_default()
    }

    /// A zip of the files given, each deflated (method 8) or stored (0).
    fn zip(files: &[(&str, &[u8], u16)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data, method) in files {
            let body = if *method == 8 { deflate(data) } else { data.to_vec() };
            let offset = out.len() as u32;
            let mut crc = flate2::Crc::new();
            crc.update(data);
            let head = |sig: &[u8], extra_fields: &[u8]| {
                let mut h = sig.to_vec();
                h.extend_from_slice(extra_fields);
                h.extend_from_slice(&20u16.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&method.to_le_bytes());
                h.extend_from_slice(&[0, 0, 0, 0]);
                h.extend_from_slice(&crc.sum().to_le_bytes());
                h.extend_from_slice(&(body.len() as u32).to_le_bytes());
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(name.len() as u16).to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h
            };
            out.extend(head(b"PK\x03\x04", &[]));
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);
            central.extend(head(b"PK\x01\x02", &20u16.to_le_bytes()));
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        out.extend(central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 18]);
        out
    }

    /// Unpacks `bytes` fed in chunks of `chunk`.
    fn unpack(bytes: &[u8], chunk: usize, limits: Limits) -> Result<(Format, Vec<u8>), UnpackError> {
        let mut u = Unpacker::new(limits);
        let mut out = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            u.feed(c, &mut out)?;
        }
        let f = u.finish(&mut out)?;
        Ok((f, out))
    }

    fn file() -> Vec<u8> {
        (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[test]
    fn the_file_itself_a_gzip_of_it_and_a_zip_of_it_all_give_the_file() {
        let f = file();
        for chunk in [1, 7, 4096, 1 << 20] {
            assert_eq!(unpack(&f, chunk, Limits::default()), Ok((Format::Raw, f.clone())), "raw, chunks of {chunk}");
            assert_eq!(unpack(&gzip(&f), chunk, Limits::default()), Ok((Format::Gzip, f.clone())), "gzip, chunks of {chunk}");
            for method in [8, 0] {
                let z = zip(&[("C/Users/a/evil.exe", &f, method)]);
                assert_eq!(unpack(&z, chunk, Limits::default()), Ok((Format::Zip, f.clone())), "zip {method}, chunks of {chunk}");
            }
        }
        assert_eq!(unpack(b"MZ", 1, Limits::default()), Ok((Format::Raw, b"MZ".to_vec())));
        assert_eq!(unpack(b"", 1, Limits::default()), Ok((Format::Raw, Vec::new())));
    }

    #[test]
    fn a_bomb_a_second_file_a_truncated_archive_and_an_oversized_file_are_refused() {
        let zeros = vec![0u8; 64 << 20];
        assert!(matches!(unpack(&gzip(&zeros), 8192, Limits::default()), Err(UnpackError::Ratio { .. })));
        assert!(matches!(unpack(&zip(&[("z", &zeros, 8)]), 8192, Limits::default()), Err(UnpackError::Ratio { .. })));
        let f = file();
        let two = [gzip(&f), gzip(&f)].concat();
        assert_eq!(unpack(&two, 4096, Limits::default()), Err(UnpackError::MoreThanOneFile));
        let two = zip(&[("a", &f, 8), ("b", &f, 0)]);
        assert_eq!(unpack(&two, 4096, Limits::default()), Err(UnpackError::MoreThanOneFile));
        let g = gzip(&f);
        assert!(matches!(unpack(&g[..g.len() / 2], 4096, Limits::default()), Err(UnpackError::Corrupt(_))));
        assert!(matches!(unpack(&g[..g.len() - 3], 4096, Limits::default()), Err(UnpackError::Corrupt(_))));
        let small = Limits { max_bytes: 100_000, ..Limits::default() };
        assert!(matches!(unpack(&g, 4096, small), Err(UnpackError::TooLarge { limit: 100_000, .. })));
        assert!(matches!(unpack(&f, 4096, small), Err(UnpackError::TooLarge { limit: 100_000, .. })));
        let mut bad = zip(&[("a", &f, 8)]);
        bad[8] = 14;
        assert!(matches!(unpack(&bad, 4096, Limits::default()), Err(UnpackError::Unsupported(_))));
    }

    #[test]
    fn one_chunk_never_unpacks_into_much_more_than_its_bound() {
        // 8 MiB of zeros deflate to about 8 KiB: fed at once, the output stops at the ratio.
        let g = gzip(&vec![0u8; 8 << 20]);
        let mut u = Unpacker::new(Limits::default());
        let mut out = Vec::new();
        let r = u.feed(&g, &mut out);
        assert!(matches!(r, Err(UnpackError::Ratio { .. })), "{r:?}");
        assert!(out.len() as u64 <= FREE_BYTES + g.len() as u64 * 200 + STEP as u64, "{}", out.len());
    }
}
