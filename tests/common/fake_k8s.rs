//! A fake Kubernetes API server that speaks the real JSON list/watch protocol.
//!
//! Plain HTTP on `127.0.0.1:0`, objects kept in memory as JSON. Supports what the
//! ConfigMap and CRD backends and `add` use: list (with `fieldSelector=metadata.name=…`
//! and a `resourceVersion`), `?watch=true` streams of newline-delimited
//! `{"type":…,"object":…}` events (replaying what happened after the requested
//! resourceVersion), GET/PUT (optimistic concurrency: a stale `resourceVersion` is a 409)
//! /PATCH (JSON merge patch, also on `/status`)/POST/DELETE. Tests can close every open
//! watch, make the next requests fail, inject update conflicts, and read every request
//! the server received.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// The collection path of ConfigMaps in kube-system.
pub const CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps";
/// The collection path of IAMIdentityMappings (cluster-scoped).
pub const MAPPINGS: &str = "/apis/iamauthenticator.k8s.aws/v1alpha1/iamidentitymappings";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The `content-type` header.
    pub content_type: String,
    /// The request body.
    pub body: String,
}

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    collection: String,
    kind: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct State {
    rv: u64,
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    history: Vec<Change>,
    requests: Vec<Recorded>,
    conflicts: u32,
    failures: u32,
    created: u64,
}

/// The running fake.
#[derive(Debug, Clone)]
pub struct FakeKube {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<Change>,
    generation: Arc<watch::Sender<u64>>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    full(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()
        }),
    )
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Splits a request path into (collection, name, subresource).
fn route(path: &str) -> Option<(String, Option<String>, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let prefix_len = match segs.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return None,
    };
    if segs.len() <= prefix_len {
        return None;
    }
    let rest = &segs[prefix_len..];
    let coll_len = if rest[0] == "namespaces" && rest.len() >= 3 {
        prefix_len + 3
    } else {
        prefix_len + 1
    };
    let collection = format!("/{}", segs[..coll_len].join("/"));
    let tail = &segs[coll_len..];
    Some((
        collection,
        tail.first().map(|s| (*s).to_owned()),
        tail.get(1).map(|s| (*s).to_owned()),
    ))
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or("").to_owned()
}

fn selected(object: &Value, field_selector: Option<&str>) -> bool {
    match field_selector.and_then(|s| s.strip_prefix("metadata.name=")) {
        Some(name) => name_of(object) == name,
        None => true,
    }
}

impl FakeKube {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (changes, _) = broadcast::channel(1024);
        let fake = Self {
            addr,
            state: Arc::default(),
            changes,
            generation: Arc::new(watch::channel(0).0),
        };
        let server = fake.clone();
        super::http::serve(listener, None, move |_, req| {
            let server = server.clone();
            async move { server.handle(req).await }
        });
        fake
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kube client talking to the fake.
    pub fn client(&self) -> kube::Client {
        super::install_crypto_provider();
        let config = kube::Config::new(self.url().parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// Creates or replaces an object (emits ADDED or MODIFIED); returns it as stored.
    pub fn put(&self, collection: &str, mut object: Value) -> Value {
        let mut st = self.state.lock().unwrap();
        let name = name_of(&object);
        let exists = st
            .objects
            .get(collection)
            .is_some_and(|c| c.contains_key(&name));
        self.store(
            &mut st,
            collection,
            &mut object,
            if exists { "MODIFIED" } else { "ADDED" },
        );
        object
    }

    /// Deletes an object (emits DELETED).
    pub fn delete(&self, collection: &str, name: &str) {
        let mut st = self.state.lock().unwrap();
        let removed = st.objects.get_mut(collection).and_then(|c| c.remove(name));
        if let Some(mut object) = removed {
            st.rv += 1;
            object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            self.emit(&mut st, collection, "DELETED", object);
        }
    }

    /// The stored object, if any.
    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        st.objects.get(collection)?.get(name).cloned()
    }

    /// Every object of a collection.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let st = self.state.lock().unwrap();
        st.objects
            .get(collection)
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Ends every open watch stream (clients see the connection's body end).
    pub fn drop_watches(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Makes the next `n` requests fail with a 500.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().failures = n;
    }

    /// Makes the next `n` PUTs fail with a 409, as if another writer got there first.
    pub fn inject_conflicts(&self, n: u32) {
        self.state.lock().unwrap().conflicts = n;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn store(&self, st: &mut State, collection: &str, object: &mut Value, kind: &'static str) {
        st.rv += 1;
        object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{}", st.rv));
        }
        st.objects
            .entry(collection.to_owned())
            .or_default()
            .insert(name_of(object), object.clone());
        self.emit(st, collection, kind, object.clone());
    }

    fn emit(&self, st: &mut State, collection: &str, kind: &'static str, object: Value) {
        let change = Change {
            rv: st.rv,
            collection: collection.to_owned(),
            kind,
            object,
        };
        st.history.push(change.clone());
        let _ = self.changes.send(change);
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let content_type = req
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body).into_owned();
        {
            let mut st = self.state.lock().unwrap();
            st.requests.push(Recorded {
                method: method.to_string(),
                path: path.clone(),
                query: query.clone(),
                content_type,
                body: body.clone(),
            });
            if st.failures > 0 {
                st.failures -= 1;
                return status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "injected failure",
                );
            }
        }
        let Some((collection, name, sub)) = route(&path) else {
            return status(StatusCode::NOT_FOUND, "NotFound", "no such path");
        };
        let body_json: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&body) {
                Ok(v) => v,
                Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
            }
        };
        match (method, name) {
            (Method::GET, None) if query_param(&query, "watch").as_deref() == Some("true") => {
                self.watch(&collection, &query)
            }
            (Method::GET, None) => {
                let st = self.state.lock().unwrap();
                let selector = query_param(&query, "fieldSelector");
                let items: Vec<Value> = st
                    .objects
                    .get(&collection)
                    .map(|c| {
                        c.values()
                            .filter(|o| selected(o, selector.as_deref()))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                full(
                    StatusCode::OK,
                    &json!({"apiVersion": "v1", "kind": "List",
                            "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => match self.get(&collection, &name) {
                Some(o) => full(StatusCode::OK, &o),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("\"{name}\" not found"),
                ),
            },
            (Method::POST, None) => {
                let mut st = self.state.lock().unwrap();
                let mut object = body_json;
                if name_of(&object).is_empty() {
                    st.created += 1;
                    let base = object["metadata"]["generateName"]
                        .as_str()
                        .unwrap_or("obj-")
                        .to_owned();
                    object["metadata"]["name"] = json!(format!("{base}{}", st.created));
                }
                let name = name_of(&object);
                if st
                    .objects
                    .get(&collection)
                    .is_some_and(|c| c.contains_key(&name))
                {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        &format!("\"{name}\" already exists"),
                    );
                }
                self.store(&mut st, &collection, &mut object, "ADDED");
                full(StatusCode::CREATED, &object)
            }
            (Method::PUT, Some(name)) => {
                let mut st = self.state.lock().unwrap();
                let Some(current) = st
                    .objects
                    .get(&collection)
                    .and_then(|c| c.get(&name))
                    .cloned()
                else {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("\"{name}\" not found"),
                    );
                };
                if st.conflicts > 0 {
                    st.conflicts -= 1;
                    // Another writer changed the object in between.
                    let mut bumped = current;
                    self.store(&mut st, &collection, &mut bumped, "MODIFIED");
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                let sent_rv = body_json["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("");
                if !sent_rv.is_empty()
                    && sent_rv
                        != current["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or("")
                {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    );
                }
                let mut object = body_json;
                if sub.as_deref() == Some("status") {
                    let mut merged = current;
                    merged["status"] = object["status"].clone();
                    object = merged;
                }
                self.store(&mut st, &collection, &mut object, "MODIFIED");
                full(StatusCode::OK, &object)
            }
            (Method::PATCH, Some(name)) => {
                let mut st = self.state.lock().unwrap();
                let Some(mut object) = st
                    .objects
                    .get(&collection)
                    .and_then(|c| c.get(&name))
                    .cloned()
                else {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("\"{name}\" not found"),
                    );
                };
                if sub.as_deref() == Some("status") {
                    let patch = json!({"status": body_json["status"].clone()});
                    merge_patch(&mut object, &patch);
                } else {
                    merge_patch(&mut object, &body_json);
                }
                self.store(&mut st, &collection, &mut object, "MODIFIED");
                full(StatusCode::OK, &object)
            }
            (Method::DELETE, Some(name)) => {
                let existing = self.get(&collection, &name);
                self.delete(&collection, &name);
                match existing {
                    Some(o) => full(StatusCode::OK, &o),
                    None => status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        &format!("\"{name}\" not found"),
                    ),
                }
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "unsupported",
            ),
        }
    }

    fn watch(&self, collection: &str, query: &str) -> Response<Body> {
        let selector = query_param(query, "fieldSelector");
        let since: u64 = query_param(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(64);
        // Snapshot the backlog and subscribe under one lock, so nothing falls in between.
        let (backlog, mut rx) = {
            let st = self.state.lock().unwrap();
            let backlog: Vec<Change> = st
                .history
                .iter()
                .filter(|c| c.rv > since && c.collection == collection)
                .cloned()
                .collect();
            (backlog, self.changes.subscribe())
        };
        let mut generation = self.generation.subscribe();
        generation.mark_unchanged();
        let collection = collection.to_owned();
        tokio::spawn(async move {
            let line = |c: &Change| {
                Bytes::from(format!("{}\n", json!({"type": c.kind, "object": c.object})))
            };
            let mut last = since;
            for c in &backlog {
                if selected(&c.object, selector.as_deref()) && tx.send_data(line(c)).await.is_err()
                {
                    return;
                }
                last = c.rv;
            }
            loop {
                tokio::select! {
                    _ = generation.changed() => return,
                    change = rx.recv() => match change {
                        Ok(c) if c.collection == collection && c.rv > last => {
                            last = c.rv;
                            if selected(&c.object, selector.as_deref())
                                && tx.send_data(line(&c)).await.is_err()
                            {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    },
                }
            }
        });
        let mut r = Response::new(body.boxed());
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        r
    }
}
