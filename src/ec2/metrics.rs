//! The EC2 lookup's metric: upstream's `ec2_describe_instances_calls_total`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The EC2 lookup's metric handles; cheap to clone. `Default` gives handles registered
/// nowhere.
#[derive(Debug, Clone, Default)]
pub struct Ec2Metrics {
    calls: Counter,
}

impl Ec2Metrics {
    /// Registers `ec2_describe_instances_calls_total` on `registry` (the prefixed one,
    /// see [`crate::metrics::prefixed`]).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "ec2_describe_instances_calls",
            "Number of EC2 describe instances calls.",
            m.calls.clone(),
        );
        m
    }

    /// One `DescribeInstances` call is about to be sent.
    pub fn called(&self) {
        self.calls.inc();
    }

    /// Calls so far.
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{encode, prefixed, registry, sample};

    #[test]
    fn name_and_exact_value() {
        let mut root = registry();
        let m = Ec2Metrics::register(prefixed(&mut root));
        m.called();
        m.called();
        let text = encode(&root);
        let name = "aws_iam_authenticator_ec2_describe_instances_calls_total";
        assert_eq!(sample(&text, name, ""), Some(2.0), "{text}");
    }
}
