//! Arbitrary bytes through every parser, in the normal suite (the fuzz
//! targets in `fuzz/` run the same bodies for longer): each must answer
//! with an error or a value, never a panic.

use proptest::collection::vec;
use proptest::prelude::*;
use shelf_tests::fuzzing;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pickle_decoding(data in vec(any::<u8>(), 0..512)) {
        fuzzing::pickle_decode(&data);
    }

    #[test]
    fn dumb_dir_lines(data in vec(any::<u8>(), 0..1024)) {
        fuzzing::dumb_dir_parse(&data);
    }

    #[test]
    fn dumb_dir_lines_that_look_right(
        key in vec(any::<u8>(), 0..40),
        junk in vec(prop::sample::select(b"'\"\\, ()0123456789xu\t\r".to_vec()), 0..40),
    ) {
        // Near-misses of real lines reach deeper into the parser than noise.
        let mut line = Vec::new();
        backend_dumb::write_line(&mut line, &key, 512, 9);
        let cut = junk.len() % (line.len() + 1);
        line.splice(cut..cut, junk);
        fuzzing::dumb_dir_parse(&line);
    }

    #[test]
    fn cli_json_loader(data in vec(any::<u8>(), 0..512)) {
        fuzzing::cli_json(&data);
    }
}

proptest! {
    // These create files (and the dumb one fsyncs): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn dumb_open_from_arbitrary_files(data in vec(any::<u8>(), 0..2048)) {
        fuzzing::dumb_open(&data);
    }

    #[test]
    fn whichdb_on_arbitrary_files(data in vec(any::<u8>(), 0..2048)) {
        fuzzing::whichdb(&data);
    }
}
