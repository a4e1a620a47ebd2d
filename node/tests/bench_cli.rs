//! `tandem bench psi --processes 2`: the bank runs in a child process of the binary; the result
//! lines must report the generated intersection and each party's own peak RSS.

#[test]
fn psi_bench_with_the_bank_in_a_child_process_finds_the_intersection() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["bench", "psi", "--n", "300", "--overlap", "0.5", "--processes", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let protocols: Vec<&str> = lines.iter().map(|l| l["protocol"].as_str().unwrap()).collect();
    assert_eq!(protocols, ["vole", "ecdh"]);
    for line in &lines {
        assert_eq!((line["intersection"].as_u64(), line["processes"].as_u64()), (Some(150), Some(2)), "{line}");
        let (gov, bank) = (line["peak_rss_bytes_gov"].as_u64().unwrap(), line["peak_rss_bytes_bank"].as_u64().unwrap());
        assert!(gov > 1 << 20 && bank > 1 << 20, "{line}");
        assert!(line["bytes"].as_u64().unwrap() > 300 * 16, "{line}");
    }
}
