//! Writes arbitrary bytes as a segment (or as the index of a real sealed segment next to a
//! hostile active segment), then opens, recovers, scans, looks up and appends. Must never
//! panic, loop or map past EOF. The logic lives in `millpond::log::fuzz_open_bytes` so the
//! unit tests exercise it too (`log::tests::fuzz_entry_point_survives_random_bytes`).
//!
//! Run (nightly): `cargo +nightly fuzz run log_recovery`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millpond::log::fuzz_open_bytes(data);
});
