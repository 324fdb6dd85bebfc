//! `GET /metrics` in the Prometheus text format (0.0.4): runs by status
//! (from the database, so every worker of a shared one reports the same),
//! runs executing in this process, the queue of a shared database, and, for
//! the steps this process ran, a duration histogram by skill and status,
//! retries by skill and failures by skill and agent (told by the engine at
//! each step's end), agent call errors by agent and kind, and the run
//! database's write latency ([`crate::store::latency`]). Label sets are bounded ([`MAX_SERIES`]): an agent that renames
//! itself for every call cannot grow the page without end.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;

use crate::engine::{StepObserver, StepRecord, StepStatus};
use crate::store::RunState;

/// Upper bounds (seconds) of the step duration histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Label sets per metric; past it, new ones count under `other`.
pub const MAX_SERIES: usize = 1000;

/// The label value that stands for the label sets past [`MAX_SERIES`].
const OTHER: &str = "other";

#[derive(Default)]
struct Histogram {
    /// Observations at most each bound of [`BUCKETS`] (not cumulative).
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Counts {
    /// (skill, status) -> durations.
    steps: BTreeMap<(String, &'static str), Histogram>,
    /// skill -> attempts made again.
    retries: BTreeMap<String, u64>,
    /// (skill, agent) -> steps failed.
    failures: BTreeMap<(String, String), u64>,
    /// (agent, kind) -> calls failed.
    call_errors: BTreeMap<(String, &'static str), u64>,
}

/// What this process observed; shared by the service's routes and its
/// engine, which tells it of every step's end ([`StepObserver`]).
#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

impl StepObserver for Metrics {
    fn step_finished(&self, record: &StepRecord) {
        self.observe(record);
    }
    fn call_failed(&self, agent: &str, kind: &'static str) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *bounded(&mut counts.call_errors, (agent.to_string(), kind), || {
            (OTHER.to_string(), kind)
        }) += 1;
    }
}

/// The entry of `key` in `map`, or of its `other` stand-in once `map` is full.
fn bounded<K: Ord, V: Default>(
    map: &mut BTreeMap<K, V>,
    key: K,
    other: impl FnOnce() -> K,
) -> &mut V {
    let key = match map.len() < MAX_SERIES || map.contains_key(&key) {
        true => key,
        false => other(),
    };
    map.entry(key).or_default()
}

fn status_label(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Completed => "completed",
        StepStatus::Failed => "failed",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Skipped => "skipped",
        StepStatus::Waiting => "waiting",
    }
}

impl Metrics {
    fn observe(&self, record: &StepRecord) {
        // Steps without a skill (approvals, conditions, groups) are not agent calls.
        let Some(skill) = record.skill.clone() else {
            return;
        };
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let status = status_label(record.status);
        let seconds = record.duration_ms / 1000.0;
        let histogram = bounded(&mut counts.steps, (skill.clone(), status), || {
            (OTHER.to_string(), status)
        });
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.buckets[bucket] += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
        if record.attempts > 1 {
            *bounded(&mut counts.retries, skill.clone(), || OTHER.to_string()) +=
                u64::from(record.attempts - 1);
        }
        if record.status == StepStatus::Failed {
            let agent = record.agent.clone().unwrap_or_else(|| "none".to_string());
            *bounded(&mut counts.failures, (skill, agent), || {
                (OTHER.to_string(), OTHER.to_string())
            }) += 1;
        }
    }

    /// The page: `runs` by status, `executing` here, `queued` in the database.
    pub fn render(&self, runs: &HashMap<RunState, u64>, executing: usize, queued: usize) -> String {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut page = String::new();
        family(
            &mut page,
            "pallet_runs",
            "gauge",
            "Runs in the run database, by status.",
        );
        for state in RunState::ALL {
            let count = runs.get(&state).copied().unwrap_or(0);
            let _ = writeln!(page, "pallet_runs{{status=\"{}\"}} {count}", state.as_str());
        }
        family(
            &mut page,
            "pallet_runs_executing",
            "gauge",
            "Runs this process executes now.",
        );
        let _ = writeln!(page, "pallet_runs_executing {executing}");
        family(
            &mut page,
            "pallet_queue_depth",
            "gauge",
            "Runs of a shared database waiting for a worker.",
        );
        let _ = writeln!(page, "pallet_queue_depth {queued}");
        family(
            &mut page,
            "pallet_step_duration_seconds",
            "histogram",
            "Agent steps this process ran, by skill and final status.",
        );
        for ((skill, status), histogram) in &counts.steps {
            let labels = format!("skill=\"{}\",status=\"{status}\"", escaped(skill));
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    page,
                    "pallet_step_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                page,
                "pallet_step_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\npallet_step_duration_seconds_sum{{{labels}}} {}\npallet_step_duration_seconds_count{{{labels}}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        family(
            &mut page,
            "pallet_step_retries_total",
            "counter",
            "Attempts made again, by skill.",
        );
        for (skill, count) in &counts.retries {
            let _ = writeln!(
                page,
                "pallet_step_retries_total{{skill=\"{}\"}} {count}",
                escaped(skill)
            );
        }
        family(
            &mut page,
            "pallet_step_failures_total",
            "counter",
            "Agent steps failed, by skill and the agent tried last.",
        );
        for ((skill, agent), count) in &counts.failures {
            let _ = writeln!(
                page,
                "pallet_step_failures_total{{skill=\"{}\",agent=\"{}\"}} {count}",
                escaped(skill),
                escaped(agent)
            );
        }
        family(
            &mut page,
            "pallet_agent_call_errors_total",
            "counter",
            "Agent calls that failed (every attempt and every agent tried), by agent and kind: connection, timeout, http, unauthorized, agent_reported, invalid_answer, too_large, no_interface, cancelled.",
        );
        for ((agent, kind), count) in &counts.call_errors {
            let _ = writeln!(
                page,
                "pallet_agent_call_errors_total{{agent=\"{}\",kind=\"{kind}\"}} {count}",
                escaped(agent)
            );
        }
        family(
            &mut page,
            "pallet_store_write_seconds",
            "histogram",
            "Write transactions of the run database in this process, from begin to the commit's answer.",
        );
        let (buckets, sum, count) = crate::store::latency::snapshot();
        let mut cumulative = 0;
        for (bound, observed) in crate::store::latency::BOUNDS.iter().zip(buckets) {
            cumulative += observed;
            let _ = writeln!(
                page,
                "pallet_store_write_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            page,
            "pallet_store_write_seconds_bucket{{le=\"+Inf\"}} {count}\npallet_store_write_seconds_sum {sum}\npallet_store_write_seconds_count {count}"
        );
        page
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(page: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format writes it.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(skill: &str, agent: &str, status: StepStatus, attempts: u32) -> StepRecord {
        StepRecord {
            id: "s".to_string(),
            skill: Some(skill.to_string()),
            status,
            inputs: None,
            outputs: None,
            error: None,
            attempts,
            agent: Some(agent.to_string()),
            child: None,
            status_messages: Vec::new(),
            started_at: String::new(),
            ended_at: String::new(),
            duration_ms: 20.0,
        }
    }

    #[test]
    fn series_are_bounded_and_labels_escaped() {
        let metrics = Metrics::default();
        for n in 0..(MAX_SERIES + 500) {
            metrics.observe(&finished(
                &format!("skill-{n}"),
                "a",
                StepStatus::Completed,
                1,
            ));
        }
        metrics.observe(&finished(
            "say \"hi\"\n\\",
            "agent \"x\"",
            StepStatus::Failed,
            3,
        ));
        let page = metrics.render(&HashMap::new(), 0, 0);
        let counts = page
            .lines()
            .filter(|line| line.starts_with("pallet_step_duration_seconds_count"))
            .count();
        assert_eq!(
            counts,
            MAX_SERIES + 2,
            "the bound, and `other` for each status"
        );
        assert!(
            page.contains(
                r#"pallet_step_duration_seconds_count{skill="other",status="completed"} 500"#
            ),
            "{page}"
        );
        assert!(
            page.contains(r#"pallet_step_duration_seconds_count{skill="other",status="failed"} 1"#)
        );
        assert!(
            page.contains(r#"pallet_step_retries_total{skill="say \"hi\"\n\\"} 2"#),
            "{page}"
        );
        assert!(
            page.contains(
                r#"pallet_step_failures_total{skill="say \"hi\"\n\\",agent="agent \"x\""} 1"#
            ),
            "{page}"
        );
    }
}
