//! Fuzz target `keys`: see `sessiond_fuzz::keys` for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sessiond_fuzz::keys(data));
