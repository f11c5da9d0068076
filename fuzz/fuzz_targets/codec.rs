//! Fuzz target `codec`: see `sessiond_fuzz::codec` for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sessiond_fuzz::codec(data));
