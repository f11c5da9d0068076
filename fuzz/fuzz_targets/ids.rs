//! Fuzz target `ids`: see `sessiond_fuzz::ids` for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sessiond_fuzz::ids(data));
