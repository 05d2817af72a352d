//! faultline's checkers.
