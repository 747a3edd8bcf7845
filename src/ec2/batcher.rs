//! The lookup itself: a cache of answers, one queued query per instance id however many
//! callers wait for it, and a task that gathers queued ids into batches and sends one
//! rate-limited `DescribeInstances` per batch.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::client::Ec2Client;
use super::metrics::Ec2Metrics;
use super::rate_limit::TokenBucket;
use super::{BoxFuture, Error, MAX_BATCH, PrivateDnsLookup, Settings};
use tokio_util::task::AbortOnDropHandle;

/// The cache holds at most this many entries before expired ones are dropped.
const CACHE_PRUNE_AT: usize = 10_000;

/// upstream's not-found text (trailing space included).
fn not_found(id: &str) -> String {
    format!("failed to find node {id} ")
}

#[derive(Debug, Clone)]
enum Cached {
    Found(String, Instant),
    Missing(Instant),
}

type Waiter = oneshot::Sender<Result<String, String>>;

#[derive(Debug, Default)]
struct State {
    cache: HashMap<String, Cached>,
    /// Ids with a query queued or in flight, and who waits for them.
    waiting: HashMap<String, Vec<Waiter>>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<String>,
    settings: Settings,
    metrics: Ec2Metrics,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the answers for `ids` and wakes everyone waiting for them.
    fn settle(&self, ids: &[String], answer: &Result<HashMap<String, String>, String>) {
        let now = Instant::now();
        let mut st = self.lock();
        if st.cache.len() > CACHE_PRUNE_AT {
            st.cache.retain(|_, c| match c {
                Cached::Found(_, exp) | Cached::Missing(exp) => *exp > now,
            });
        }
        for id in ids {
            let result = match answer {
                Ok(found) => match found.get(id).filter(|n| !n.is_empty()) {
                    Some(name) => {
                        st.cache.insert(
                            id.clone(),
                            Cached::Found(name.clone(), now + self.settings.found_ttl),
                        );
                        Ok(name.clone())
                    }
                    None => {
                        st.cache.insert(
                            id.clone(),
                            Cached::Missing(now + self.settings.not_found_ttl),
                        );
                        Err(not_found(id))
                    }
                },
                Err(e) => Err(format!(
                    "failed querying private DNS from EC2 API for node {id}: {e} "
                )),
            };
            for waiter in st.waiting.remove(id).unwrap_or_default() {
                let _ = waiter.send(result.clone());
            }
        }
    }
}

/// The cached, coalescing, batching, rate-limited `DescribeInstances` lookup.
#[derive(Debug)]
pub struct Ec2PrivateDns {
    shared: Arc<Shared>,
    /// The batching task, aborted when the lookup goes away.
    _task: AbortOnDropHandle<()>,
}

impl Ec2PrivateDns {
    /// Builds the lookup and starts its batching task, which counts its calls on
    /// `metrics`.
    pub fn new(
        settings: Settings,
        credentials: SharedCredentialsProvider,
        metrics: Ec2Metrics,
    ) -> Result<Self, Error> {
        let client = Ec2Client::new(&settings, credentials)?;
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            queue,
            settings,
            metrics,
        });
        let task = tokio::spawn(batcher(Arc::clone(&shared), client, rx));
        Ok(Self {
            shared,
            _task: AbortOnDropHandle::new(task),
        })
    }

    async fn lookup(&self, id: &str) -> Result<String, String> {
        let rx = {
            let mut st = self.shared.lock();
            let now = Instant::now();
            match st.cache.get(id) {
                Some(Cached::Found(name, exp)) if *exp > now => return Ok(name.clone()),
                Some(Cached::Missing(exp)) if *exp > now => return Err(not_found(id)),
                _ => {}
            }
            let (tx, rx) = oneshot::channel();
            match st.waiting.entry(id.to_owned()) {
                Entry::Occupied(mut e) => e.get_mut().push(tx),
                Entry::Vacant(e) => {
                    e.insert(vec![tx]);
                    if self.shared.queue.send(id.to_owned()).is_err() {
                        st.waiting.remove(id);
                        return Err("the EC2 lookup has stopped".to_owned());
                    }
                }
            }
            rx
        };
        match tokio::time::timeout(self.shared.settings.lookup_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the EC2 lookup has stopped".to_owned()),
            Err(_) => Err(format!(
                "failed to find node {id} in PrivateDNSNameCache returning from loop"
            )),
        }
    }
}

impl PrivateDnsLookup for Ec2PrivateDns {
    fn private_dns_name<'a>(
        &'a self,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(self.lookup(instance_id))
    }
}

/// Collects ids into batches and sends one rate-limited call per batch.
async fn batcher(shared: Arc<Shared>, client: Ec2Client, mut rx: mpsc::UnboundedReceiver<String>) {
    let client = Arc::new(client);
    let settings = shared.settings.clone();
    let max_batch = settings.max_batch.clamp(1, MAX_BATCH);
    let mut bucket = TokenBucket::new(settings.qps, settings.burst);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = Instant::now() + settings.batch_window;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(id)) => batch.push(id),
                Ok(None) | Err(_) => break,
            }
        }
        bucket.acquire().await;
        shared.metrics.called();
        if let [id] = batch.as_slice() {
            tracing::info!("Calling ec2:DescribeInstances for the InstanceId = {id}");
        } else {
            tracing::info!(
                "Making Batch Query to DescribeInstances for {} instances",
                batch.len()
            );
        }
        let shared = Arc::clone(&shared);
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            let answer = client.describe(&batch).await;
            if let Err(e) = &answer {
                tracing::warn!(instances = batch.len(), error = %e, "ec2:DescribeInstances failed");
            }
            shared.settle(&batch, &answer);
        });
    }
}
