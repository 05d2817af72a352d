//! Reports: the store layout of a run, its HTML report and plots. This crate is filled by the
//! reports issue.
