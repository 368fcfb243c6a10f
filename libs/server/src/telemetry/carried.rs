//! The trace context a call arrived with, while export is off.
//!
//! Without the OpenTelemetry layer there is no span context to inject, yet
//! an incoming `traceparent` must still reach the next hop. The server layer
//! keeps the call's remote parent on its `rpc.server` span, in the
//! subscriber's span extensions; outgoing calls made under that span (also
//! from tasks that carry it with `in_current_span`) find it there and pass
//! it on unchanged.

use opentelemetry::trace::SpanContext;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

/// The remote parent of a server call, as an extension of its span.
#[derive(Clone, Debug)]
struct Carried(SpanContext);

/// Keeps `context` on `span` (a no-op when the span is disabled or the
/// subscriber has no span registry).
pub(super) fn keep(span: &tracing::Span, context: SpanContext) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>()
            && let Some(span) = registry.span(id)
        {
            span.extensions_mut().insert(Carried(context));
        }
    });
}

/// The context kept on the current span or its nearest ancestor.
pub(super) fn current() -> Option<SpanContext> {
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let span = dispatch.downcast_ref::<Registry>()?.span(id)?;
            span.scope().find_map(|span| {
                span.extensions()
                    .get::<Carried>()
                    .map(|kept| kept.0.clone())
            })
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn context() -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes([7; 16]),
            SpanId::from_bytes([9; 8]),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn child_spans_find_the_kept_context() {
        tracing::subscriber::with_default(Registry::default(), || {
            let server = tracing::info_span!("rpc.server");
            keep(&server, context());
            let _server = server.enter();
            let child = tracing::info_span!("child");
            let _child = child.enter();
            assert_eq!(current(), Some(context()));
        });
    }

    #[test]
    fn nothing_outside_a_server_span() {
        tracing::subscriber::with_default(Registry::default(), || {
            let other = tracing::info_span!("other");
            let _other = other.enter();
            assert_eq!(current(), None);
        });
        assert_eq!(current(), None, "no subscriber");
    }
}
