//! `loho bench train` as a user runs it: the binary, which starts one process per run.

use std::process::Command;

/// `bench train` times real training steps, the composite baseline and today's step, each
/// in its own process, and splits each by phase.
#[test]
fn bench_train_reports_samples_per_second_by_phase() {
    let out = std::env::temp_dir().join(format!("loho-bench-train-{}.json", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_loho"))
        .args(["bench", "train", "--steps", "2", "--batch", "4", "--json"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(
        (v["steps"].as_u64(), v["batch"].as_u64()),
        (Some(2), Some(4))
    );
    let mut rates = Vec::new();
    for run in ["baseline", "fused"] {
        let r = &v[run];
        let step = r["ms_per_step"].as_f64().unwrap();
        let phases: f64 = ["batch_ms", "forward_ms", "backward_ms", "update_ms"]
            .iter()
            .map(|k| r[k].as_f64().unwrap())
            .sum();
        assert!(
            phases > 0.0 && phases <= step * 1.01,
            "{run}: {phases} of {step}"
        );
        let rate = r["samples_per_s"].as_f64().unwrap();
        assert!((rate - 4.0 * 1e3 / step).abs() < 1e-6 * rate, "{run}");
        rates.push(rate);
    }
    let speedup = v["speedup"].as_f64().unwrap();
    assert!((speedup - rates[1] / rates[0]).abs() < 1e-9 * speedup);
}
