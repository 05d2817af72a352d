//! Helpers for the checker's property tests: a brute-force linearizability checker written
//! independently of the fast one, and seeded random history generators for every model.

pub mod brute;
pub mod gen;
