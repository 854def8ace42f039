//! Problems a run (an evaluation, for now) reports without stopping: typed, so that callers can match on them,
//! and written to report.json as the same one-line text as always (old reports still read).
use std::fmt;

/// A problem that does not stop an evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Warning {
    /// Metrics left out of an attack's ARP because their clean value is 0 or not finite.
    ArpSkipped { label: String, metrics: Vec<String> },
    /// Adversarial inputs that failed a sanity check ([`crate::attack::Checks::failures`]).
    SanityCheck { label: String, failures: Vec<String> },
    /// Samples whose first input gradient was all zero: the attack cannot move them.
    ZeroGradient { label: String, samples: usize },
    /// A warning read from a report whose text matches none of the above.
    Other(String),
}

const ARP_SKIPPED: &str = ": left out of ARP because the clean value is 0 or not finite: ";
const SANITY: &str = ": adversarial inputs failed a sanity check: ";
const ZERO_GRADIENT: &str = " sample(s) had an all-zero input gradient; the attack cannot move them";

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::ArpSkipped { label, metrics } => write!(f, "{label}{ARP_SKIPPED}{}", metrics.join(", ")),
            Warning::SanityCheck { label, failures } => write!(f, "{label}{SANITY}{}", failures.join("; ")),
            Warning::ZeroGradient { label, samples } => write!(f, "{label}: {samples}{ZERO_GRADIENT}"),
            Warning::Other(text) => f.write_str(text),
        }
    }
}

impl From<Warning> for String {
    fn from(w: Warning) -> String {
        w.to_string()
    }
}

impl From<String> for Warning {
    /// Reads the text [`Warning`]'s `Display` writes back into its variant.
    fn from(text: String) -> Warning {
        let list = |s: &str, sep: &str| s.split(sep).map(str::to_string).collect();
        if let Some((label, metrics)) = text.split_once(ARP_SKIPPED) {
            return Warning::ArpSkipped { label: label.into(), metrics: list(metrics, ", ") };
        }
        if let Some((label, failures)) = text.split_once(SANITY) {
            return Warning::SanityCheck { label: label.into(), failures: list(failures, "; ") };
        }
        if let Some((label, n)) = text.strip_suffix(ZERO_GRADIENT).and_then(|head| head.rsplit_once(": "))
            && let Ok(samples) = n.parse()
        {
            return Warning::ZeroGradient { label: label.into(), samples };
        }
        Warning::Other(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_read_as_before_and_round_trip_through_report_json() {
        let label = "pgd/single:segment_semantic/linf/eps=8".to_string();
        let cases = [
            (
                Warning::ArpSkipped { label: label.clone(), metrics: vec!["depth_zbuffer.rmse".into(), "normal.mean".into()] },
                "pgd/single:segment_semantic/linf/eps=8: left out of ARP because the clean value is 0 or not finite: \
                 depth_zbuffer.rmse, normal.mean",
            ),
            (
                Warning::SanityCheck {
                    label: label.clone(),
                    failures: vec!["the perturbation size is NaN".into(), "2 input value(s) are NaN or infinite".into()],
                },
                "pgd/single:segment_semantic/linf/eps=8: adversarial inputs failed a sanity check: the perturbation size is NaN; \
                 2 input value(s) are NaN or infinite",
            ),
            (
                Warning::ZeroGradient { label, samples: 3 },
                "pgd/single:segment_semantic/linf/eps=8: 3 sample(s) had an all-zero input gradient; the attack cannot move them",
            ),
            (Warning::Other("something a later version said".into()), "something a later version said"),
        ];
        for (w, text) in cases {
            assert_eq!(w.to_string(), text);
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap(), "stored as its text");
            assert_eq!(serde_json::from_str::<Warning>(&json).unwrap(), w);
        }
    }
}
