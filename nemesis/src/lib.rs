//! The nemesis: faults (partitions, pauses, kills, clock skew) and the schedules that inject
//! them, each recorded as a nemesis event and healed on every exit path. This crate is filled
//! by the harness issue.
