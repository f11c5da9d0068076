//! Fuzz target `client_auth`: see `sessiond_fuzz::client_auth` for what it checks. The
//! service (a tempdir store with one application and its Connect key) is built once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sessiond_fuzz::client_auth(sessiond_fuzz::fixture(), data));
