//! The future type every seam returns.
//!
//! The seams are async (a client waits on the network, a db on SSH commands), and traits with
//! `async fn` are not yet object-safe, so each method returns a boxed future. One allocation
//! per call is noise next to a network round trip, and it keeps every seam usable as
//! `Box<dyn Trait>` without extra crates.

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing from `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
