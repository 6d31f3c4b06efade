//! An in-memory `tracing` layer for the telemetry tests: every span with
//! its fields (as recorded at creation and later), its parent and whether
//! it closed, and every event's fields, the way an exporter's batch
//! processor would see them.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One recorded span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Unique across the run (tracing's ids are reused after close).
    pub seq: u64,
    pub name: &'static str,
    pub target: String,
    pub level: tracing::Level,
    pub parent: Option<u64>,
    pub fields: BTreeMap<String, String>,
    pub closed: bool,
}

impl SpanRecord {
    /// A field as recorded, `None` when it never was.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// One recorded event.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub target: String,
    pub parent: Option<u64>,
    pub fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    spans: Vec<SpanRecord>,
    live: HashMap<Id, usize>,
    events: Vec<EventRecord>,
}

/// What the layer saw.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<State>>);

impl Recorded {
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.0.lock().unwrap().spans.clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.0.lock().unwrap().events.clone()
    }

    /// `root` and every span under it, transitively.
    pub fn tree(&self, root: u64) -> Vec<SpanRecord> {
        let spans = self.spans();
        let mut ids = vec![root];
        let mut out = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            for s in &spans {
                if s.seq == ids[i] {
                    out.push(s.clone());
                }
                if s.parent == Some(ids[i]) {
                    ids.push(s.seq);
                }
            }
            i += 1;
        }
        out
    }

    /// The sequence number of the live span `span`.
    pub fn seq_of(&self, span: &tracing::Span) -> u64 {
        let id = span.id().expect("an enabled span");
        let state = self.0.lock().unwrap();
        state.spans[state.live[&id]].seq
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct Layered(Recorded);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Layered {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent_id = ctx.span(id).and_then(|s| s.parent()).map(|p| p.id());
        let mut state = (self.0).0.lock().unwrap();
        let parent = parent_id
            .and_then(|p| state.live.get(&p).copied())
            .map(|i| state.spans[i].seq);
        let seq = state.spans.len() as u64;
        let meta = attrs.metadata();
        state.spans.push(SpanRecord {
            seq,
            name: meta.name(),
            target: meta.target().to_owned(),
            level: *meta.level(),
            parent,
            fields,
            closed: false,
        });
        let index = state.spans.len() - 1;
        state.live.insert(id.clone(), index);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut state = (self.0).0.lock().unwrap();
        if let Some(&i) = state.live.get(id) {
            values.record(&mut Fields(&mut state.spans[i].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let parent_id = ctx.event_span(event).map(|s| s.id());
        let mut state = (self.0).0.lock().unwrap();
        let parent = parent_id
            .and_then(|p| state.live.get(&p).copied())
            .map(|i| state.spans[i].seq);
        state.events.push(EventRecord {
            target: event.metadata().target().to_owned(),
            parent,
            fields,
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let mut state = (self.0).0.lock().unwrap();
        if let Some(i) = state.live.remove(&id) {
            state.spans[i].closed = true;
        }
    }
}

/// The recorder of this test binary, installed as the global subscriber
/// with every level enabled (tests run on many threads, and SQLite's
/// statements on blocking threads: a thread-local default would miss them).
pub fn install() -> Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED
        .get_or_init(|| {
            let recorded = Recorded::default();
            let subscriber = tracing_subscriber::registry().with(Layered(recorded.clone()));
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            recorded
        })
        .clone()
}
