//! A downloaded file's bytes on their way to the artifact store: unpacked when they came as an
//! archive, decrypted when they are a restore's copy, hashed. This is the CPU of an evidence job
//! (a chunk of a GetFile result inflates to as much as 200 times its bytes, and each byte is
//! hashed twice and perhaps decrypted), so each step runs on a blocking thread and the runtime's
//! other work (the other jobs of a batch, other tenants') goes on meanwhile. A step's work is
//! bounded by its chunk and the archive's ratio bound; the whole by the file's size limit.

use crate::domain::evidence::restore_secret::{CipherError, Decryptor};
use crate::domain::evidence::result_archive::{Format, UnpackError, Unpacker};

/// Runs `work` on `state` on a blocking thread and gives the state back; Err only when the work
/// panicked (the state is then lost, and the caller ends what it was doing).
pub(crate) async fn off_runtime<S, R>(mut state: S, work: impl FnOnce(&mut S) -> R + Send + 'static) -> Result<(S, R), String>
where
    S: Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let r = work(&mut state);
        (state, r)
    })
    .await
    .map_err(|e| format!("the file's processing stopped: {e}"))
}

/// `off_runtime` for a file's steps, two at a time per process (the functions' two cores at
/// most): a batch of ten downloads inflates two chunks at once, not ten, as when the steps ran on
/// the runtime's one thread inflated one.
pub(crate) async fn off_runtime_bounded<S, R>(state: S, work: impl FnOnce(&mut S) -> R + Send + 'static) -> Result<(S, R), String>
where
    S: Send + 'static,
    R: Send + 'static,
{
    static STEPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _turn = STEPS.acquire().await.map_err(|e| e.to_string())?;
    off_runtime(state, work).await
}

/// The running state of one file's intake.
pub(crate) struct FileIntake {
    unpacker: Unpacker,
    /// What came, when it was an archive: the file may be the archive itself.
    came: Hashes,
    /// What came before its format was known.
    head: Vec<u8>,
    /// What is kept: the file, unpacked and decrypted.
    kept: Hashes,
    decrypt: Option<Decryptor>,
    encrypted: u64,
    out: Vec<u8>,
    plain: Vec<u8>,
}

/// Why the intake's last step failed.
#[derive(Debug)]
pub(crate) enum IntakeError {
    Unpack(UnpackError),
    Cipher(CipherError),
}

impl FileIntake {
    pub(crate) fn new(unpacker: Unpacker, decrypt: Option<Decryptor>) -> Self {
        FileIntake {
            unpacker,
            came: Hashes::new(),
            head: Vec::new(),
            kept: Hashes::new(),
            decrypt,
            encrypted: 0,
            out: Vec::new(),
            plain: Vec::new(),
        }
    }

    /// The archive format the bytes so far show, once known.
    pub(crate) fn format(&self) -> Option<Format> {
        self.unpacker.format()
    }

    /// Takes one chunk as it arrived; `body` then holds what it gave to keep.
    pub(crate) fn step(&mut self, chunk: &[u8]) -> Result<(), UnpackError> {
        self.out.clear();
        self.plain.clear();
        let fed = self.unpacker.feed(chunk, &mut self.out);
        match self.unpacker.format() {
            None => self.head.extend_from_slice(chunk),
            Some(Format::Raw) => {}
            Some(_) => {
                self.came.update(&self.head);
                self.head = Vec::new();
                self.came.update(chunk);
            }
        }
        fed?;
        if let Some(cipher) = self.decrypt.as_mut() {
            cipher.feed(&self.out, &mut self.plain);
            self.encrypted += self.out.len() as u64;
            std::mem::swap(&mut self.out, &mut self.plain);
        }
        self.kept.update(&self.out);
        Ok(())
    }

    /// The end of the bytes: the archive's and the cipher's last pieces; `body` then holds them.
    pub(crate) fn finish(&mut self) -> Result<Format, IntakeError> {
        self.out.clear();
        self.plain.clear();
        let format = self.unpacker.finish(&mut self.out).map_err(IntakeError::Unpack)?;
        if let Some(mut cipher) = self.decrypt.take() {
            cipher.feed(&self.out, &mut self.plain);
            self.encrypted += self.out.len() as u64;
            cipher.finish(self.encrypted, &mut self.plain).map_err(IntakeError::Cipher)?;
            std::mem::swap(&mut self.out, &mut self.plain);
        }
        self.kept.update(&self.out);
        Ok(format)
    }

    /// What the last step gave to keep.
    pub(crate) fn body(&self) -> &[u8] {
        &self.out
    }

    /// The kept file's size, SHA-1 and SHA-256 (lower-case hex), and those of what came.
    pub(crate) fn hashes(self) -> (u64, (String, String), (String, String)) {
        (self.kept.size, self.kept.finish(), self.came.finish())
    }
}

struct Hashes {
    sha1: ring::digest::Context,
    sha256: ring::digest::Context,
    size: u64,
}

impl Hashes {
    fn new() -> Self {
        Hashes {
            sha1: ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
            sha256: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        }
    }

    fn update(&mut self, b: &[u8]) {
        self.sha1.update(b);
        self.sha256.update(b);
        self.size += b.len() as u64;
    }

    /// (SHA-1, SHA-256), lower-case hex.
    fn finish(self) -> (String, String) {
        let hex = |d: ring::digest::Digest| d.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>();
        (hex(self.sha1.finish()), hex(self.sha256.finish()))
    }
}

#[cfg(test)]
mod tests {
    use crate::app::evidence::file_intake::*;
    use crate::domain::evidence::result_archive::Limits;

    /// The work runs on another thread than the caller's (the runtime's), and the state comes back.
    #[tokio::test(flavor = "current_thread")]
    async fn each_step_runs_off_the_runtimes_thread() {
        let caller = std::thread::current().id();
        let intake = FileIntake::new(Unpacker::as_it_came(Limits::default()), None);
        let (mut intake, (ran_on, fed)) = off_runtime(intake, |i| (std::thread::current().id(), i.step(b"hello world"))).await.unwrap();
        assert_ne!(ran_on, caller);
        assert!(fed.is_ok());
        assert_eq!(intake.body(), b"hello world");
        assert_eq!(intake.finish().unwrap(), Format::Raw);
        let (size, (_, sha256), _) = intake.hashes();
        assert_eq!((size, sha256.as_str()), (11, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
    }

    /// A step that panics ends the intake with an error, never the caller.
    #[tokio::test(flavor = "current_thread")]
    async fn a_step_that_panics_is_an_error_not_a_panic() {
        let got = off_runtime(0u8, |_| -> u8 { panic!("boom") }).await;
        assert!(got.is_err_and(|e| e.contains("stopped")));
    }
}
