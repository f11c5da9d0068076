//! sessiond: a small, durable "log out everywhere" backend. Data flows one way:
//! `http` (the five public API shapes and the admin API) → `domain` (sessions and the
//! revoke-all rules) → `store` (the only code that names sled) → disk.

pub mod admin_client;
pub mod cli;
pub mod config;
pub mod domain;
pub mod files;
pub mod http;
pub mod metrics;
pub mod model;
pub mod seed;
pub mod store;
