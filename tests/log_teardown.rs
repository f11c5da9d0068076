//! A `log` record emitted while a thread exits, after its thread-locals began to go, is
//! dropped rather than aborting the process (`LogBridge` in src/config.rs). sled does this
//! from crossbeam-epoch's deferred closures; here a thread-local's destructor does it, so
//! the order is certain: it is registered before the log buffer, so destroyed after it.

struct LogsOnDrop;

impl Drop for LogsOnDrop {
    fn drop(&mut self) {
        log::error!("a record from a thread-local destructor");
    }
}

thread_local! {
    static LOGS_ON_DROP: LogsOnDrop = const { LogsOnDrop };
}

#[test]
fn a_log_record_from_a_thread_local_destructor_does_not_abort() {
    sessiond::config::init_logging(sessiond::config::LogFormat::Text, "trace").expect("logger");
    for i in 0..4 {
        std::thread::spawn(move || {
            LOGS_ON_DROP.with(|_| ());
            tracing::info!(i, "the thread's first event");
            log::info!("a record through the bridge, thread {i}");
        })
        .join()
        .expect("the thread ends without a panic");
    }
    // Reached only if no thread's exit aborted the process.
    log::info!("after the threads");
}
