//! The results: a Markdown table (printed and written) and the same as JSON.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::Options;
use crate::agent::Protocol;
use crate::runs::Shape;
use crate::stats::{Samples, overhead, short};

#[derive(Default)]
pub struct Report {
    pub per_step: Vec<PerStep>,
    /// What was run, and its times.
    pub startup: Vec<(String, Samples)>,
    pub breakdown: Vec<(String, Samples)>,
    pub registry: Vec<RegistryRow>,
}

pub struct PerStep {
    pub shape: Shape,
    pub protocol: Protocol,
    /// One pooled client kept across runs (warm connections).
    pub floor: Samples,
    /// A new client per run, as a new process has.
    pub cold_floor: Samples,
    pub engine: Samples,
    pub process: Samples,
    /// The `--baseline` binary's process, run right after `process` in each round.
    pub baseline: Samples,
}

impl PerStep {
    pub fn new(shape: Shape, protocol: Protocol) -> PerStep {
        PerStep {
            shape,
            protocol,
            floor: Samples::default(),
            cold_floor: Samples::default(),
            engine: Samples::default(),
            process: Samples::default(),
            baseline: Samples::default(),
        }
    }

    /// The card, then each step's calls.
    fn requests(&self) -> usize {
        1 + self.shape.steps() * self.protocol.calls_per_step()
    }
}

pub struct RegistryRow {
    pub label: String,
    pub times: Samples,
    /// Registry requests before the first step, per run.
    pub round_trips: Vec<usize>,
}

impl RegistryRow {
    pub fn new(label: String) -> RegistryRow {
        RegistryRow {
            label,
            times: Samples::default(),
            round_trips: Vec::new(),
        }
    }

    fn round_trips_cell(&self) -> String {
        let (min, max) = (
            self.round_trips.iter().min().copied().unwrap_or_default(),
            self.round_trips.iter().max().copied().unwrap_or_default(),
        );
        if min == max {
            min.to_string()
        } else {
            format!("{min}–{max}")
        }
    }
}

impl Report {
    pub fn markdown(&self, options: &Options) -> String {
        let mut text = String::new();
        let mode = if options.smoke {
            "SMOKE MODE (correctness only, timings meaningless)\n\n"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "{mode}Times in ms: median (min–max) of {} runs after one warm-up round; overhead per step = (pallet − floor) / steps, from medians. The engine is compared with the floor on a pooled client kept across runs; the `pallet run` process (startup, loading, output files included) with the floor on a new client per run, as a new process has.\n",
            options.runs
        );
        text.push_str("| workflow | protocol | HTTP requests | floor, pooled client | engine in-process | overhead/step | × floor | floor, new client | `pallet run` process | overhead/step | × floor, new client |\n");
        text.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for row in &self.per_step {
            let steps = row.shape.steps();
            let (engine_step, engine_ratio) = overhead(&row.engine, &row.floor, steps);
            let (process_step, process_ratio) = overhead(&row.process, &row.cold_floor, steps);
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {:.2} |",
                row.shape.label(),
                row.protocol.name(),
                row.requests(),
                row.floor.cell(),
                row.engine.cell(),
                short(engine_step),
                engine_ratio,
                row.cold_floor.cell(),
                row.process.cell(),
                short(process_step),
                process_ratio
            );
        }
        self.before_and_after(&mut text);
        text.push_str("\n| whole process | time |\n|---|---:|\n");
        for (label, samples) in &self.startup {
            let _ = writeln!(text, "| {label} | {} |", samples.cell());
        }
        text.push_str("\n| where a process's time goes (in-process pieces) | time |\n|---|---:|\n");
        for (label, samples) in &self.breakdown {
            let _ = writeln!(text, "| {label} | {} |", samples.cell());
        }
        if !self.registry.is_empty() {
            text.push_str("\n| registry (in-process: library + engine, A2A agent) | time | registry round-trips before the first step |\n|---|---:|---:|\n");
            for row in &self.registry {
                let _ = writeln!(
                    text,
                    "| {} | {} | {} |",
                    row.label,
                    row.times.cell(),
                    row.round_trips_cell()
                );
            }
        }
        text
    }

    /// With `--baseline`: each shape's process before and after, and the
    /// marginal cost of a step (the slope from the 3-step to the 100-step
    /// sequential workflow, so start-up counts once) over the floor's.
    fn before_and_after(&self, text: &mut String) {
        if self.per_step.iter().all(|row| row.baseline.0.is_empty()) {
            return;
        }
        text.push_str("\n| workflow | protocol | floor, new client | baseline `pallet run` | `pallet run` | after / before |\n|---|---|---:|---:|---:|---:|\n");
        for row in &self.per_step {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | {} | {:.2} |",
                row.shape.label(),
                row.protocol.name(),
                row.cold_floor.cell(),
                row.baseline.cell(),
                row.process.cell(),
                row.process.median() / row.baseline.median()
            );
        }
        text.push_str("\n| marginal cost per step (3 → 100 sequential) | floor, new client | baseline `pallet run` | `pallet run` | `pallet run` above the floor |\n|---|---:|---:|---:|---:|\n");
        for protocol in [Protocol::A2a, Protocol::Legacy] {
            let row = |shape: &str| {
                self.per_step
                    .iter()
                    .find(|row| row.protocol == protocol && row.shape.label() == shape)
            };
            let (Some(three), Some(hundred)) = (
                row(Shape::CodeGeneration.label()),
                row(Shape::Sequential100.label()),
            ) else {
                continue;
            };
            let steps = (Shape::Sequential100.steps() - Shape::CodeGeneration.steps()) as f64;
            let slope =
                |of: fn(&PerStep) -> &Samples| (of(hundred).median() - of(three).median()) / steps;
            let (floor, before, after) = (
                slope(|row| &row.cold_floor),
                slope(|row| &row.baseline),
                slope(|row| &row.process),
            );
            let _ = writeln!(
                text,
                "| {} | {} | {} | {} | +{} |",
                protocol.name(),
                short(floor),
                short(before),
                short(after),
                short(after - floor)
            );
        }
    }

    pub fn json(&self, options: &Options) -> Value {
        let per_step: Vec<Value> = self
            .per_step
            .iter()
            .map(|row| {
                let steps = row.shape.steps();
                let (engine_step, engine_ratio) = overhead(&row.engine, &row.floor, steps);
                let (process_step, process_ratio) = overhead(&row.process, &row.cold_floor, steps);
                json!({
                    "workflow": row.shape.label(),
                    "protocol": row.protocol.name(),
                    "steps": steps,
                    "http_requests": row.requests(),
                    "floor": row.floor.json(),
                    "cold_floor": row.cold_floor.json(),
                    "engine": row.engine.json(),
                    "engine_overhead_per_step_ms": engine_step,
                    "engine_ratio_to_floor": engine_ratio,
                    "process": row.process.json(),
                    "process_overhead_per_step_ms": process_step,
                    "process_ratio_to_floor": process_ratio,
                    "baseline_process": row.baseline.json(),
                })
            })
            .collect();
        let startup: Vec<Value> = self
            .startup
            .iter()
            .map(|(label, samples)| json!({"what": label, "time": samples.json()}))
            .collect();
        let breakdown: Vec<Value> = self
            .breakdown
            .iter()
            .map(|(label, samples)| json!({"what": label, "time": samples.json()}))
            .collect();
        let registry: Vec<Value> = self
            .registry
            .iter()
            .map(|row| json!({"what": row.label, "time": row.times.json(), "round_trips": row.round_trips}))
            .collect();
        json!({
            "smoke": options.smoke,
            "runs": options.runs,
            "per_step": per_step,
            "startup": startup,
            "breakdown": breakdown,
            "registry": registry,
        })
    }
}
