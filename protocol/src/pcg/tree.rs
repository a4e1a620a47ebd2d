//! Punctured GGM trees, many at once (Boyle et al., "Efficient Two-Round OT Extension and Silent
//! Non-Interactive Secure Computation", CCS 2019; Ferret, Yang et al. CCS 2020, semi-honest).
//!
//! A tree of depth `d` has `leaves ≤ 2^d` leaves (only the nodes with leaf descendants below
//! `leaves` are computed). Each node `x` has children `(π_L(x) ⊕ x, π_R(x) ⊕ x)` with two
//! fixed-key AES permutations (a length-doubling PRG in the ideal-cipher model). For level `l`,
//! `K_0^l` / `K_1^l` are the XORs of the level's even / odd nodes.
//!
//! The sender knows the root and so every node. The receiver, given `K_{1−b_l}^l` for each level
//! (where `b_l` is bit `l` of its punctured leaf `α`, top bit first), rebuilds every node except
//! those on the path to `α`: it ends with every leaf but leaf `α`.
//! What the receiver learns: all leaves except `α`; leaf `α` stays pseudorandom to it because
//! every value it receives is a sum over off-path subtrees.

use aes::Aes128;
use aes::cipher::{Array, KeyInit};

use crate::ot::aes_encrypt_all;

/// Shape of every tree in one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub leaves: usize,
    pub depth: usize,
}

impl Shape {
    pub fn new(leaves: usize) -> Shape {
        assert!(leaves >= 2, "a punctured tree needs at least 2 leaves");
        Shape { leaves, depth: leaves.next_power_of_two().trailing_zeros() as usize }
    }
    /// Nodes kept at level `l` (0 = root).
    pub fn width(&self, l: usize) -> usize {
        self.leaves.div_ceil(1 << (self.depth - l))
    }
}

/// The fixed-key node PRG.
pub struct NodePrg {
    left: Aes128,
    right: Aes128,
}

impl Default for NodePrg {
    fn default() -> Self {
        NodePrg {
            left: Aes128::new(&Array::from(*b"tandem-ggm-left0")),
            right: Aes128::new(&Array::from(*b"tandem-ggm-right")),
        }
    }
}

impl NodePrg {
    /// Children of every tree's level `l − 1` nodes (`parents` holds `trees × width(l−1)`,
    /// tree-major): returns `trees × width(l)`.
    fn expand(&self, shape: &Shape, l: usize, parents: &[u128]) -> Vec<u128> {
        let (pw, cw) = (shape.width(l - 1), shape.width(l));
        let trees = parents.len() / pw;
        let mut left = parents.to_vec();
        let mut right = parents.to_vec();
        aes_encrypt_all(&self.left, &mut left);
        aes_encrypt_all(&self.right, &mut right);
        let mut out = vec![0u128; trees * cw];
        for t in 0..trees {
            for k in 0..pw {
                let p = parents[t * pw + k];
                let c = 2 * k;
                out[t * cw + c] = left[t * pw + k] ^ p;
                if c + 1 < cw {
                    out[t * cw + c + 1] = right[t * pw + k] ^ p;
                }
            }
        }
        out
    }
}

/// XOR of the even- and odd-indexed nodes of one tree's level.
fn level_sums(nodes: &[u128]) -> [u128; 2] {
    let mut k = [0u128; 2];
    for (i, v) in nodes.iter().enumerate() {
        k[i & 1] ^= v;
    }
    k
}

/// Sender: expands one tree per root. Returns the leaves (`roots.len() × leaves`, tree-major)
/// and, per tree and level `1..=depth`, `[K_0, K_1]` (tree-major).
pub fn expand_full(prg: &NodePrg, shape: &Shape, roots: &[u128]) -> (Vec<u128>, Vec<[u128; 2]>) {
    let trees = roots.len();
    let mut sums = vec![[0u128; 2]; trees * shape.depth];
    let mut level = roots.to_vec();
    for l in 1..=shape.depth {
        level = prg.expand(shape, l, &level);
        let w = shape.width(l);
        for t in 0..trees {
            sums[t * shape.depth + l - 1] = level_sums(&level[t * w..(t + 1) * w]);
        }
    }
    (level, sums)
}

/// Bit of `alpha` that selects the level-`l` path node's side (top bit at level 1).
pub fn path_bit(shape: &Shape, alpha: usize, l: usize) -> usize {
    (alpha >> (shape.depth - l)) & 1
}

/// Receiver: rebuilds each tree punctured at `alphas[t]` from `received[t·depth + l − 1]` =
/// `K_{1−b_l}^l`. Returns the leaves with each leaf `alphas[t]` set to 0 (unknown).
pub fn expand_punctured(prg: &NodePrg, shape: &Shape, alphas: &[usize], received: &[u128]) -> Vec<u128> {
    let trees = alphas.len();
    assert_eq!(received.len(), trees * shape.depth);
    let mut level = vec![0u128; trees];
    for l in 1..=shape.depth {
        level = prg.expand(shape, l, &level);
        let w = shape.width(l);
        for (t, &alpha) in alphas.iter().enumerate() {
            let nodes = &mut level[t * w..(t + 1) * w];
            let path = alpha >> (shape.depth - l);
            let sibling = path ^ 1;
            // The path parent was unknown: both its children are garbage until set here.
            nodes[path] = 0;
            if sibling < w {
                nodes[sibling] = 0;
                let side = sibling & 1;
                let mut s = received[t * shape.depth + l - 1];
                for v in nodes.iter().skip(side).step_by(2) {
                    s ^= v;
                }
                nodes[sibling] = s;
            }
        }
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_rebuilds_every_leaf_but_the_punctured_one() {
        let prg = NodePrg::default();
        for leaves in [2usize, 3, 5, 8, 13, 64] {
            let shape = Shape::new(leaves);
            let roots: Vec<u128> = (0..leaves as u128).map(|t| t.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1).collect();
            let (full, sums) = expand_full(&prg, &shape, &roots);
            assert_eq!(full.len(), roots.len() * leaves);
            let alphas: Vec<usize> = (0..roots.len()).map(|t| (t * 7 + 3) % leaves).collect();
            let received: Vec<u128> = (0..roots.len() * shape.depth)
                .map(|i| {
                    let (t, l) = (i / shape.depth, i % shape.depth + 1);
                    sums[i][1 - path_bit(&shape, alphas[t], l)]
                })
                .collect();
            let got = expand_punctured(&prg, &shape, &alphas, &received);
            for t in 0..roots.len() {
                for j in 0..leaves {
                    let (g, f) = (got[t * leaves + j], full[t * leaves + j]);
                    if j == alphas[t] {
                        assert_ne!(g, f, "leaves {leaves} tree {t}: punctured leaf leaked");
                    } else {
                        assert_eq!(g, f, "leaves {leaves} tree {t} leaf {j}");
                    }
                }
            }
            let mut distinct = full.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), full.len(), "leaves repeat");
        }
    }
}
