//! `math::bench::run` works and its worst case is bounded; the report is printed
//! (`--nocapture`) so the numbers can be read off a test run.

use ponder_verify::math::bench::run;

#[test]
fn bench_report_is_sane() {
    let report = run();
    eprintln!("{report}");
    assert_eq!(report.n_checks, 1500);
    assert!(report.checks_per_sec > 0.0 && report.outputs_per_sec > 0.0);
    // Loose: microseconds normally, 2 s only on a badly overloaded machine.
    assert!(report.worst_pathological_us < 2e6, "{}", report.worst_pathological_us);
}
