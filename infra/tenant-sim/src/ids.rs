//! Deterministic identifiers: every id the simulator makes comes from a seeded generator.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded generator; the same seed and the same sequence of calls give the
/// same ids, alerts and tokens, so a failing test can be replayed.
pub type SimRng = ChaCha8Rng;

pub fn rng(seed: u64, stream: u64) -> SimRng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A GUID in the lowercase 8-4-4-4-12 form Entra and Graph print.
pub fn guid(r: &mut impl RngCore) -> String {
    let mut b = [0u8; 16];
    r.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

pub fn hex(r: &mut impl RngCore, bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", r.gen::<u8>())).collect()
}

pub fn pick<'a, T>(r: &mut impl RngCore, items: &'a [T]) -> &'a T {
    &items[r.gen_range(0..items.len())]
}

/// `pick` for string literals, whose element type inference otherwise trips over `str`.
pub fn pick_str(r: &mut impl RngCore, items: &[&'static str]) -> &'static str {
    items[r.gen_range(0..items.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids() {
        let a = guid(&mut rng(7, 1));
        let b = guid(&mut rng(7, 1));
        let c = guid(&mut rng(7, 2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
