//! The recording layer of `scripts/bench --telemetry` and of the
//! instruction counter's `crate-recorded` side: a `tracing` layer that keeps
//! every span's fields in memory as an OpenTelemetry layer hands them to its
//! exporter's batch processor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// One field's value as an exporter keeps it: typed, text copied as it is
/// (an OpenTelemetry layer turns each field into a typed attribute, and its
/// batch processor receives them so), `Debug` formatted only for fields
/// recorded as such.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "kept as an exporter keeps them: the pass measures the keeping"
)]
pub enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Debug(String),
}

/// One span's fields.
pub type SpanFields = Vec<(&'static str, Value)>;

/// Every span's fields, kept in memory (bounded: cleared when full) once
/// `recording` is on; before, the layer is interested in every span but
/// keeps nothing.
#[derive(Clone, Default)]
pub struct Spans(pub Arc<Mutex<Vec<SpanFields>>>, pub Arc<AtomicBool>);

struct Fields<'a>(&'a mut SpanFields);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), Value::Str(value.to_owned())));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), Value::I64(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), Value::U64(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push((field.name(), Value::F64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), Value::Bool(value)));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .push((field.name(), Value::Debug(format!("{value:?}"))));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if !self.1.load(Ordering::Relaxed) {
            return;
        }
        let mut fields = Vec::with_capacity(16);
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        if spans.len() >= 100_000 {
            spans.clear();
        }
        spans.push(fields);
    }

    fn on_record(&self, _id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if !self.1.load(Ordering::Relaxed) {
            return;
        }
        let mut fields = Vec::new();
        values.record(&mut Fields(&mut fields));
        std::hint::black_box(fields);
    }
}
