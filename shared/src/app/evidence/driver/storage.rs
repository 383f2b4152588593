//! Storing what a call brought back: a downloaded file (unpacked, decrypted and checked against
//! the alert's hashes), a mailbox message's MIME, an exported quarantined message.

use futures_util::StreamExt;

use crate::app::evidence::file_intake::{off_runtime, off_runtime_bounded, FileIntake, IntakeError};
use crate::app::evidence::setup::Evidence;
use crate::app::processing::processor::Processor;
use crate::domain::envelope::sha256_hex;
use crate::domain::evidence::job::Observation;
use crate::domain::evidence::restore_secret::RestoreSecret;
use crate::domain::evidence::result_archive::{self, Format, UnpackError, Unpacker};
use crate::ports::evidence::{ArtifactUpload, ArtifactUploads, Download, ExportedEml};
use crate::ports::ProcessPorts;

/// Base64 decoded per slice of an export: a multiple of 4.
const EXPORT_SLICE: usize = 4 << 20;

impl<P: ProcessPorts> Processor<P> {
    /// Stores a mailbox message's MIME as it came (read whole, within its bound).
    pub(super) async fn store_mime(&self, ev: &Evidence<P::Evidence>, mime: bytes::Bytes, key: &str) -> Observation {
        let (size, limit) = (mime.len() as u64, ev.settings.max_file_bytes);
        if size > limit {
            return Observation::TooLarge { size, limit };
        }
        if mime.is_empty() {
            return Observation::Refused("Graph answered the message's MIME with no bytes".into());
        }
        let mut upload = match self.artifacts.begin(key, "message/rfc822").await {
            Ok(u) => u,
            Err(e) => return Observation::Transient(e.to_string()),
        };
        for chunk in mime.chunks(EXPORT_SLICE) {
            if let Err(e) = upload.write(chunk).await {
                upload.abort().await;
                return Observation::Transient(e.to_string());
            }
        }
        match upload.finish(sha256_hex(&mime), size).await {
            Ok(r) => Observation::Stored(r),
            Err(e) => Observation::Transient(e.to_string()),
        }
    }

    /// Decodes an export's Base64 a slice at a time into a streamed upload: the message is never
    /// whole in memory beside Exchange's answer.
    pub(super) async fn store_export(&self, ev: &Evidence<P::Evidence>, export: ExportedEml, key: &str) -> Observation {
        let (answer, eml) = (export.answer, export.eml);
        let Some(text) = answer.get(eml.clone()) else {
            return Observation::Refused("Exchange's export names bytes its answer does not hold".into());
        };
        let limit = ev.settings.max_file_bytes;
        let size = (text.len() / 4 * 3) as u64;
        if size > limit {
            return Observation::TooLarge { size, limit };
        }
        let mut upload = match self.artifacts.begin(key, "message/rfc822").await {
            Ok(u) => u,
            Err(e) => return Observation::Transient(e.to_string()),
        };
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        let mut stored = 0u64;
        // 4 MiB of Base64 (a multiple of 4) decode to 3 MiB, on a blocking thread (file_intake.rs).
        let mut at = eml.start;
        while at < eml.end {
            let slice = answer.slice(at..(at + EXPORT_SLICE).min(eml.end));
            at += slice.len();
            let decoded = off_runtime(hash, move |h| {
                let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &slice)?;
                h.update(&bytes);
                Ok::<_, base64::DecodeError>(bytes)
            })
            .await;
            let bytes = match decoded {
                Ok((back, Ok(bytes))) => {
                    hash = back;
                    bytes
                }
                Ok((_, Err(e))) => {
                    upload.abort().await;
                    return Observation::Refused(format!("Exchange's export is not Base64: {e}"));
                }
                Err(e) => {
                    upload.abort().await;
                    return Observation::Transient(e);
                }
            };
            stored += bytes.len() as u64;
            if let Err(e) = upload.write(&bytes).await {
                upload.abort().await;
                return Observation::Transient(e.to_string());
            }
        }
        let hex: String = hash.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        match upload.finish(hex, stored).await {
            Ok(r) => Observation::Stored(r),
            Err(e) => Observation::Transient(e.to_string()),
        }
    }

    /// Streams a download to the artifact store, unpacked when it came as an archive
    /// (`result_archive.rs`: GetFile's format is not documented), counting its size and hashing
    /// it on the way; nothing is kept when it is too large, cannot be opened within its bounds,
    /// or is not the file the alert names.
    pub(super) async fn store_file(
        &self,
        ev: &Evidence<P::Evidence>,
        mut d: Download,
        key: &str,
        want: Want<'_>,
        unpack: bool,
        secret: Option<&RestoreSecret>,
    ) -> Stored {
        let limit = ev.settings.max_file_bytes;
        // A gzip of an incompressible file is a little larger than the file.
        if let Some(size) = d.length.filter(|l| *l > limit + (limit >> 6) + 1024) {
            return Stored::Observed(Observation::TooLarge { size, limit });
        }
        // A restore's copy is the file encrypted, up to one AES block longer: the limit is the
        // file's, checked again on the decrypted size at the end.
        let padding = if secret.is_some() { RESTORE_PADDING_BYTES } else { 0 };
        let limits = result_archive::Limits { max_bytes: limit + padding, ..result_archive::Limits::default() };
        let unpacker = if unpack { Unpacker::new(limits) } else { Unpacker::as_it_came(limits) };
        let mut upload = match self.artifacts.begin(key, "application/octet-stream").await {
            Ok(u) => u,
            Err(e) => return Stored::Observed(Observation::Transient(e.to_string())),
        };
        let mut intake = FileIntake::new(unpacker, secret.and_then(RestoreSecret::decryptor));
        let fail = |o: Observation| Stored::Observed(o);
        // A file that is itself an archive (an Office document is a zip of many parts) need not
        // open as one holding a single file: its own bytes are tried. Too large stays too large:
        // Microsoft's archive of a file past the size kept is the common case.
        let is_the_archive = |e: &UnpackError, intake: &FileIntake| {
            unpack && !matches!(e, UnpackError::TooLarge { .. }) && intake.format().is_some_and(|f| f != Format::Raw)
        };
        loop {
            let chunk = match d.chunks.next().await {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    upload.abort().await;
                    return fail(Observation::Transient(e.to_string()));
                }
                None => break,
            };
            let fed = match off_runtime_bounded(intake, move |i| i.step(&chunk)).await {
                Ok((back, fed)) => {
                    intake = back;
                    fed
                }
                Err(e) => {
                    upload.abort().await;
                    return fail(Observation::Transient(e));
                }
            };
            if let Err(e) = fed {
                upload.abort().await;
                if is_the_archive(&e, &intake) {
                    return Stored::IsTheArchive;
                }
                return fail(unpack_failure(e, limit));
            }
            if let Err(e) = upload.write(intake.body()).await {
                upload.abort().await;
                return fail(Observation::Transient(e.to_string()));
            }
        }
        let (back, finished) = match off_runtime_bounded(intake, FileIntake::finish).await {
            Ok(done) => done,
            Err(e) => {
                upload.abort().await;
                return fail(Observation::Transient(e));
            }
        };
        intake = back;
        let format = match finished {
            Ok(f) => f,
            Err(IntakeError::Unpack(ref e)) if is_the_archive(e, &intake) => {
                upload.abort().await;
                return Stored::IsTheArchive;
            }
            Err(IntakeError::Unpack(e)) => {
                upload.abort().await;
                return fail(unpack_failure(e, limit));
            }
            Err(IntakeError::Cipher(e)) => {
                upload.abort().await;
                return fail(Observation::Refused(e.to_string()));
            }
        };
        if let Err(e) = upload.write(intake.body()).await {
            upload.abort().await;
            return fail(Observation::Transient(e.to_string()));
        }
        let (size, (got1, got256), (came1, came256)) = intake.hashes();
        if size > limit {
            upload.abort().await;
            return fail(Observation::TooLarge { size, limit });
        }
        let Some(mismatch) = want.mismatch(&got1, &got256) else {
            return match upload.finish(got256, size).await {
                Ok(r) => fail(Observation::Stored(r)),
                Err(e) => fail(Observation::Transient(e.to_string())),
            };
        };
        upload.abort().await;
        if format != Format::Raw && want.mismatch(&came1, &came256).is_none() {
            return Stored::IsTheArchive;
        }
        let (expected, got) = mismatch;
        fail(Observation::HashMismatch { expected, got })
    }
}

/// The hashes the alert gives for a file: SHA-256 decides when it is there.
#[derive(Clone, Copy)]
pub(super) struct Want<'a> {
    pub(super) sha1: Option<&'a str>,
    pub(super) sha256: Option<&'a str>,
}

impl Want<'_> {
    /// (expected, got) when the hashes are not the alert's.
    fn mismatch(&self, got1: &str, got256: &str) -> Option<(String, String)> {
        match (self.sha256, self.sha1) {
            (Some(want), _) if !want.eq_ignore_ascii_case(got256) => Some((want.to_owned(), got256.to_owned())),
            (None, Some(want)) if !want.eq_ignore_ascii_case(got1) => Some((want.to_owned(), got1.to_owned())),
            _ => None,
        }
    }
}

/// The most AES-CBC's PKCS#7 padding adds to a restore's copy (one block).
const RESTORE_PADDING_BYTES: u64 = 16;

/// What storing a download came to.
pub(super) enum Stored {
    Observed(Observation),
    /// The result was an archive that did not open as one holding the file, or whose contents
    /// are not the file: its own bytes may be (taken as they come on a second download).
    IsTheArchive,
}

fn unpack_failure(e: UnpackError, limit: u64) -> Observation {
    match e {
        UnpackError::TooLarge { size, .. } => Observation::TooLarge { size, limit },
        other => Observation::Refused(format!("the live response result could not be opened: {other}")),
    }
}
