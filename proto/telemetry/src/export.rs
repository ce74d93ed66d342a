//! The OTLP export pipeline, built without starting a thread.
//!
//! opentelemetry's [`BatchSpanProcessor`] exports from a thread of its own,
//! started when the processor is built, and calls the exporter's async
//! `export` with a plain `block_on`; the OTLP exporters (tonic's channel,
//! hyper's client) need a tokio runtime to run in. Here the exporter is
//! built at once, inside a current-thread runtime that has no thread yet
//! (so a bad configuration is reported by `init`), and its exports run on
//! that runtime ([`OnRuntime`]). The batch processor and the thread that
//! drives the runtime start when the first span ends
//! ([`LazyBatchProcessor`]).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

/// How long the exporter's runtime may take to stop once the processor has
/// flushed.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A span exporter whose exports run as tasks on a given tokio runtime,
/// whichever thread calls `export`.
#[derive(Debug)]
pub(crate) struct OnRuntime<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = Arc::clone(&self.inner);
        // The caller's context says that telemetry is suppressed (the spans
        // of the export itself must not be exported): the task keeps it.
        let task = self
            .runtime
            .spawn(async move { inner.export(batch).await }.with_context(Context::current()));
        async move {
            task.await.map_err(|e| {
                OTelSdkError::InternalFailure(format!("the export task failed: {e}"))
            })?
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called before the first export, while no task shares the exporter.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// What is built before the first span ends.
struct Pending {
    runtime: tokio::runtime::Runtime,
    exporter: OnRuntime<opentelemetry_otlp::SpanExporter>,
}

/// The running pipeline.
struct Running {
    processor: BatchSpanProcessor,
    /// Stops the runtime's thread, and the thread.
    driver: Mutex<Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Running {
    fn start(pending: Pending) -> std::io::Result<Self> {
        let Pending { runtime, exporter } = pending;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
                runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
            })?;
        Ok(Self {
            processor: BatchSpanProcessor::builder(exporter).build(),
            driver: Mutex::new(Some((stop, thread))),
        })
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.processor.shutdown_with_timeout(timeout);
        if let Some((stop, thread)) = lock(&self.driver).take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        result
    }
}

/// A batch span processor that starts its threads when the first span
/// ends, exporting over OTLP as the environment configures it.
pub(crate) struct LazyBatchProcessor {
    pending: Mutex<Option<Pending>>,
    /// `None` once shut down before any span ended, or if the threads could
    /// not start.
    running: OnceLock<Option<Running>>,
}

impl fmt::Debug for LazyBatchProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBatchProcessor")
            .field("started", &self.running.get().is_some())
            .finish_non_exhaustive()
    }
}

impl LazyBatchProcessor {
    /// Builds the OTLP exporter from the environment, on a runtime that
    /// starts no thread yet.
    pub(crate) fn new() -> Result<Self, crate::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("otlp-export")
            .build()?;
        let exporter = {
            // tonic's lazy channel spawns its worker on the current runtime.
            let _entered = runtime.enter();
            opentelemetry_otlp::SpanExporter::builder().build()?
        };
        let exporter = OnRuntime {
            inner: Arc::new(exporter),
            runtime: runtime.handle().clone(),
        };
        Ok(Self {
            pending: Mutex::new(Some(Pending { runtime, exporter })),
            running: OnceLock::new(),
        })
    }

    fn running(&self) -> Option<&Running> {
        self.running
            .get_or_init(|| {
                let pending = lock(&self.pending).take()?;
                match Running::start(pending) {
                    Ok(running) => Some(running),
                    Err(e) => {
                        // Not through tracing: this runs inside the
                        // subscriber, as a span closes.
                        eprintln!("starting the OTLP exporter's thread: {e}; no span is exported");
                        None
                    }
                }
            })
            .as_ref()
    }
}

impl SpanProcessor for LazyBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if let Some(running) = self.running() {
            running.processor.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self.running.get() {
            Some(Some(running)) => running.processor.force_flush(),
            _ => Ok(()),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self.running.get_or_init(|| None) {
            Some(running) => running.shutdown(timeout),
            None => {
                if let Some(pending) = lock(&self.pending).take() {
                    // Never driven: nothing to flush. Does not block, so
                    // that it may run inside an async context.
                    pending.runtime.shutdown_background();
                }
                Ok(())
            }
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(pending) = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
        {
            pending.exporter.set_resource(resource);
        }
    }
}
