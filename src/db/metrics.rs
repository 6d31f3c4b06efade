//! Metrics in OpenTelemetry's database client conventions, through the
//! `metrics` facade (a service installs the exporter: Prometheus, OTLP,
//! StatsD; with none installed every call goes to a no-op recorder).
//!
//! Labels stay low-cardinality: the system, the operation, the table, the
//! pool and the error class. Never the query text, a tenant or a user.

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use ::metrics::{Label, Unit};

use super::telemetry::{Endpoint, Shape};

/// `db.client.operation.duration`: each statement, seconds (stable).
pub const OPERATION_DURATION: &str = "db.client.operation.duration";
/// `db.client.connection.count`: open connections by `state` (idle, used).
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// `db.client.connection.max`: the most connections the pool opens.
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// `db.client.connection.pending_requests`: callers waiting for a connection.
pub const PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
/// `db.client.connection.timeouts`: checkouts that gave up waiting.
pub const CONNECTION_TIMEOUTS: &str = "db.client.connection.timeouts";
/// `db.client.connection.wait_time`: time to obtain a connection, seconds.
pub const WAIT_TIME: &str = "db.client.connection.wait_time";
/// `db.client.connection.use_time`: from checkout to return, seconds.
pub const USE_TIME: &str = "db.client.connection.use_time";
/// `db.client.connection.create_time`: time to open a connection, seconds.
pub const CREATE_TIME: &str = "db.client.connection.create_time";

/// The pool label's key.
const POOL: &str = "db.client.connection.pool.name";

/// Units and descriptions, given to the recorder once (exporters read them
/// when a metric first appears).
fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        ::metrics::describe_histogram!(
            OPERATION_DURATION,
            Unit::Seconds,
            "Duration of database client operations."
        );
        ::metrics::describe_gauge!(
            CONNECTION_COUNT,
            Unit::Count,
            "The number of connections that are currently in state described by the state attribute."
        );
        ::metrics::describe_gauge!(
            CONNECTION_MAX,
            Unit::Count,
            "The maximum number of open connections allowed."
        );
        ::metrics::describe_gauge!(
            PENDING_REQUESTS,
            Unit::Count,
            "The number of current pending requests for an open connection."
        );
        ::metrics::describe_counter!(
            CONNECTION_TIMEOUTS,
            Unit::Count,
            "The number of connection timeouts that have occurred trying to obtain a connection from the pool."
        );
        ::metrics::describe_histogram!(
            WAIT_TIME,
            Unit::Seconds,
            "The time it took to obtain an open connection from the pool."
        );
        ::metrics::describe_histogram!(
            USE_TIME,
            Unit::Seconds,
            "The time between borrowing a connection and returning it to the pool."
        );
        ::metrics::describe_histogram!(
            CREATE_TIME,
            Unit::Seconds,
            "The time it took to create a new connection."
        );
    });
}

/// The labels of a statement shape (built once per shape).
pub(crate) fn shape_labels(operation: Option<&str>, collection: Option<&str>) -> Vec<Label> {
    let mut labels = Vec::with_capacity(2);
    if let Some(op) = operation {
        labels.push(Label::new("db.operation.name", Arc::<str>::from(op)));
    }
    if let Some(c) = collection {
        labels.push(Label::new("db.collection.name", Arc::<str>::from(c)));
    }
    labels
}

/// One statement's duration: recorded when dropped (after its rows were
/// read), with the error class it met, if any.
pub(crate) struct Timer {
    started: Instant,
    system: &'static str,
    pool: Arc<str>,
    shape: Arc<Shape>,
    failed: Mutex<Option<&'static str>>,
}

impl Timer {
    pub(crate) fn start(endpoint: &Endpoint, shape: Arc<Shape>) -> Timer {
        Timer {
            started: Instant::now(),
            system: endpoint.system,
            pool: Arc::clone(&endpoint.pool),
            shape,
            failed: Mutex::new(None),
        }
    }

    pub(crate) fn fail(&self, error_type: &'static str) {
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(error_type);
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        describe();
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut labels = Vec::with_capacity(5);
        labels.push(Label::from_static_parts("db.system.name", self.system));
        labels.extend(self.shape.labels.iter().cloned());
        labels.push(Label::new(POOL, Arc::clone(&self.pool)));
        if let Some(error) = *self.failed.lock().unwrap_or_else(|p| p.into_inner()) {
            labels.push(Label::from_static_parts("error.type", error));
        }
        ::metrics::histogram!(OPERATION_DURATION, labels).record(elapsed);
    }
}

/// A pool's numbers now: connections by state, its maximum, waiting callers.
pub(crate) fn pool_status(system: &'static str, pool: &Arc<str>, status: deadpool::Status) {
    describe();
    let used = status.size.saturating_sub(status.available);
    let labels = |state: Option<&'static str>| {
        let mut l = vec![
            Label::from_static_parts("db.system.name", system),
            Label::new(POOL, Arc::clone(pool)),
        ];
        if let Some(state) = state {
            l.push(Label::from_static_parts(
                "db.client.connection.state",
                state,
            ));
        }
        l
    };
    ::metrics::gauge!(CONNECTION_COUNT, labels(Some("idle"))).set(status.available as f64);
    ::metrics::gauge!(CONNECTION_COUNT, labels(Some("used"))).set(used as f64);
    ::metrics::gauge!(CONNECTION_MAX, labels(None)).set(status.max_size as f64);
    ::metrics::gauge!(PENDING_REQUESTS, labels(None)).set(status.waiting as f64);
}

/// A checkout's wait, and whether it gave up.
pub(crate) fn waited(system: &'static str, pool: &Arc<str>, wait: Duration, timed_out: bool) {
    describe();
    let labels = || {
        vec![
            Label::from_static_parts("db.system.name", system),
            Label::new(POOL, Arc::clone(pool)),
        ]
    };
    ::metrics::histogram!(WAIT_TIME, labels()).record(wait.as_secs_f64());
    if timed_out {
        ::metrics::counter!(CONNECTION_TIMEOUTS, labels()).increment(1);
    }
}

/// How long a connection was out of its pool.
pub(crate) fn used(system: &'static str, pool: &Arc<str>, time: Duration) {
    describe();
    let labels = vec![
        Label::from_static_parts("db.system.name", system),
        Label::new(POOL, Arc::clone(pool)),
    ];
    ::metrics::histogram!(USE_TIME, labels).record(time.as_secs_f64());
}

/// How long opening a connection took.
pub(crate) fn created(system: &'static str, pool: &Arc<str>, time: Duration) {
    describe();
    let labels = vec![
        Label::from_static_parts("db.system.name", system),
        Label::new(POOL, Arc::clone(pool)),
    ];
    ::metrics::histogram!(CREATE_TIME, labels).record(time.as_secs_f64());
}
