//! Validated settings as the `init` and `server` command lines.

use super::{CONFIG_FILE, KUBECONFIG_FILE, STATE_DIR_MODE, Settings};
use crate::logging::LogFormat;

impl Settings {
    /// The `init` arguments (without the program name).
    pub fn init_args(&self) -> Vec<String> {
        let dir = self.state_dir.display();
        let mut args = vec![
            "init".to_owned(),
            format!("-i={}", self.cluster_id),
            format!("--hostname={}", self.hostname),
            format!("--address={}", self.address),
        ];
        if let Some(c) = &self.config_file {
            args.push(format!("--config={}", c.display()));
        }
        let owner = match self.key_owner.gid {
            Some(g) => format!("{}:{g}", self.key_owner.uid),
            None => self.key_owner.uid.to_string(),
        };
        args.extend([
            format!("--state-dir={dir}"),
            format!("--generate-kubeconfig={dir}/{KUBECONFIG_FILE}"),
            format!("--write-config={dir}/{CONFIG_FILE}"),
            format!("--key-owner={owner}"),
            format!("--state-dir-mode={STATE_DIR_MODE:o}"),
            self.log_format_arg(),
        ]);
        args
    }

    /// With `SERVE=true`, the `server` arguments (without the program name): the state
    /// dir `init` just filled, its `config.yaml` (`CONFIG_FILE`'s validated copy, with
    /// the cluster ID and listen address `init` used) and the kubeconfig `init` wrote,
    /// which the server only checks against the key pair.
    pub fn server_args(&self) -> Option<Vec<String>> {
        let serve = self.serve.as_ref()?;
        let dir = self.state_dir.display();
        let mut args = vec![
            "server".to_owned(),
            format!("--config={dir}/{CONFIG_FILE}"),
            format!("--state-dir={dir}"),
            format!("--generate-kubeconfig={dir}/{KUBECONFIG_FILE}"),
            "--kubeconfig-pregenerated=true".to_owned(),
        ];
        if let Some(h) = serve.health_address {
            args.push(format!("--health-address={h}"));
        }
        for r in &serve.sts_resolve {
            args.push(format!("--sts-resolve={r}"));
        }
        if let Some(ca) = &serve.sts_ca_file {
            args.push(format!("--sts-ca-file={}", ca.display()));
        }
        args.push(self.log_format_arg());
        Some(args)
    }

    fn log_format_arg(&self) -> String {
        format!(
            "--log-format={}",
            match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        )
    }
}
