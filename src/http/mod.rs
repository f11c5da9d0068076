//! The HTTP layer: a thin hyper 1.x server. `server` accepts connections with limits;
//! `router` turns a request into one call of a shape module; each shape module (`rownd`,
//! `connect`, `flashback`, `rocketchat`, `okta`, `admin`) owns its wire structs and error
//! format and calls one domain function per endpoint. No module here names sled.

// Handlers return early with a finished response (`Result<_, Response>`); its size does
// not matter next to a network round trip, and boxing every error would only add noise.
#![allow(clippy::result_large_err)]

mod admin;
mod connect;
pub mod cors;
mod flashback;
mod okta;
mod rocketchat;
mod router;
mod rownd;
mod server;
mod throttle;
pub mod tls;
mod wire;

pub use router::{OPENAPI, ROUTES, Route, Router, Shape};
pub use server::{Limits, Options, serve, serve_with};
pub use wire::Resp;
