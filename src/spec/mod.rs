//! The schedule language: TOML job files in, validated [`JobSpec`]s and
//! located diagnostics out. Pure: no I/O and no clock (callers pass "now").

pub mod cron;
pub mod schedule;
