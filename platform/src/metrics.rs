//! The pipeline's metrics, registered once in the process-wide Prometheus
//! registry with fixed names and bounded labels (stage names, topic names
//! and partition numbers from the catalog; never ids or raw paths).

use std::sync::OnceLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounterVec, IntGaugeVec,
};

pub struct PipelineMetrics {
    /// Records consumed, by stage and topic.
    pub records_in: IntCounterVec,
    /// Records produced, by stage and topic.
    pub records_out: IntCounterVec,
    /// Inputs recognised as already applied and skipped.
    pub duplicates: IntCounterVec,
    /// Inputs that could not be decoded (sent to the dead letters).
    pub poison: IntCounterVec,
    /// Decode attempts that waited for the schema registry.
    pub decode_retries: IntCounterVec,
    /// Records written to the dead-letter topic, by stage and kind.
    pub dead_letters: IntCounterVec,
    /// Transactions aborted, and stage sessions restarted after a fatal
    /// producer error (fenced), by stage.
    pub aborts: IntCounterVec,
    pub restarts: IntCounterVec,
    /// Partitions this instance is assigned, by stage.
    pub assigned_partitions: IntGaugeVec,
    /// Records taken into the open batch whose offsets are not committed
    /// yet (a processor's open transaction, a sink's open Postgres
    /// transaction), by stage: what a crash at this instant would redo.
    pub uncommitted_records: IntGaugeVec,
    /// Time from taking a batch to its offsets being stored.
    pub batch_seconds: HistogramVec,
    pub batch_size: HistogramVec,
    /// Time to commit a sink's Postgres transaction.
    pub commit_seconds: HistogramVec,
    pub restore_seconds: HistogramVec,
    /// Bytes of each changelog record a processor writes: a state that
    /// grows towards the broker's message limit (1 MiB by default) shows
    /// here before its transactions start failing.
    pub state_record_bytes: HistogramVec,
    pub consumer_lag: IntGaugeVec,
}

pub fn pipeline() -> &'static PipelineMetrics {
    static METRICS: OnceLock<PipelineMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // Registration fails only on a duplicate name, which OnceLock rules out.
        PipelineMetrics {
            records_in: register_int_counter_vec!(
                "pipeline_records_in_total",
                "Records consumed",
                &["stage", "topic"]
            )
            .expect("metric registers once"),
            records_out: register_int_counter_vec!(
                "pipeline_records_out_total",
                "Records produced",
                &["stage", "topic"]
            )
            .expect("metric registers once"),
            duplicates: register_int_counter_vec!(
                "pipeline_duplicates_total",
                "Inputs already applied, skipped",
                &["stage"]
            )
            .expect("metric registers once"),
            poison: register_int_counter_vec!(
                "pipeline_poison_records_total",
                "Undecodable inputs",
                &["stage"]
            )
            .expect("metric registers once"),
            decode_retries: register_int_counter_vec!(
                "pipeline_decode_retries_total",
                "Decode attempts that waited for the schema registry",
                &["stage"]
            )
            .expect("metric registers once"),
            dead_letters: register_int_counter_vec!(
                "pipeline_dead_letters_total",
                "Records sent to the dead-letter topic",
                &["stage", "kind"]
            )
            .expect("metric registers once"),
            aborts: register_int_counter_vec!(
                "pipeline_transaction_aborts_total",
                "Transactions aborted (the batch is retried)",
                &["stage"]
            )
            .expect("metric registers once"),
            restarts: register_int_counter_vec!(
                "pipeline_stage_restarts_total",
                "Stage sessions restarted after a fatal producer error (fenced)",
                &["stage"]
            )
            .expect("metric registers once"),
            assigned_partitions: register_int_gauge_vec!(
                "pipeline_assigned_partitions",
                "Partitions this instance is assigned",
                &["stage"]
            )
            .expect("metric registers once"),
            uncommitted_records: register_int_gauge_vec!(
                "pipeline_uncommitted_records",
                "Records of the open batch whose offsets are not committed yet",
                &["stage"]
            )
            .expect("metric registers once"),
            batch_seconds: register_histogram_vec!(
                "pipeline_batch_seconds",
                "Processing time of a batch until its offsets are stored",
                &["stage"],
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
            )
            .expect("metric registers once"),
            batch_size: register_histogram_vec!(
                "pipeline_batch_size",
                "Records per batch",
                &["stage"],
                vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]
            )
            .expect("metric registers once"),
            commit_seconds: register_histogram_vec!(
                "pipeline_sink_commit_seconds",
                "Postgres transaction time of a sink batch",
                &["stage"],
                vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
            )
            .expect("metric registers once"),
            restore_seconds: register_histogram_vec!(
                "pipeline_restore_seconds",
                "Time to restore a partition's state from its changelog",
                &["stage"],
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0]
            )
            .expect("metric registers once"),
            state_record_bytes: register_histogram_vec!(
                "pipeline_state_record_bytes",
                "Bytes of each changelog record a processor writes",
                &["stage"],
                vec![256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 524288.0, 1048576.0]
            )
            .expect("metric registers once"),
            consumer_lag: register_int_gauge_vec!(
                "pipeline_consumer_lag",
                "Records behind the end of the partition",
                &["stage", "topic", "partition"]
            )
            .expect("metric registers once"),
        }
    })
}
