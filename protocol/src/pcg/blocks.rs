//! [`Blocks`]: the generator's leaf and output buffers, recycled within the process.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use zeroize::Zeroize;

/// Bytes of freed, wiped buffers the process keeps for the next runs: both buffers of one
/// party's largest training refill (2^22 COTs each way, 128 MB of leaves each).
pub const POOL_BYTES: usize = 256 << 20;

/// Freed buffers, every block zero.
static POOL: Mutex<Vec<Vec<u128>>> = Mutex::new(Vec::new());

/// 128-bit blocks: a run's leaves (32 bytes per output), compressed in place to its outputs.
/// Fresh memory costs the kernel a page fault and a page wipe per 4 KiB (12 ms per 32 MB on
/// the reference machine, as much as the convolution), so buffers are recycled: a dropped
/// buffer is wiped and kept for the next run while the pool holds under [`POOL_BYTES`]. The
/// blocks start zeroed; they are wiped on drop and when truncated, so no secret outlives its
/// use.
#[derive(Default)]
pub struct Blocks {
    /// At least `len` blocks; those past `len` are zero.
    buf: Vec<u128>,
    len: usize,
}

impl Blocks {
    /// `len` zero blocks: a pooled buffer of `len` to `2·len` blocks if there is one, else fresh.
    pub fn zeroed(len: usize) -> Blocks {
        if len == 0 {
            return Blocks::default();
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let fits = (0..pool.len()).filter(|&i| (len..=2 * len).contains(&pool[i].len())).min_by_key(|&i| pool[i].len());
        let buf = match fits {
            Some(i) => pool.swap_remove(i),
            None => vec![0u128; len],
        };
        Blocks { buf, len }
    }

    /// Keeps the first `len` blocks, wiping the rest.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.buf[len..self.len].zeroize();
            self.len = len;
        }
    }
}

impl Deref for Blocks {
    type Target = [u128];
    fn deref(&self) -> &[u128] {
        &self.buf[..self.len]
    }
}

impl DerefMut for Blocks {
    fn deref_mut(&mut self) -> &mut [u128] {
        &mut self.buf[..self.len]
    }
}

impl<'a> IntoIterator for &'a Blocks {
    type Item = &'a u128;
    type IntoIter = std::slice::Iter<'a, u128>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Zeroize for Blocks {
    fn zeroize(&mut self) {
        self.deref_mut().zeroize();
    }
}

impl Drop for Blocks {
    /// Wipes the blocks, then keeps the buffer if the pool has room.
    fn drop(&mut self) {
        self.zeroize();
        let buf = std::mem::take(&mut self.buf);
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = pool.iter().map(|b| b.len() * 16).sum();
        if !buf.is_empty() && held + buf.len() * 16 <= POOL_BYTES {
            pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written blocks read back; truncation wipes what it cuts; a recycled buffer (the same
    /// size again, from the pool while other tests run too) starts zeroed.
    #[test]
    fn blocks_start_zeroed_hold_what_is_written_and_wipe_what_they_drop() {
        let pattern = |i: usize| (i as u128) << 64 | 7;
        for len in [0usize, 1, 3, 1 << 17] {
            for _ in 0..2 {
                let mut b = Blocks::zeroed(len);
                assert_eq!(b.len(), len);
                assert!(b.buf.len() >= len && b.iter().all(|&v| v == 0), "not zeroed");
                for (i, v) in b.iter_mut().enumerate() {
                    *v = pattern(i);
                }
                assert!(b.iter().enumerate().all(|(i, &v)| v == pattern(i)));
                b.truncate(len / 2);
                assert_eq!(b.len(), len / 2);
                assert!(b.buf[len / 2..].iter().all(|&v| v == 0), "truncated blocks not wiped");
                b.truncate(len); // never grows
                assert_eq!(b.len(), len / 2);
            }
        }
        assert!(Blocks::default().is_empty());
    }
}
