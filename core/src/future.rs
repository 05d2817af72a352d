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

/// Awaits every future concurrently, on the caller's task, and returns their outputs in the
/// order given (setup and teardown of every node, healing every node).
pub async fn join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T>,
{
    let mut pinned: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in pinned.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future finished"))
        .collect()
}
