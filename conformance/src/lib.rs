//! The conformance harness: replays the documented request/response contracts of the five
//! revoke-all shapes against any implementation at a base URL. It speaks HTTP only and
//! imports nothing of `sessiond`. Its cases and runner arrive with their own issue; this crate
//! holds the workspace place so that the layout is final.
