//! Metrics in OpenTelemetry's database client conventions, through the
//! `metrics` facade (a service installs the exporter: Prometheus, OTLP,
//! StatsD; with none installed every call goes to a no-op recorder).
//!
//! Labels stay low-cardinality: the system, the operation, the table, the
//! pool and the error class. Never the query text, a tenant or a user.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ::metrics::{Counter, Gauge, Histogram, Label, Unit};

use super::telemetry::{Endpoint, IdHash, Shape};

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

/// Units and descriptions, given to each recorder when the handles are
/// registered with it (exporters read them when a metric first appears).
fn describe() {
    {
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
    }
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

/// Which recorder a metric handle was registered with: its address and
/// size. The `metrics` facade resolves the recorder on every macro call
/// (the thread's local one, else the global one, else a no-op), and a handle
/// keeps the recorder it was made with.
#[derive(Clone, Copy, PartialEq, Eq)]
struct RecorderId(usize, usize);

impl RecorderId {
    fn current() -> Self {
        ::metrics::with_recorder(|r| {
            RecorderId(
                r as *const dyn ::metrics::Recorder as *const () as usize,
                std::mem::size_of_val(r),
            )
        })
    }
}

/// The recorder of a thread that has no local one: the global recorder once
/// installed, else the no-op. It lives as long as the process, so handles
/// made with it can be cached. A thread-local recorder (`with_local_recorder`,
/// mostly tests) does not: a later one can sit at the same address, so its
/// handles are never cached.
static PROCESS_RECORDER: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
/// The thread-local recorder last found not to be the process's.
static LAST_LOCAL_RECORDER: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

fn process_recorder() -> RecorderId {
    RecorderId(
        PROCESS_RECORDER[0].load(Ordering::Relaxed),
        PROCESS_RECORDER[1].load(Ordering::Relaxed),
    )
}

/// Whether `current` is the process's recorder. Asked on a thread of its
/// own (this one may have a local recorder), and only when `current` is not
/// the one seen last: once at start, once when a global recorder arrives.
fn is_process_recorder(current: RecorderId) -> bool {
    if current == process_recorder() {
        return true;
    }
    // A thread-local recorder seen last: not the process's (a later one at
    // the same address is not either), so no thread is asked again.
    let local = RecorderId(
        LAST_LOCAL_RECORDER[0].load(Ordering::Relaxed),
        LAST_LOCAL_RECORDER[1].load(Ordering::Relaxed),
    );
    if current == local {
        return false;
    }
    let seen = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("database-metrics-probe".into())
            .spawn_scoped(s, RecorderId::current)
            .ok()
            .and_then(|probe| probe.join().ok())
    });
    // No thread to ask: not cached, which is only slower.
    let Some(seen) = seen else {
        return false;
    };
    PROCESS_RECORDER[0].store(seen.0, Ordering::Relaxed);
    PROCESS_RECORDER[1].store(seen.1, Ordering::Relaxed);
    if seen != current {
        LAST_LOCAL_RECORDER[0].store(current.0, Ordering::Relaxed);
        LAST_LOCAL_RECORDER[1].store(current.1, Ordering::Relaxed);
    }
    seen == current
}

/// One pool's metrics (or a lone connection's): its labels, and its handles
/// registered once with the process's recorder, so a checkout or a statement
/// costs a lookup, not a metric key built and hashed.
pub(crate) struct Meter {
    system: &'static str,
    pool: Arc<str>,
    handles: RwLock<Option<Handles>>,
}

impl Default for Meter {
    /// A lone PostgreSQL connection's, until `establish` gives it its own.
    fn default() -> Self {
        Meter {
            system: "postgresql",
            pool: Arc::from("direct"),
            handles: RwLock::new(None),
        }
    }
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("system", &self.system)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

struct Handles {
    recorder: RecorderId,
    idle: Gauge,
    used: Gauge,
    max: Gauge,
    pending: Gauge,
    wait_time: Histogram,
    timeouts: Counter,
    use_time: Histogram,
    create_time: Histogram,
    /// `db.client.operation.duration` of each statement shape that
    /// succeeded (a failure's labels carry its class: built when it
    /// happens).
    durations: RwLock<HashMap<u64, Histogram, IdHash>>,
}

/// A service that builds SQL text from values grows the statement shapes
/// without bound (the shape cache is bounded too): so is this.
const DURATIONS_LIMIT: usize = 4096;

impl Meter {
    /// The meter of pool `pool` (`primary`, `replica-1`, `system`, `sqlite`,
    /// `direct`) of `system` (`postgresql`, `sqlite`).
    pub(crate) fn new(system: &'static str, pool: &str) -> Arc<Meter> {
        Arc::new(Meter {
            system,
            pool: Arc::from(pool),
            handles: RwLock::new(None),
        })
    }

    /// The pool's name.
    pub(crate) fn pool(&self) -> &Arc<str> {
        &self.pool
    }

    fn labels(&self) -> Vec<Label> {
        vec![
            Label::from_static_parts("db.system.name", self.system),
            Label::new(POOL, Arc::clone(&self.pool)),
        ]
    }

    fn register(&self, recorder: RecorderId) -> Handles {
        describe();
        let state = |state: &'static str| {
            let mut l = self.labels();
            l.push(Label::from_static_parts(
                "db.client.connection.state",
                state,
            ));
            l
        };
        Handles {
            recorder,
            idle: ::metrics::gauge!(CONNECTION_COUNT, state("idle")),
            used: ::metrics::gauge!(CONNECTION_COUNT, state("used")),
            max: ::metrics::gauge!(CONNECTION_MAX, self.labels()),
            pending: ::metrics::gauge!(PENDING_REQUESTS, self.labels()),
            wait_time: ::metrics::histogram!(WAIT_TIME, self.labels()),
            timeouts: ::metrics::counter!(CONNECTION_TIMEOUTS, self.labels()),
            use_time: ::metrics::histogram!(USE_TIME, self.labels()),
            create_time: ::metrics::histogram!(CREATE_TIME, self.labels()),
            durations: RwLock::new(HashMap::default()),
        }
    }

    /// `f` with the handles of the current recorder: cached for the
    /// process's recorder, made for the call under a thread-local one.
    fn with<T>(&self, f: impl FnOnce(&Handles) -> T) -> T {
        let recorder = RecorderId::current();
        if recorder == process_recorder() {
            let handles = self.handles.read().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = handles.as_ref().filter(|h| h.recorder == recorder) {
                return f(h);
            }
        }
        if !is_process_recorder(recorder) {
            return f(&self.register(recorder));
        }
        let mut handles = self.handles.write().unwrap_or_else(|p| p.into_inner());
        if handles.as_ref().is_none_or(|h| h.recorder != recorder) {
            *handles = Some(self.register(recorder));
        }
        f(handles.as_ref().expect("registered above"))
    }

    /// The pool's numbers now: connections by state, its maximum, waiting
    /// callers.
    pub(crate) fn pool_status(&self, status: deadpool::Status) {
        let used = status.size.saturating_sub(status.available);
        self.with(|h| {
            h.idle.set(status.available as f64);
            h.used.set(used as f64);
            h.max.set(status.max_size as f64);
            h.pending.set(status.waiting as f64);
        })
    }

    /// A checkout's wait, and whether it gave up.
    pub(crate) fn waited(&self, wait: Duration, timed_out: bool) {
        self.with(|h| {
            h.wait_time.record(wait.as_secs_f64());
            if timed_out {
                h.timeouts.increment(1);
            }
        })
    }

    /// How long a connection was out of its pool.
    pub(crate) fn used(&self, time: Duration) {
        self.with(|h| h.use_time.record(time.as_secs_f64()))
    }

    /// How long opening a connection took.
    pub(crate) fn created(&self, time: Duration) {
        self.with(|h| h.create_time.record(time.as_secs_f64()))
    }

    /// One statement of `shape`: its duration, and its error class if it
    /// failed.
    fn statement(&self, shape: &Shape, seconds: f64, error: Option<&'static str>) {
        if let Some(error) = error {
            // Registered (and so described) with the current recorder.
            self.with(|_| ());
            let mut labels = self.labels();
            labels.extend(shape.labels.iter().cloned());
            labels.push(Label::from_static_parts("error.type", error));
            ::metrics::histogram!(OPERATION_DURATION, labels).record(seconds);
            return;
        }
        self.with(|h| {
            {
                let durations = h.durations.read().unwrap_or_else(|p| p.into_inner());
                if let Some(histogram) = durations.get(&shape.id) {
                    histogram.record(seconds);
                    return;
                }
            }
            let mut labels = self.labels();
            labels.extend(shape.labels.iter().cloned());
            let histogram = ::metrics::histogram!(OPERATION_DURATION, labels);
            histogram.record(seconds);
            let mut durations = h.durations.write().unwrap_or_else(|p| p.into_inner());
            if durations.len() >= DURATIONS_LIMIT {
                durations.clear();
            }
            durations.insert(shape.id, histogram);
        })
    }
}

/// One statement's duration: recorded when dropped (after its rows were
/// read), with the error class it met, if any.
pub(crate) struct Timer {
    started: Instant,
    meter: Arc<Meter>,
    shape: Arc<Shape>,
    failed: Mutex<Option<&'static str>>,
}

impl Timer {
    pub(crate) fn start(endpoint: &Endpoint, shape: Arc<Shape>) -> Timer {
        Timer {
            started: Instant::now(),
            meter: Arc::clone(&endpoint.meter),
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
        let elapsed = self.started.elapsed().as_secs_f64();
        let failed = *self.failed.lock().unwrap_or_else(|p| p.into_inner());
        self.meter.statement(&self.shape, elapsed, failed);
    }
}
