//! Learning-rate schedules, as a function of the step (so a resumed run gets the same rate).
use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// How the learning rate changes over training.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `lr · (1 − step/steps)^power` (DeepLab's "poly").
    Poly { power: f64 },
    /// `lr · gamma^⌊step/every⌋` (TreeMTL: every 4000 steps × 0.5).
    Step { every: usize, gamma: f64 },
}

impl Schedule {
    /// The rate at `step` of `steps` for base rate `lr`.
    pub fn rate(&self, lr: f64, step: usize, steps: usize) -> f64 {
        match *self {
            Schedule::Constant => lr,
            Schedule::Poly { power } => lr * (1.0 - step as f64 / steps.max(1) as f64).max(0.0).powf(power),
            Schedule::Step { every, gamma } => lr * gamma.powi((step / every.max(1)) as i32),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Poly { power } => write!(f, "poly:{power}"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
        }
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Schedule {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// `constant`, `poly[:POWER]` (default 0.9), `step:EVERY:GAMMA`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::parameter("schedule", format!("`{s}` is not a schedule; use constant, poly, poly:0.9 or step:4000:0.5"));
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["poly"] => Ok(Schedule::Poly { power: 0.9 }),
            ["poly", p] => {
                let power: f64 = p.parse().map_err(|_| bad())?;
                // NaN or a negative power would give NaN or growing rates.
                if !(power.is_finite() && power >= 0.0) {
                    return Err(bad());
                }
                Ok(Schedule::Poly { power })
            }
            ["step", e, g] => {
                let every: usize = e.parse().map_err(|_| bad())?;
                let gamma: f64 = g.parse().map_err(|_| bad())?;
                if every == 0 || !(gamma.is_finite() && gamma > 0.0) {
                    return Err(bad());
                }
                Ok(Schedule::Step { every, gamma })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_by_hand() {
        assert_eq!(Schedule::Step { every: 4000, gamma: 0.5 }.rate(1e-3, 8000, 20000), 2.5e-4);
        assert!((Schedule::Poly { power: 1.0 }.rate(1.0, 25, 100) - 0.75).abs() < 1e-12);
        assert_eq!("step:10:0.1".parse::<Schedule>().unwrap(), Schedule::Step { every: 10, gamma: 0.1 });
        assert_eq!("poly".parse::<Schedule>().unwrap().to_string(), "poly:0.9");
        assert!("step:0:1".parse::<Schedule>().is_err() && "cosine".parse::<Schedule>().is_err());
        for bad in ["poly:nan", "poly:-1", "step:10:nan", "step:10:0", "step:10:inf"] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
    }
}
