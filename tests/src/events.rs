//! What the library reports: tracing events captured per thread, and Prometheus values.

use std::sync::Arc;

/// Tracing events recorded while a [`CapturedEvents::install`] guard lives, on this thread.
#[derive(Debug, Clone, Default)]
pub struct CapturedEvents {
    events: Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>,
}

impl CapturedEvents {
    /// Records the events of this thread (all tasks of a current-thread runtime) until the
    /// guard is dropped.
    pub fn install() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let guard = tracing::subscriber::set_default(captured.clone());
        (captured, guard)
    }

    /// The events so far at `level`, each as its message and fields.
    pub fn at(&self, level: tracing::Level) -> Vec<String> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, text)| text.clone())
            .collect()
    }
}

impl tracing::Subscriber for CapturedEvents {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, "{}={:?} ", field.name(), value);
            }
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push((*event.metadata().level(), text.0));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// The value of `metric` on a Prometheus text page, summed over the series whose labels
/// include every one of `labels` (`name="job"`); 0 when there is none.
pub fn prometheus_value(page: &str, metric: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value
                .parse::<f64>()
                .unwrap_or_else(|e| panic!("not a sample: {line}: {e}"))
        })
        .sum()
}
