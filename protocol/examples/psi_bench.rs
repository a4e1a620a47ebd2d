//! Quick PSI measurement over the in-memory channel pair (both parties in this process, sharing
//! the rayon pool): `cargo run --release --example psi_bench [log2 n ...]` (default 16 18).
//! Prints wall and process CPU seconds, bytes both parties sent, and the same for the EC reference
//! `psi::ec_reference_work` (hash-to-group + 2 scalar multiplications per element, both parties).
//! On the shared 2-core machine other jobs skew wall time; the CPU-time ratio is the robust one.

use std::time::Instant;

use protocol::channel::run_pair;
use protocol::psi::{PsiParams, PsiReveal, ec_reference_work, intersect};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn main() {
    let logs: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().expect("log2 n")).collect();
    let logs = if logs.is_empty() { vec![16, 18] } else { logs };
    println!(
        "n per party | PSI wall s | PSI CPU s | ref wall s | ref CPU s | PSI/ref wall | PSI/ref CPU | MB both sent \
         | B per element (n_g+n_b) | B per n"
    );
    for log in logs {
        let n = 1usize << log;
        // 50% overlap: gov holds 0..n, bank holds n/2..3n/2.
        let gov: Vec<String> = (0..n).map(|i| format!("91{i:016}")).collect();
        let bank: Vec<String> = (n / 2..n + n / 2).map(|i| format!("91{i:016}")).collect();
        let params = PsiParams { domain: "bench".into(), reveal: PsiReveal::Both, min_intersection: 0 };
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let ((g, gs), (b, bs)) = run_pair(
            |ch| (intersect(ch, &gov, &params, &mut ChaCha20Rng::from_rng(&mut rand::rng())), ch.stats()),
            |ch| (intersect(ch, &bank, &params, &mut ChaCha20Rng::from_rng(&mut rand::rng())), ch.stats()),
        );
        let (psi_s, psi_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let (g, b) = (g.expect("gov"), b.expect("bank"));
        assert_eq!((g.size, b.size), (n / 2, n / 2));
        let (t, cpu) = (Instant::now(), cpu_seconds());
        assert_eq!(ec_reference_work(n), 2 * n);
        let (ref_s, ref_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let bytes = (gs.bytes_sent + bs.bytes_sent) as f64;
        println!(
            "2^{log} | {psi_s:.2} | {psi_cpu:.2} | {ref_s:.2} | {ref_cpu:.2} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2}",
            psi_s / ref_s,
            psi_cpu / ref_cpu,
            bytes / 1e6,
            bytes / (2 * n) as f64,
            bytes / n as f64
        );
    }
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}
