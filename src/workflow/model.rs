//! The workflow definition as serde types. Structure is checked by the JSON
//! Schema first (`schema.rs`), so these types only need to describe valid input.

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Timeout applied to a step that does not set one, as in the original project.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub metadata: Metadata,
    /// The typed inputs (`workflow.input`): a JSON Schema per field; `None`
    /// when the workflow declares none (then any input is accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<super::inputs::Inputs>,
    /// Upper bound on the whole run.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    pub steps: Vec<Step>,
    /// Steps run when the run fails (cleanup, notify), with `{{ error }}`
    /// bound; the run stays failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub id: String,
    pub name: String,
    pub version: semver::Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    #[default]
    Sequential,
    Parallel,
    Conditional,
    Switch,
    /// A human decision: the run waits in `waiting_approval` until approved or rejected.
    Approval,
    /// The body (`steps`) once per item of a list (`items`).
    ForEach,
    /// The body (`steps`) again and again until `until` holds or `max_iterations` ran.
    Loop,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    /// The skill to call. Container steps (parallel, conditional, switch) need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Input values; strings may hold `{{ }}` templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub inputs: Map<String, Value>,
    /// Name the step's whole result is stored under: `steps.ID.outputs.NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<String>,
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub step_type: StepType,
    /// Template evaluated by conditional (truthiness) and switch (case name) steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// parallel: `{steps: [...]}`; conditional: `{if_true: [...], if_false: [...]}`;
    /// switch: `{CASE: [...], default: [...]}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub branches: IndexMap<String, Vec<Step>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// parallel only: how many branch steps run at once (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// parallel only: the first failure cancels the siblings (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    /// approval only: what the approver is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// approval only: what to check before deciding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// approval only: fields an approval must carry (`pallet approve --field NAME=VALUE`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// approval only: the decision taken when `timeout` passes without one (default reject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<TimeoutDecision>,
    /// approval only: where a rejection sends the run (default: the run fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reject: Option<OnReject>,
    /// The largest answer, in bytes, the step's agent may send (default 16 MiB).
    #[serde(default, with = "size_opt", skip_serializing_if = "Option::is_none")]
    pub max_response_size: Option<u64>,
    /// for_each only: a template giving the list to iterate over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// for_each only: the most items the list may have (default [`DEFAULT_MAX_ITEMS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<usize>,
    /// for_each and loop: the body, run once per item or iteration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// loop only: a template over the iteration's steps; a truthy value ends the loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// loop only: the most iterations run (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_iterations: Option<u32>,
    /// Steps run instead when this step fails, with `{{ error }}` bound; their
    /// last step's outputs become this step's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Step>,
    /// A guard template (`if:`): read when the step would start; a falsy
    /// value (or a missing one) skips the step and everything nested in it.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// A failure of this step is recorded and the run goes on (not a cancellation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
}

/// How many items a for_each step takes when it sets no `max_items`.
pub const DEFAULT_MAX_ITEMS: usize = 1000;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutDecision {
    #[default]
    Reject,
    Approve,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnReject {
    /// An earlier top-level step: it and every step after it run again.
    pub retry_from: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total attempts including the first one.
    pub max_attempts: u32,
    #[serde(default)]
    pub backoff: Backoff,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default = "Backoff::default_initial", with = "duration")]
    pub initial: Duration,
    #[serde(default = "Backoff::default_max", with = "duration")]
    pub max: Duration,
    #[serde(default = "Backoff::default_multiplier")]
    pub multiplier: f64,
}

impl Backoff {
    fn default_initial() -> Duration {
        Duration::from_millis(500)
    }
    fn default_max() -> Duration {
        Duration::from_secs(30)
    }
    fn default_multiplier() -> f64 {
        2.0
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Self::default_initial(),
            max: Self::default_max(),
            multiplier: Self::default_multiplier(),
        }
    }
}

/// A typed view of a step's kind, so the engine never looks up branch names by hand.
#[derive(Debug, Clone, Copy)]
pub enum StepKind<'a> {
    Call {
        skill: &'a str,
    },
    Parallel {
        steps: &'a [Step],
    },
    Conditional {
        if_true: &'a [Step],
        if_false: &'a [Step],
    },
    Switch {
        cases: &'a IndexMap<String, Vec<Step>>,
    },
    Approval,
    ForEach {
        body: &'a [Step],
    },
    Loop {
        body: &'a [Step],
        max_iterations: u32,
    },
}

impl Step {
    pub fn kind(&self) -> StepKind<'_> {
        let branch = |name: &str| self.branches.get(name).map(Vec::as_slice).unwrap_or(&[]);
        match self.step_type {
            StepType::Sequential => StepKind::Call {
                skill: self.skill.as_deref().unwrap_or_default(),
            },
            StepType::Parallel => StepKind::Parallel {
                steps: branch("steps"),
            },
            StepType::Conditional => StepKind::Conditional {
                if_true: branch("if_true"),
                if_false: branch("if_false"),
            },
            StepType::Switch => StepKind::Switch {
                cases: &self.branches,
            },
            StepType::Approval => StepKind::Approval,
            StepType::ForEach => StepKind::ForEach { body: &self.steps },
            StepType::Loop => StepKind::Loop {
                body: &self.steps,
                // The schema requires it; 1 is the bound a missing one cannot exceed.
                max_iterations: self.max_iterations.unwrap_or(1),
            },
        }
    }

    /// When an approval step has waited this long, `on_timeout` decides; `None` waits forever.
    pub fn approval_timeout(&self) -> Option<Duration> {
        (self.step_type == StepType::Approval)
            .then_some(self.timeout)
            .flatten()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT)
    }

    /// The steps nested directly in this one: its branches', then its body's
    /// (not its on_failure handler's, which runs only when it fails).
    pub fn children(&self) -> impl Iterator<Item = &Step> {
        self.branches.values().flatten().chain(&self.steps)
    }

    /// for_each and loop steps run their body in iterations, each with its own
    /// step outputs (`steps.ID` inside the body is this iteration's).
    pub fn iterates(&self) -> bool {
        matches!(self.step_type, StepType::ForEach | StepType::Loop)
    }
}

impl Workflow {
    /// Every step of the tree, depth first, parents before children.
    pub fn all_steps(&self) -> Vec<&Step> {
        fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for step in steps {
                out.push(step);
                for branch in step.branches.values() {
                    walk(branch, out);
                }
                walk(&step.steps, out);
                walk(&step.on_failure, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.steps, &mut out);
        walk(&self.on_failure, &mut out);
        out
    }
}

/// Durations are written as seconds (`300`, `0.5`) as in the original project,
/// or as a humantime string (`"30s"`, `"5m"`, `"1h 30m"`).
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }

    /// The longest duration a workflow may give: longer ones are mistakes,
    /// and would overflow when added to instants.
    pub const MAX: Duration = Duration::from_secs(30 * 24 * 60 * 60);

    /// The error for a duration longer than `MAX`.
    pub fn too_long(text: &str) -> String {
        format!("duration {text} is longer than the maximum of 30 days (2592000 seconds)")
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        let duration = humantime::parse_duration(text.trim()).map_err(|error| {
            format!("invalid duration {text:?}: {error}; write seconds (300) or a unit (\"30s\", \"5m\")")
        })?;
        if duration > MAX {
            return Err(too_long(&format!("{text:?}")));
        }
        Ok(duration)
    }

    /// A number of seconds as a duration, failing (not panicking) past `MAX`.
    pub fn from_seconds(seconds: f64) -> Result<Duration, String> {
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(format!(
                "invalid duration {seconds}: must be zero or more seconds"
            ));
        }
        match Duration::try_from_secs_f64(seconds) {
            Ok(duration) if duration <= MAX => Ok(duration),
            _ => Err(too_long(&seconds.to_string())),
        }
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(seconds) => from_seconds(seconds).map_err(D::Error::custom),
            Raw::Text(text) => parse(&text).map_err(D::Error::custom),
        }
    }
}

mod duration_opt {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::duration::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(deserializer).map(Some)
    }
}

/// Sizes are written as bytes (`1048576`) or with a binary unit (`"16MiB"`,
/// `"512 KiB"`, `"1GiB"`); decimal units (`kB`, `MB`, `GB`) are accepted too.
pub mod size {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    const UNITS: [(&str, u64); 8] = [
        ("B", 1),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
        ("kB", 1000),
        ("KB", 1000),
        ("MB", 1000 * 1000),
        ("GB", 1000 * 1000 * 1000),
    ];

    pub fn parse(text: &str) -> Result<u64, String> {
        let invalid = || {
            format!(
                "invalid size {text:?}: write bytes (1048576) or a unit (\"512KiB\", \"16MiB\", \"1GiB\")"
            )
        };
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        let number: u64 = digits.parse().map_err(|_| invalid())?;
        let unit = unit.trim();
        let multiplier = match unit {
            "" => 1,
            _ => UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, multiplier)| *multiplier)
                .ok_or_else(invalid)?,
        };
        let bytes = number.checked_mul(multiplier).ok_or_else(invalid)?;
        if bytes == 0 {
            return Err(format!("invalid size {text:?}: must be at least one byte"));
        }
        Ok(bytes)
    }

    /// `16 MiB` for whole binary units, else the bytes.
    pub fn display(bytes: u64) -> String {
        for (name, multiplier) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if bytes >= multiplier && bytes.is_multiple_of(multiplier) {
                return format!("{} {name}", bytes / multiplier);
            }
        }
        format!("{bytes} bytes")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(0) => Err(D::Error::custom(
                "invalid size 0: must be at least one byte",
            )),
            Raw::Bytes(bytes) => Ok(bytes),
            Raw::Text(text) => parse(&text).map_err(D::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(*value)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn sizes_in_bytes_and_units() {
            let cases = [
                ("1048576", Ok(1 << 20)),
                ("16MiB", Ok(16 << 20)),
                ("512 KiB", Ok(512 << 10)),
                ("1GiB", Ok(1 << 30)),
                ("2MB", Ok(2_000_000)),
                ("0", Err(())),
                ("16 mb", Err(())),
                ("MiB", Err(())),
                ("99999999999999GiB", Err(())),
            ];
            for (text, expected) in cases {
                assert_eq!(super::parse(text).map_err(|_| ()), expected, "{text}");
            }
            assert_eq!(super::display(16 << 20), "16 MiB");
            assert_eq!(super::display(1000), "1000 bytes");
        }
    }
}

pub mod size_opt {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => super::size::serialize(bytes, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        super::size::deserialize(deserializer).map(Some)
    }
}
