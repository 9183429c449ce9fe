//! A one-to-many stop signal.
//!
//! Owns the broadcast that tells every actor the server is stopping. It is a `oneshot` whose
//! receiver is shared, with a flag beside it: firing the [`StopTrigger`], or dropping it, resolves
//! every [`Stop`] at once, including ones cloned later. It carries no data and must not be used
//! for anything but "stop now".

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

/// The sending side; fire it with [`trigger`](Self::trigger) or by dropping it.
pub struct StopTrigger {
    tx: Option<oneshot::Sender<()>>,
    fired: Arc<AtomicBool>,
}

impl StopTrigger {
    pub fn trigger(mut self) {
        self.fire();
    }

    fn fire(&mut self) {
        // The flag first: a task woken by the receiver must find it set (see `Stopped`).
        self.fired.store(true, Ordering::Release);
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for StopTrigger {
    fn drop(&mut self) {
        self.fire();
    }
}

/// A cheap, cloneable handle that resolves when the stop fires.
#[derive(Clone)]
pub struct Stop(Option<(Arc<AtomicBool>, Shared<oneshot::Receiver<()>>)>);

impl Stop {
    pub fn new() -> (StopTrigger, Stop) {
        let (tx, rx) = oneshot::channel();
        let fired = Arc::new(AtomicBool::new(false));
        let trigger = StopTrigger {
            tx: Some(tx),
            fired: Arc::clone(&fired),
        };
        (trigger, Stop(Some((fired, rx.shared()))))
    }

    /// A signal that never fires, for actors driven directly by tests.
    pub fn never() -> Stop {
        Stop(None)
    }

    /// Resolves once the stop has fired (immediately if it already has).
    pub fn wait(&self) -> Stopped {
        Stopped {
            stop: self.0.clone(),
            registered: None,
        }
    }

    /// Whether the stop has fired, without waiting.
    pub fn is_stopped(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|(fired, _)| fired.load(Ordering::Acquire))
    }
}

/// The future of [`Stop::wait`].
///
/// Every actor waits on one beside its real work and is polled each time that work wakes it: an
/// echo connection once or twice per message. Polling the shared receiver takes a lock to record
/// the waker, so this remembers the waker it registered and, while the task's waker is the same
/// and the flag is down, answers `Pending` without asking again: the shared receiver still holds
/// that waker and wakes it when the stop fires, after the flag is raised.
pub struct Stopped {
    stop: Option<(Arc<AtomicBool>, Shared<oneshot::Receiver<()>>)>,
    registered: Option<Waker>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some((fired, shared)) = this.stop.as_mut() else {
            return Poll::Pending;
        };
        if fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // A dropped trigger counts as fired, so the result is irrelevant.
        match Pin::new(shared).poll(cx) {
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => {
                this.registered = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter that registered, then was polled again with the same waker (the fast path),
    /// still resolves when the stop fires; so do later clones, and a dropped trigger fires too.
    #[test]
    fn every_waiter_resolves_when_the_stop_fires() {
        crate::rt::block_on(async {
            let (trigger, stop) = Stop::new();
            let mut waiting = Box::pin(stop.wait());
            assert!(futures::poll!(waiting.as_mut()).is_pending());
            assert!(futures::poll!(waiting.as_mut()).is_pending());
            assert!(!stop.is_stopped());
            let waiter = crate::rt::spawn(stop.wait());
            trigger.trigger();
            waiter.await;
            waiting.await;
            assert!(stop.is_stopped());
            stop.clone().wait().await;

            let (trigger, stop) = Stop::new();
            drop(trigger);
            stop.wait().await;
            assert!(stop.is_stopped());
        })
    }
}
