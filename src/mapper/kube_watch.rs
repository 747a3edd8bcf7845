//! Following Kubernetes objects: the one watch loop of the EKSConfigMap and CRD backends.
//!
//! (Not to be confused with [`super::watch`], which follows files.)
//!
//! The loop owns the I/O: `kube::runtime::watcher` lists the objects, then watches from
//! the list's resourceVersion, re-watches when the API server closes the stream and
//! re-lists after errors; failed attempts back off exponentially. Every failure is
//! logged and counted here. Each event goes to the backend's [`Reduce`]r, a pure,
//! synchronous function of its state and the event (no client, no metrics, no logging)
//! that returns what happened as effects; the backend's [`Act`] carries them out
//! (publishes a new table, reports invalid entries, queues status writes, logs).
//!
//! Readiness is the loop's too ([`Fold`]): a backend is ready once the effects of its
//! first complete listing (`Init`, `InitApply`×n, `InitDone`) have been carried out, so
//! a request never sees half a listing as the whole truth.

use std::fmt::Display;

use futures_util::{Stream, StreamExt};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};

pub use kube::runtime::watcher::Event;

/// A backend's state as a pure function of the events it has seen.
pub trait Reduce {
    /// The watched object.
    type Object;
    /// What the backend must do after an event.
    type Effect;

    /// Folds `event` into the state; returns the effects, in the order to carry them out.
    fn apply(&mut self, event: Event<Self::Object>) -> Vec<Self::Effect>;
}

/// Carries out a backend's effects (the I/O half of a backend).
pub trait Act<E> {
    /// Carries out one effect.
    fn act(&mut self, effect: E);
    /// The first complete listing has been carried out: the backend can answer.
    fn ready(&mut self);
    /// The watch failed (already logged); it is retried after a backoff.
    fn watch_failed(&mut self) {}
}

/// What one event amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<E> {
    /// The reducer's effects.
    pub effects: Vec<E>,
    /// The event completed a listing of this many objects.
    pub listed: Option<usize>,
    /// The backend became ready with this event (once, at the first complete listing).
    pub became_ready: bool,
}

/// The loop's pure core: a reducer, whether a complete listing has been seen, and the
/// size of the listing in progress.
#[derive(Debug, Default)]
pub struct Fold<R> {
    reducer: R,
    ready: bool,
    listing: usize,
}

impl<R: Reduce> Fold<R> {
    /// A fold of nothing seen yet: not ready.
    pub fn new(reducer: R) -> Self {
        Self {
            reducer,
            ready: false,
            listing: 0,
        }
    }

    /// Whether a complete listing has been seen.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Hands `event` to the reducer.
    pub fn step(&mut self, event: Event<R::Object>) -> Step<R::Effect> {
        let listed = match &event {
            Event::Init => {
                self.listing = 0;
                None
            }
            Event::InitApply(_) => {
                self.listing += 1;
                None
            }
            Event::InitDone => Some(std::mem::take(&mut self.listing)),
            Event::Apply(_) | Event::Delete(_) => None,
        };
        let effects = self.reducer.apply(event);
        let became_ready = listed.is_some() && !std::mem::replace(&mut self.ready, true);
        Step {
            effects,
            listed,
            became_ready,
        }
    }
}

/// Lists and watches `api`'s objects selected by `config` until the task is aborted;
/// `what` names them in logs (e.g. `aws-auth ConfigMap`).
pub async fn run<R, A>(
    api: Api<R::Object>,
    config: watcher::Config,
    what: &'static str,
    reducer: R,
    actor: A,
) where
    R: Reduce,
    R::Object: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    R::Object: Send + 'static,
    A: Act<R::Effect>,
{
    let events = watcher(api, config).default_backoff().boxed();
    drive(events, what, reducer, actor).await;
}

/// [`run`]'s loop over any stream of events (tests feed their own).
pub async fn drive<R, A, S, E>(events: S, what: &str, reducer: R, mut actor: A)
where
    R: Reduce,
    A: Act<R::Effect>,
    S: Stream<Item = Result<Event<R::Object>, E>> + Unpin,
    E: Display,
{
    let mut fold = Fold::new(reducer);
    let mut events = events;
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let step = fold.step(event);
                for effect in step.effects {
                    actor.act(effect);
                }
                if let Some(objects) = step.listed {
                    tracing::info!(objects, "{what} listed");
                }
                if step.became_ready {
                    actor.ready();
                }
            }
            Err(e) => {
                actor.watch_failed();
                // The words of upstream's line (pkg/mapper/configmap/configmap.go), whatever
                // is watched.
                tracing::warn!(error = %e, "Unable to re-establish watch on {what}, backing off");
            }
        }
    }
}

/// A table test's steps: each event, the effects it must have (as a line each), and
/// whether the backend is ready after it.
#[cfg(test)]
pub(crate) type Steps<K> = Vec<(Event<K>, &'static [&'static str], bool)>;

/// The reducers' table tests: feeds each step's event through a [`Fold`] of `reducer`;
/// the step's effects (as `show` writes them) and the readiness after it must be as listed.
#[cfg(test)]
pub(crate) fn check_steps<R: Reduce>(
    name: &str,
    reducer: R,
    show: impl Fn(&R::Effect) -> String,
    steps: Steps<R::Object>,
) {
    let mut fold = Fold::new(reducer);
    for (i, (event, effects, ready)) in steps.into_iter().enumerate() {
        let step = fold.step(event);
        let shown: Vec<String> = step.effects.iter().map(&show).collect();
        assert_eq!(shown, effects, "{name}, step {i}");
        assert_eq!(fold.is_ready(), ready, "{name}, step {i}: ready");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Remembers the objects applied; effects are the events' names.
    #[derive(Debug, Default)]
    struct Echo;

    impl Reduce for Echo {
        type Object = &'static str;
        type Effect = String;
        fn apply(&mut self, event: Event<&'static str>) -> Vec<String> {
            vec![match event {
                Event::Init => "init".to_owned(),
                Event::InitApply(o) => format!("init-apply {o}"),
                Event::InitDone => "init-done".to_owned(),
                Event::Apply(o) => format!("apply {o}"),
                Event::Delete(o) => format!("delete {o}"),
            }]
        }
    }

    #[derive(Debug, Default)]
    struct Log(Vec<String>);

    impl Act<String> for &mut Log {
        fn act(&mut self, effect: String) {
            self.0.push(effect);
        }
        fn ready(&mut self) {
            self.0.push("READY".to_owned());
        }
        fn watch_failed(&mut self) {
            self.0.push("FAILED".to_owned());
        }
    }

    #[test]
    fn ready_at_the_end_of_the_first_listing_only() {
        let mut fold = Fold::new(Echo);
        let steps: Vec<_> = [
            Event::Init,
            Event::InitApply("a"),
            Event::InitApply("b"),
            Event::InitDone,
            Event::Apply("c"),
            Event::Init,
            Event::InitApply("a"),
            Event::InitDone,
        ]
        .into_iter()
        .map(|e| {
            let s = fold.step(e);
            (s.listed, s.became_ready, fold.is_ready())
        })
        .collect();
        assert_eq!(
            steps,
            [
                (None, false, false),
                (None, false, false),
                (None, false, false),
                (Some(2), true, true),
                (None, false, true),
                (None, false, true),
                (None, false, true),
                (Some(1), false, true),
            ]
        );
    }

    #[tokio::test]
    async fn effects_then_readiness_and_failures_do_not_stop_the_loop() {
        let events = futures_util::stream::iter([
            Err("list refused"),
            Ok(Event::Init),
            Ok(Event::InitApply("a")),
            Ok(Event::InitDone),
            Err("watch closed"),
            Ok(Event::Delete("a")),
        ]);
        let mut log = Log::default();
        drive(events, "objects", Echo, &mut log).await;
        assert_eq!(
            log.0,
            [
                "FAILED",
                "init",
                "init-apply a",
                "init-done",
                "READY",
                "FAILED",
                "delete a"
            ]
        );
    }
}
