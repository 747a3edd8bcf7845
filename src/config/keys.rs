//! The config file's keys: the ones upstream reads, and warnings for the rest.

use super::ConfigFile;

/// Every key upstream reads from the config file, lower-cased and dotted. The client
/// keys (`token`, `verify`) are here too: one file may serve client and server.
pub const KNOWN_KEYS: &[&str] = &[
    "clusterid",
    "log-verbosity",
    "feature-gates",
    // token
    "region",
    "role",
    "externalid",
    "sessionname",
    "tokenonly",
    "forwardsessionname",
    "cache",
    // verify
    "token",
    "output",
    "partition",
    // server and init
    "server.partition",
    "server.port",
    "server.address",
    "server.hostname",
    "server.statedir",
    "server.generatekubeconfig",
    "server.kubeconfigpregenerated",
    "server.kubeconfig",
    "server.master",
    "server.backendmode",
    "server.ec2describeinstancesqps",
    "server.ec2describeinstancesburst",
    "server.ec2describeinstancesrolearn",
    "server.sourcearn",
    "server.scrubbedaccounts",
    "server.maproles",
    "server.mapusers",
    "server.mapaccounts",
    "server.reservedprefixconfig",
    "server.dynamicfilepath",
    "server.dynamicfileuseridstrict",
    "server.dynamicbackendmodepath",
    // ours
    "server.denywithforbidden",
    "server.readheadertimeout",
    "server.idletimeout",
    "server.requesttimeout",
    "server.maxconnections",
    "server.maxconnectionsperclient",
];

/// Warnings about `file`'s keys, naming the file and the key: keys nobody reads, and
/// `feature-gates`, which is read from the command line only.
pub fn warnings(file: &ConfigFile) -> Vec<String> {
    let path = file.path().display();
    let mut warnings = Vec::new();
    for key in file.keys() {
        // A key may have been written as a nested mapping where a leaf is known
        // (`server.mapRoles: {…}`): its value error is reported when read.
        if file.get(&key).is_some()
            && !KNOWN_KEYS.contains(&key.as_str())
            && !KNOWN_KEYS.iter().any(|k| key.starts_with(&format!("{k}.")))
        {
            warnings.push(format!(
                "configuration file \"{path}\": unknown key {key:?} is ignored"
            ));
        }
    }
    // upstream: cmd/aws-iam-authenticator/root.go binds `feature-gates` in viper but
    // reads only the flag; we keep that, with a warning so the operator knows.
    if file.get("feature-gates").is_some() {
        warnings.push(format!(
            "configuration file \"{path}\": key \"feature-gates\" is read from the command line only; the file's value is ignored"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn unknown_keys_and_feature_gates_are_named() {
        let file = ConfigFile::parse(
            Path::new("/c.yaml"),
            "clusterID: c\nfeature-gates: SSORoleMatch=true\nserver:\n  prot: 1\n  mapRoles:\n    rolearn: x\n",
        )
        .unwrap();
        assert_eq!(
            warnings(&file),
            [
                "configuration file \"/c.yaml\": unknown key \"server.prot\" is ignored",
                "configuration file \"/c.yaml\": key \"feature-gates\" is read from the command line only; the file's value is ignored",
            ]
        );
    }
}
