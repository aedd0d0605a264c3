//! Replays every input a fuzzer ever failed on (kept under
//! `tests/fuzz-regressions/<target>/`) through the same code the fuzz
//! target runs, so a fixed finding stays fixed.

use std::path::Path;

use shelf_tests::fuzzing::TARGETS;

#[test]
fn every_saved_fuzz_input_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&root).expect("tests/fuzz-regressions exists") {
        let dir = entry.expect("entry").path();
        let name = dir.file_name().and_then(|n| n.to_str()).expect("target name").to_owned();
        let Some((_, run)) = TARGETS.iter().find(|(n, _)| *n == name) else {
            panic!(
                "{} does not name a fuzz target (known: {:?})",
                dir.display(),
                TARGETS.iter().map(|(n, _)| *n).collect::<Vec<_>>()
            );
        };
        for input in std::fs::read_dir(&dir).expect("target dir") {
            let input = input.expect("entry").path();
            let data = std::fs::read(&input).expect("input");
            eprintln!("replaying {}", input.display());
            run(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no saved inputs under {}", root.display());
}
