//! Timings of repeated runs and how they are shown.

use std::time::Duration;

use serde_json::{Value, json};

/// Wall times of several runs of one thing, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    pub fn push(&mut self, elapsed: Duration) {
        self.0.push(elapsed.as_secs_f64() * 1000.0);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        sorted
    }

    pub fn median(&self) -> f64 {
        let sorted = self.sorted();
        match sorted.len() {
            0 => f64::NAN,
            len if len % 2 == 1 => sorted[len / 2],
            len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
        }
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    /// `median (min–max)` in ms.
    pub fn cell(&self) -> String {
        format!(
            "{} ({}–{})",
            short(self.median()),
            short(self.min()),
            short(self.max())
        )
    }

    pub fn json(&self) -> Value {
        json!({"median_ms": self.median(), "min_ms": self.min(), "max_ms": self.max(), "runs_ms": self.0})
    }
}

/// Three significant figures or so, enough for timings.
pub fn short(ms: f64) -> String {
    if ms.abs() >= 100.0 {
        format!("{ms:.0}")
    } else if ms.abs() >= 10.0 {
        format!("{ms:.1}")
    } else if ms.abs() >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// Overhead per step in ms and the ratio to the floor, from medians.
pub fn overhead(pallet: &Samples, floor: &Samples, steps: usize) -> (f64, f64) {
    let (pallet, floor) = (pallet.median(), floor.median());
    ((pallet - floor) / steps as f64, pallet / floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let cases: [(&[f64], f64, f64, f64); 3] = [
            (&[3.0, 1.0, 2.0], 2.0, 1.0, 3.0),
            (&[4.0, 1.0, 2.0, 3.0], 2.5, 1.0, 4.0),
            (&[5.0], 5.0, 5.0, 5.0),
        ];
        for (runs, median, min, max) in cases {
            let samples = Samples(runs.to_vec());
            assert_eq!(
                (samples.median(), samples.min(), samples.max()),
                (median, min, max)
            );
        }
    }

    #[test]
    fn overhead_per_step_and_ratio() {
        let pallet = Samples(vec![30.0]);
        let floor = Samples(vec![20.0]);
        assert_eq!(overhead(&pallet, &floor, 100), (0.1, 1.5));
    }
}
