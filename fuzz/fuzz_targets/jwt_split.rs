//! Fuzz target `jwt_split`: see `sessiond_fuzz::jwt_split` for what it checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sessiond_fuzz::jwt_split(sessiond_fuzz::fixture(), data));
