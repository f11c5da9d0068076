//! Fuzz target `http`: see `sessiond_fuzz::http` for the input format and what it checks.
//! The service (a tempdir store, one application, an account with live sessions and every
//! shape's credentials) and its router are built once.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sessiond_fuzz::http(sessiond_fuzz::http_fixture(), data));
