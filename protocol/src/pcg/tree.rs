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

/// Parents hashed per AES batch while a level expands in place.
const BATCH: usize = 1024;

impl NodeHash {
    /// Expands one tree in place: `nodes[..2]` holds level 1 (`nodes.len() = 2^depth`);
    /// afterwards `nodes` holds the leaves, each ANDed with `leaf_mask`. `level(l, nodes, sums)`
    /// runs on each level `l = 1..=depth` (its `2^l` nodes, and the XOR of its even and of its
    /// odd nodes, summed while they are written) before the next level is built from it. The
    /// children of `p` are `H(p)` and `p ⊕ H(p)`; a level is built from its last parents back
    /// (child `2k + 1 ≥ k`), batch by batch, so no parent is overwritten before it is hashed.
    pub fn expand_tree(
        &self,
        nodes: &mut [u128],
        scratch: &mut Vec<u128>,
        leaf_mask: u128,
        mut level: impl FnMut(usize, &mut [u128], [u128; 2]),
    ) {
        let depth = nodes.len().ilog2() as usize;
        assert!(nodes.len() == 1 << depth && depth >= 1, "tree of {} nodes", nodes.len());
        scratch.resize(2 * BATCH, 0);
        let (parents, hashes) = scratch.split_at_mut(BATCH);
        if depth == 1 {
            nodes[0] &= leaf_mask;
            nodes[1] &= leaf_mask;
        }
        let top = [nodes[0], nodes[1]];
        level(1, &mut nodes[..2], top);
        for l in 2..=depth {
            let width: usize = 1 << (l - 1);
            let mask = if l == depth { leaf_mask } else { !0 };
            let mut sums = [0u128; 2];
            let mut end = width;
            while end > 0 {
                let start = end.saturating_sub(BATCH);
                let count = end - start;
                parents[..count].copy_from_slice(&nodes[start..end]);
                for (h, &p) in hashes[..count].iter_mut().zip(&parents[..count]) {
                    *h = sigma(p);
                }
                aes_encrypt_all(&self.pi, &mut hashes[..count]);
                for (k, (&p, &e)) in parents[..count].iter().zip(&hashes[..count]).enumerate() {
                    let h = e ^ sigma(p);
                    let children = [h & mask, (p ^ h) & mask];
                    nodes[2 * (start + k)..2 * (start + k) + 2].copy_from_slice(&children);
                    sums[0] ^= children[0];
                    sums[1] ^= children[1];
                }
                end = start;
            }
            level(l, &mut nodes[..2 * width], sums);
        }
        zeroize::Zeroize::zeroize(&mut scratch[..]);
    }
}

/// Sender: expands one tree in place from level 1 `(seed, seed ⊕ offset)` into `leaves`
/// (`2^depth` of them, each ANDed with `leaf_mask`) and writes `K_0` (the XOR of the even
/// nodes; `K_1 = K_0 ⊕ r`) of levels `1..=depth` to `sums`. With a mask the leaf level's sums
/// are of the masked leaves (`K_0 & mask`; the receiver masks what it rebuilds).
pub fn expand_full(
    h: &NodeHash,
    seed: u128,
    offset: u128,
    leaves: &mut [u128],
    sums: &mut [u128],
    scratch: &mut Vec<u128>,
    leaf_mask: u128,
) {
    leaves[0] = seed;
    leaves[1] = seed ^ offset;
    h.expand_tree(leaves, scratch, leaf_mask, |l, _, level_sums| sums[l - 1] = level_sums[0]);
}

/// Bit of `alpha` that selects the level-`l` path node's side (top bit at level 1).
pub fn path_bit(shape: &Shape, alpha: usize, l: usize) -> usize {
    (alpha >> (shape.depth - l)) & 1
}

/// Receiver: rebuilds one tree punctured at `alpha` in place into `leaves` from `received[l − 1]`
/// = `K_{1−b_l}^l`, the leaves ANDed with `leaf_mask` (as the sender's). Leaf `alpha` is left 0
/// (unknown). Returns the XOR of the known leaves.
pub fn expand_punctured(
    h: &NodeHash,
    alpha: usize,
    received: &[u128],
    leaves: &mut [u128],
    scratch: &mut Vec<u128>,
    leaf_mask: u128,
) -> u128 {
    let depth = leaves.len().ilog2() as usize;
    assert_eq!(received.len(), depth);
    leaves[0] = 0;
    leaves[1] = 0;
    let mut known = 0;
    h.expand_tree(leaves, scratch, leaf_mask, |l, nodes, sums| {
        let path = alpha >> (depth - l);
        let sibling = path ^ 1;
        // The path parent was unknown: both its children are garbage until set here. The
        // sibling is the received sum of its parity's nodes less the others (the garbage
        // sibling taken back out of the level's sum).
        let rebuilt = received[l - 1] ^ sums[sibling & 1] ^ nodes[sibling];
        let rebuilt = if l == depth { rebuilt & leaf_mask } else { rebuilt };
        known = sums[0] ^ sums[1] ^ nodes[path] ^ nodes[sibling] ^ rebuilt;
        nodes[path] = 0;
        nodes[sibling] = rebuilt;
    });
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sender's leaves and level sums of `trees` trees, tree-major.
    fn full(shape: &Shape, seeds: &[u128], offsets: &[u128], mask: u128) -> (Vec<u128>, Vec<u128>) {
        let (hash, mut scratch) = (NodeHash::default(), Vec::new());
        let mut leaves = vec![0u128; seeds.len() * shape.leaves];
        let mut sums = vec![0u128; seeds.len() * shape.depth];
        for (t, (tree, sums)) in leaves.chunks_mut(shape.leaves).zip(sums.chunks_mut(shape.depth)).enumerate() {
            expand_full(&hash, seeds[t], offsets[t], tree, sums, &mut scratch, mask);
        }
        (leaves, sums)
    }

    /// The children of a node by the definition, for the reference tree below.
    fn children(x: u128) -> (u128, u128) {
        let mut e = [sigma(x)];
        aes_encrypt_all(&NodeHash::default().pi, &mut e);
        let h = e[0] ^ sigma(x);
        (h, x ^ h)
    }

    /// The leaves of one tree built level by level into fresh vectors (no in-place expansion).
    fn reference_leaves(depth: usize, seed: u128, offset: u128) -> Vec<u128> {
        let mut level = vec![seed, seed ^ offset];
        for _ in 1..depth {
            level = level.iter().flat_map(|&p| <[u128; 2]>::from(children(p))).collect();
        }
        level
    }

    /// The receiver's view of tree `t`: `K_{1−b_l}` from the sender's `K_0` and the offset.
    fn received(shape: &Shape, sums: &[u128], offsets: &[u128], alphas: &[usize]) -> Vec<u128> {
        (0..alphas.len() * shape.depth)
            .map(|i| {
                let (t, l) = (i / shape.depth, i % shape.depth + 1);
                if path_bit(shape, alphas[t], l) == 1 { sums[i] } else { sums[i] ^ offsets[t] }
            })
            .collect()
    }

    /// The receiver's leaves, and the sums of its known leaves it returns per tree.
    fn punctured(shape: &Shape, alphas: &[usize], received: &[u128], mask: u128) -> (Vec<u128>, Vec<u128>) {
        let (hash, mut scratch) = (NodeHash::default(), Vec::new());
        let mut leaves = vec![7u128; alphas.len() * shape.leaves];
        let mut known = Vec::new();
        for (t, tree) in leaves.chunks_mut(shape.leaves).enumerate() {
            let received = &received[t * shape.depth..(t + 1) * shape.depth];
            known.push(expand_punctured(&hash, alphas[t], received, tree, &mut scratch, mask));
        }
        (leaves, known)
    }

    #[test]
    fn receiver_rebuilds_every_leaf_but_the_punctured_one_and_leaves_sum_to_the_offset() {
        // Depth 12: levels wider than one hashing batch. Mask !1: COT's cleared low bits.
        for (depth, mask) in [1usize, 2, 3, 6, 9, 12].into_iter().flat_map(|d| [(d, !0u128), (d, !1)]) {
            let shape = Shape::new(depth);
            let trees = 5;
            let seeds: Vec<u128> =
                (1..=trees as u128).map(|t| t.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_0123_4567_89ab)).collect();
            let offsets: Vec<u128> =
                (0..trees as u128).map(|t| ((t + 7).wrapping_mul(0x1234_5678_9abc_def1) << 3) | 1).collect();
            let (full, sums) = full(&shape, &seeds, &offsets, mask);
            assert_eq!(full.len(), trees * shape.leaves);
            for t in 0..trees {
                let tree = &full[t * shape.leaves..(t + 1) * shape.leaves];
                let reference: Vec<u128> =
                    reference_leaves(depth, seeds[t], offsets[t]).iter().map(|v| v & mask).collect();
                assert_eq!(tree, &reference[..], "depth {depth} tree {t}");
                assert_eq!(tree.iter().fold(0, |a, v| a ^ v), offsets[t] & mask, "depth {depth} tree {t}: leaf sum");
            }
            let alphas: Vec<usize> = (0..trees).map(|t| (t * 7 + 3) % shape.leaves).collect();
            let (got, known) = punctured(&shape, &alphas, &received(&shape, &sums, &offsets, &alphas), mask);
            for t in 0..trees {
                let tree = &got[t * shape.leaves..(t + 1) * shape.leaves];
                assert_eq!(known[t], tree.iter().fold(0, |a, v| a ^ v), "depth {depth} tree {t}: known sum");
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
        let shape = Shape::new(5);
        let (seeds, offsets) = ([11u128, 12], [1u128 << 100, 3]);
        let (full, sums) = full(&shape, &seeds, &offsets, !0);
        let alphas = [4usize, 31];
        let mut wrong = received(&shape, &sums, &offsets, &alphas);
        wrong[0] ^= offsets[0];
        let (got, _) = punctured(&shape, &alphas, &wrong, !0);
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
