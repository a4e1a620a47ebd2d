//! Punctured GGM trees by the half-tree construction (Guo, Yang, Wang, Zhang, Xie, Liu, Zhao:
//! "Half-Tree: Halving the Cost of Tree Expansion in COT and DPF", EUROCRYPT 2023), many at once.
//!
//! Every tree has `2^depth` leaves. Level 1 of a tree is `(s, s ⊕ r)` for a random seed `s` and
//! an offset `r` (the COT's Δ, or a fresh random value per tree for VOLE). Below it a node `x`
//! has the children `(H(x), x ⊕ H(x))` with the circular-correlation-robust hash
//! `H(x) = π(σ(x)) ⊕ σ(x)`, π fixed-key AES and `σ(x_L ‖ x_R) = (x_L ⊕ x_R ‖ x_L)` (Guo, Katz,
//! Wang, Yu, S&P 2020). So two children sum to their parent and every level sums to `r`: the
//! level sums `K_0^l` (even nodes) and `K_1^l` (odd nodes) satisfy `K_1^l = K_0^l ⊕ r`. One AES
//! call per node (the classic tree needs two), and with `r = Δ` one COT per level carries
//! `K_{1−b_l}^l` in a single block.
//!
//! The sender knows every node. The receiver, given `K_{1−b_l}^l` for each level (where `b_l` is
//! bit `l` of its punctured leaf `α`, top bit first), rebuilds every node except those on the
//! path to `α`: it ends with every leaf but leaf `α`.
//! What the receiver learns: all leaves except `α`; leaf `α` stays pseudorandom to it (H circular
//! correlation robust, π an ideal permutation) because every value it receives is a sum over
//! off-path subtrees; it learns `w_α ⊕ r` as the sum of the other leaves, and nothing about `r`.

use aes::Aes128;
use aes::cipher::{Array, KeyInit};

use crate::ot::aes_encrypt_all;

/// Shape of every tree in one batch: `leaves = 2^depth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub leaves: usize,
    pub depth: usize,
}

impl Shape {
    /// Trees of `2^depth` leaves, `depth ≥ 1`.
    pub fn new(depth: usize) -> Shape {
        assert!((1..40).contains(&depth), "tree depth {depth} outside 1..40");
        Shape { leaves: 1 << depth, depth }
    }
    /// Nodes at level `l` (0 = root).
    pub fn width(&self, l: usize) -> usize {
        1 << l
    }
}

/// The node hash `H(x) = π(σ(x)) ⊕ σ(x)` (fixed public key).
pub struct NodeHash {
    pi: Aes128,
}

impl Default for NodeHash {
    fn default() -> Self {
        NodeHash { pi: Aes128::new(&Array::from(*b"tandem-half-tree")) }
    }
}

/// `σ(x_L ‖ x_R) = (x_L ⊕ x_R ‖ x_L)`, `x_L` the high half: a linear orthomorphism.
fn sigma(x: u128) -> u128 {
    let (hi, lo) = ((x >> 64) as u64, x as u64);
    (((hi ^ lo) as u128) << 64) | hi as u128
}

impl NodeHash {
    /// The children of every node of `parents` (any number of trees' levels, concatenated):
    /// `out[2k] = H(p_k)`, `out[2k + 1] = p_k ⊕ H(p_k)`. `scratch` is reused between calls.
    fn children(&self, parents: &[u128], scratch: &mut Vec<u128>, out: &mut Vec<u128>) {
        scratch.clear();
        scratch.extend(parents.iter().map(|&p| sigma(p)));
        aes_encrypt_all(&self.pi, scratch);
        out.clear();
        out.reserve(2 * parents.len());
        for (&p, &e) in parents.iter().zip(scratch.iter()) {
            let h = e ^ sigma(p);
            out.push(h);
            out.push(p ^ h);
        }
    }
}

/// XOR of the even-indexed nodes of one tree's level (`K_0`; `K_1 = K_0 ⊕ r`).
fn even_sum(nodes: &[u128]) -> u128 {
    nodes.iter().step_by(2).fold(0, |a, v| a ^ v)
}

/// Sender: expands tree `t` from level 1 `(seeds[t], seeds[t] ⊕ offsets[t])`. Returns the leaves
/// (`seeds.len() × leaves`, tree-major) and, per tree and level `1..=depth`, `K_0` (tree-major).
pub fn expand_full(h: &NodeHash, shape: &Shape, seeds: &[u128], offsets: &[u128]) -> (Vec<u128>, Vec<u128>) {
    assert_eq!(seeds.len(), offsets.len());
    let (trees, depth) = (seeds.len(), shape.depth);
    let mut sums = vec![0u128; trees * depth];
    let mut level: Vec<u128> = seeds.iter().zip(offsets).flat_map(|(&s, &r)| [s, s ^ r]).collect();
    let (mut next, mut scratch) = (Vec::new(), Vec::new());
    for l in 1..=depth {
        if l > 1 {
            h.children(&level, &mut scratch, &mut next);
            std::mem::swap(&mut level, &mut next);
        }
        let w = shape.width(l);
        for t in 0..trees {
            sums[t * depth + l - 1] = even_sum(&level[t * w..(t + 1) * w]);
        }
    }
    wipe(&mut next);
    wipe(&mut scratch);
    (level, sums)
}

fn wipe(v: &mut Vec<u128>) {
    zeroize::Zeroize::zeroize(v);
}

/// Bit of `alpha` that selects the level-`l` path node's side (top bit at level 1).
pub fn path_bit(shape: &Shape, alpha: usize, l: usize) -> usize {
    (alpha >> (shape.depth - l)) & 1
}

/// Receiver: rebuilds each tree punctured at `alphas[t]` from `received[t·depth + l − 1]` =
/// `K_{1−b_l}^l`. Returns the leaves with each leaf `alphas[t]` set to 0 (unknown).
pub fn expand_punctured(h: &NodeHash, shape: &Shape, alphas: &[usize], received: &[u128]) -> Vec<u128> {
    let (trees, depth) = (alphas.len(), shape.depth);
    assert_eq!(received.len(), trees * depth);
    let mut level = vec![0u128; 2 * trees];
    let (mut next, mut scratch) = (Vec::new(), Vec::new());
    for l in 1..=depth {
        if l > 1 {
            h.children(&level, &mut scratch, &mut next);
            std::mem::swap(&mut level, &mut next);
        }
        let w = shape.width(l);
        for (t, &alpha) in alphas.iter().enumerate() {
            let nodes = &mut level[t * w..(t + 1) * w];
            let path = alpha >> (depth - l);
            let sibling = path ^ 1;
            // The path parent was unknown: both its children are garbage until set here.
            nodes[path] = 0;
            nodes[sibling] = 0;
            let side = sibling & 1;
            let mut s = received[t * depth + l - 1];
            for v in nodes.iter().skip(side).step_by(2) {
                s ^= v;
            }
            nodes[sibling] = s;
        }
    }
    wipe(&mut next);
    wipe(&mut scratch);
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver's view of tree `t`: `K_{1−b_l}` from the sender's `K_0` and the offset.
    fn received(shape: &Shape, sums: &[u128], offsets: &[u128], alphas: &[usize]) -> Vec<u128> {
        (0..alphas.len() * shape.depth)
            .map(|i| {
                let (t, l) = (i / shape.depth, i % shape.depth + 1);
                if path_bit(shape, alphas[t], l) == 1 { sums[i] } else { sums[i] ^ offsets[t] }
            })
            .collect()
    }

    #[test]
    fn receiver_rebuilds_every_leaf_but_the_punctured_one_and_leaves_sum_to_the_offset() {
        let hash = NodeHash::default();
        for depth in [1usize, 2, 3, 6, 9] {
            let shape = Shape::new(depth);
            let trees = 5;
            let seeds: Vec<u128> = (0..trees as u128).map(|t| t.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1).collect();
            let offsets: Vec<u128> =
                (0..trees as u128).map(|t| (t + 7).wrapping_mul(0x1234_5678_9abc_def1) << 3).collect();
            let (full, sums) = expand_full(&hash, &shape, &seeds, &offsets);
            assert_eq!(full.len(), trees * shape.leaves);
            for t in 0..trees {
                let tree = &full[t * shape.leaves..(t + 1) * shape.leaves];
                assert_eq!(tree.iter().fold(0, |a, v| a ^ v), offsets[t], "depth {depth} tree {t}: leaf sum");
            }
            let alphas: Vec<usize> = (0..trees).map(|t| (t * 7 + 3) % shape.leaves).collect();
            let got = expand_punctured(&hash, &shape, &alphas, &received(&shape, &sums, &offsets, &alphas));
            for t in 0..trees {
                for j in 0..shape.leaves {
                    let (g, f) = (got[t * shape.leaves + j], full[t * shape.leaves + j]);
                    if j == alphas[t] {
                        assert_eq!(g, 0, "depth {depth} tree {t}: punctured leaf not cleared");
                        assert_ne!(f, 0);
                    } else {
                        assert_eq!(g, f, "depth {depth} tree {t} leaf {j}");
                    }
                }
            }
            let mut distinct = full.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), full.len(), "leaves repeat");
        }
    }

    /// A receiver given the wrong level sums (`K_{b_l}`, its own side) rebuilds no leaf right:
    /// the rebuilt leaves depend on the received sums.
    #[test]
    fn wrong_level_sums_rebuild_wrong_leaves() {
        let hash = NodeHash::default();
        let shape = Shape::new(5);
        let (seeds, offsets) = ([11u128, 12], [1u128 << 100, 3]);
        let (full, sums) = expand_full(&hash, &shape, &seeds, &offsets);
        let alphas = [4usize, 31];
        let mut wrong = received(&shape, &sums, &offsets, &alphas);
        wrong[0] ^= offsets[0];
        let got = expand_punctured(&hash, &shape, &alphas, &wrong);
        let half = shape.leaves / 2;
        // Flipping level 1 of tree 0 spoils the half of tree 0 that the sibling roots.
        assert!((half..shape.leaves).all(|j| got[j] != full[j]), "sibling half rebuilt despite wrong sum");
        assert_eq!(
            &got[shape.leaves..],
            &{
                let mut t1 = full[shape.leaves..].to_vec();
                t1[31] = 0;
                t1
            }[..]
        );
    }
}
