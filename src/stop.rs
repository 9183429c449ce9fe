//! A one-to-many stop signal.
//!
//! Owns the broadcast that tells every actor the server is stopping. It is a `oneshot` whose
//! receiver is shared: firing the [`StopTrigger`], or dropping it, resolves every [`Stop`] at
//! once, including ones cloned later. It carries no data and must not be used for anything but
//! "stop now".

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

/// The sending side; fire it with [`trigger`](Self::trigger) or by dropping it.
pub struct StopTrigger(oneshot::Sender<()>);

impl StopTrigger {
    pub fn trigger(self) {
        let _ = self.0.send(());
    }
}

/// A cheap, cloneable handle that resolves when the stop fires.
#[derive(Clone)]
pub struct Stop(Option<Shared<oneshot::Receiver<()>>>);

impl Stop {
    pub fn new() -> (StopTrigger, Stop) {
        let (tx, rx) = oneshot::channel();
        (StopTrigger(tx), Stop(Some(rx.shared())))
    }

    /// A signal that never fires, for actors driven directly by tests.
    pub fn never() -> Stop {
        Stop(None)
    }

    /// Resolves once the stop has fired (immediately if it already has).
    pub async fn wait(&self) {
        match &self.0 {
            // A dropped trigger counts as fired, so the result is irrelevant.
            Some(shared) => {
                let _ = shared.clone().await;
            }
            None => futures::future::pending::<()>().await,
        }
    }

    /// Whether the stop has fired, without waiting.
    pub fn is_stopped(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.clone().now_or_never().is_some())
    }
}
