//! What makes one restore its own (issue 29 §5): a folder name no local user of the device can
//! predict, and the key the restored copy travels under.
//!
//! The restore script removes the file's antivirus exclusion in the same run that restored the
//! file; what GetFile then collects is the file encrypted with AES-256-CBC and PKCS #7 padding
//! (what .NET Framework's `Aes.Create()` does by default, on every Windows live response runs
//! on), so antivirus finds nothing to quarantine again and the device never keeps the file in
//! the clear. The key is no secret from the device (it is on the script's command line): it
//! only keeps the copy's bytes from being the malware's.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use base64::Engine;
use serde::{Deserialize, Serialize};

const KEY: usize = 32;
const BLOCK: usize = 16;

/// A restore job's folder name (32 hex digits) and its key and IV (Base64 of 48 bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSecret {
    pub folder: String,
    pub key: String,
}

impl std::fmt::Debug for RestoreSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreSecret").field("folder", &self.folder).finish_non_exhaustive()
    }
}

impl RestoreSecret {
    /// From the operating system's generator; `None` when it fails (the restore is then
    /// refused, never run with a guessable folder).
    pub fn generate() -> Option<Self> {
        let mut b = [0u8; 16 + KEY + BLOCK];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok()?;
        let folder = b[..16].iter().map(|x| format!("{x:02x}")).collect();
        Some(RestoreSecret { folder, key: base64::engine::general_purpose::STANDARD.encode(&b[16..]) })
    }

    /// Whether it is one [`generate`](Self::generate) makes: a record read back is checked
    /// before any of it reaches a device's command line.
    pub fn is_well_formed(&self) -> bool {
        self.folder.len() == 32 && self.folder.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) && self.key_iv().is_some()
    }

    fn key_iv(&self) -> Option<([u8; KEY], [u8; BLOCK])> {
        let b = base64::engine::general_purpose::STANDARD.decode(&self.key).ok()?;
        if b.len() != KEY + BLOCK {
            return None;
        }
        let (mut key, mut iv) = ([0u8; KEY], [0u8; BLOCK]);
        key.copy_from_slice(&b[..KEY]);
        iv.copy_from_slice(&b[KEY..]);
        Some((key, iv))
    }

    pub fn decryptor(&self) -> Option<Decryptor> {
        let (key, iv) = self.key_iv()?;
        Some(Decryptor { cipher: Aes256::new(&GenericArray::from(key)), prev: iv, pending: Vec::new() })
    }

    /// What the script does to the file (tests and the simulator's model of the device).
    pub fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let (key, iv) = self.key_iv()?;
        let cipher = Aes256::new(&GenericArray::from(key));
        let pad = BLOCK - plain.len() % BLOCK;
        let mut data = plain.to_vec();
        data.resize(plain.len() + pad, pad as u8);
        let mut prev = iv;
        for block in data.chunks_exact_mut(BLOCK) {
            block.iter_mut().zip(prev).for_each(|(b, p)| *b ^= p);
            let b = GenericArray::from_mut_slice(block);
            cipher.encrypt_block(b);
            prev.copy_from_slice(b);
        }
        Some(data)
    }
}

/// Why a restored copy did not decrypt: not what the script wrote with this job's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("the restored copy is {0} bytes, not a whole number of AES blocks: cut short or not the script's")]
    Truncated(u64),
    #[error("the restored copy's padding is wrong: not encrypted with this job's key")]
    Padding,
}

/// AES-256-CBC decryption fed in chunks as the download comes: memory stays one chunk and a
/// block, whatever the file's size.
pub struct Decryptor {
    cipher: Aes256,
    prev: [u8; BLOCK],
    pending: Vec<u8>,
}

impl Decryptor {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        let whole = self.pending.len() / BLOCK;
        // The last whole block holds the padding, known to be the last only at the end.
        let ready = if self.pending.len().is_multiple_of(BLOCK) { whole.saturating_sub(1) } else { whole } * BLOCK;
        for block in self.pending[..ready].chunks_exact(BLOCK) {
            out.extend_from_slice(&open(&self.cipher, &mut self.prev, block));
        }
        self.pending.drain(..ready);
    }

    /// The last block, its padding checked and removed. `total` is how many bytes were fed (for
    /// the error).
    pub fn finish(mut self, total: u64, out: &mut Vec<u8>) -> Result<(), CipherError> {
        if self.pending.len() != BLOCK {
            return Err(CipherError::Truncated(total));
        }
        let plain = open(&self.cipher, &mut self.prev, &self.pending);
        let pad = usize::from(plain[BLOCK - 1]);
        if pad == 0 || pad > BLOCK || plain[BLOCK - pad..].iter().any(|b| usize::from(*b) != pad) {
            return Err(CipherError::Padding);
        }
        out.extend_from_slice(&plain[..BLOCK - pad]);
        Ok(())
    }
}

/// One CBC block: decrypted, then XORed with the block before it.
fn open(cipher: &Aes256, prev: &mut [u8; BLOCK], block: &[u8]) -> [u8; BLOCK] {
    let mut b = GenericArray::clone_from_slice(block);
    cipher.decrypt_block(&mut b);
    let mut plain = [0u8; BLOCK];
    plain.iter_mut().zip(b.iter().zip(*prev)).for_each(|(o, (d, p))| *o = d ^ p);
    prev.copy_from_slice(block);
    plain
}

#[cfg(test)]
mod tests {
    use crate::domain::evidence::restore_secret::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
    }

    fn secret(key: &[u8], iv: &[u8]) -> RestoreSecret {
        let b = [key, iv].concat();
        RestoreSecret { folder: "0".repeat(32), key: base64::engine::general_purpose::STANDARD.encode(b) }
    }

    /// NIST SP 800-38A F.2.6 (CBC-AES256.Decrypt): the same AES-CBC as .NET's.
    #[test]
    fn decrypts_nists_cbc_aes256_vector() {
        let s = secret(&hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"), &hex("000102030405060708090a0b0c0d0e0f"));
        let cipher = hex(concat!(
            "f58c4c04d6e5f1ba779eabfb5f7bfbd6",
            "9cfc4e967edb808d679f777bc6702c7d",
            "39f23369a9d9bacfa530e26304231461",
            "b2eb05e2c39be9fcda6c19078c6a9d1b"
        ));
        let plain =
            hex(concat!("6bc1bee22e409f96e93d7e117393172a", "ae2d8a571e03ac9c9eb76fac45af8e51", "30c81c46a35ce411e5fbc1191a0a52ef"));
        let Some(mut d) = s.decryptor() else { panic!("a well-formed key") };
        let mut out = Vec::new();
        for chunk in cipher.chunks(7) {
            d.feed(chunk, &mut out);
        }
        assert_eq!(out, plain, "all but the last block, which waits for the end");
        assert_eq!(d.finish(64, &mut out), Err(CipherError::Padding), "NIST's last block is no PKCS #7 padding");
        let Some(enc) = s.encrypt(&plain) else { panic!() };
        assert_eq!(enc[..48], cipher[..48], "encryption matches the vector too");
    }

    #[test]
    fn what_the_script_writes_comes_back_whole_in_any_chunking_and_a_cut_or_a_wrong_key_is_refused() {
        let Some(s) = RestoreSecret::generate() else { panic!("the system generator") };
        assert!(s.is_well_formed());
        for len in [0usize, 1, 15, 16, 17, 4096, 100_003] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let Some(enc) = s.encrypt(&plain) else { panic!() };
            assert_eq!(enc.len() % BLOCK, 0);
            if len > 0 {
                assert_ne!(enc[..len.min(64)], plain[..len.min(64)], "not the file's bytes");
            }
            for chunk in [1usize, 16, 1000, 1 << 20] {
                let Some(mut d) = s.decryptor() else { panic!() };
                let mut out = Vec::new();
                enc.chunks(chunk).for_each(|c| d.feed(c, &mut out));
                assert_eq!(d.finish(enc.len() as u64, &mut out), Ok(()));
                assert_eq!(out, plain, "{len} bytes in chunks of {chunk}");
            }
            let Some(mut d) = s.decryptor() else { panic!() };
            let mut out = Vec::new();
            d.feed(&enc[..enc.len() - 1], &mut out);
            assert!(matches!(d.finish(0, &mut out), Err(CipherError::Truncated(_))));
        }
        let Some(other) = RestoreSecret::generate() else { panic!() };
        assert_ne!(other.folder, s.folder, "each job its own folder");
        let text = b"a file of several blocks, so that a wrong key shows before the padding".to_vec();
        let Some(enc) = s.encrypt(&text) else { panic!() };
        let Some(mut d) = other.decryptor() else { panic!() };
        let mut out = Vec::new();
        d.feed(&enc, &mut out);
        assert!(!out.is_empty() && !text.starts_with(&out), "a wrong key opens nothing of the file");
        // Its padding looks valid 1 time in about 256: the hash check after catches that.
        let _ = d.finish(enc.len() as u64, &mut out);
        assert_ne!(out, text);
    }

    #[test]
    fn a_record_that_was_tampered_with_never_reaches_a_command_line() {
        let Some(s) = RestoreSecret::generate() else { panic!() };
        for bad in [
            RestoreSecret { folder: "..\\..\\Windows".into(), ..s.clone() },
            RestoreSecret { folder: "A".repeat(32), ..s.clone() },
            RestoreSecret { key: "x; Remove-Item C:\\".into(), ..s.clone() },
            RestoreSecret { key: base64::engine::general_purpose::STANDARD.encode([0u8; 47]), ..s.clone() },
        ] {
            assert!(!bad.is_well_formed(), "{bad:?}");
        }
        assert!(!format!("{s:?}").contains(&s.key), "the key stays out of logs");
    }
}
