//! What m365-ingest's restore script (version 2) writes for GetFile: the restored file
//! encrypted with AES-256-CBC and PKCS #7 padding (.NET Framework's `Aes.Create()` defaults)
//! under the 32-byte key and 16-byte IV its `-KeyB64` carries.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes256;

/// `None` when `key_iv` is not 48 bytes (the script exits 2 then).
pub fn seal(key_iv: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
    if key_iv.len() != 48 {
        return None;
    }
    let cipher = Aes256::new(GenericArray::from_slice(&key_iv[..32]));
    let pad = 16 - plain.len() % 16;
    let mut data = plain.to_vec();
    data.resize(plain.len() + pad, pad as u8);
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&key_iv[32..]);
    for block in data.chunks_exact_mut(16) {
        block.iter_mut().zip(prev).for_each(|(b, p)| *b ^= p);
        let b = GenericArray::from_mut_slice(block);
        cipher.encrypt_block(b);
        prev.copy_from_slice(b);
    }
    Some(data)
}
