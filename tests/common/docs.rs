//! What the README and the example DaemonSet say, read the way a user copies them.

use serde_json::Value;

const DAEMONSET: &str = include_str!("../../example-daemonset.yaml");
const README: &str = include_str!("../../README.md");

/// The README's `ExtensionServiceConfig` (the YAML block in its Talos section that
/// declares one).
pub fn readme_extension_service_config() -> Value {
    let start = README.find("\n## Talos Linux\n").unwrap();
    README[start..]
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter_map(|b| serde_saphyr::from_str::<Value>(b).ok())
        .find(|v| v["kind"] == "ExtensionServiceConfig")
        .expect("the README has no ExtensionServiceConfig")
}

/// The example DaemonSet's server container: args, hostPath and mountPath, uid and gid.
pub struct PodSpec {
    pub args: Vec<String>,
    pub host_path: String,
    pub mount_path: String,
    pub read_only: bool,
    pub uid: u32,
    pub gid: u32,
    pub read_only_root: bool,
}

/// Reads [`PodSpec`] from `example-daemonset.yaml`.
pub fn daemonset() -> PodSpec {
    let docs: Vec<Value> = serde_saphyr::from_multiple(DAEMONSET).unwrap();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    let id = |k: &str| u32::try_from(pod["securityContext"][k].as_u64().unwrap()).unwrap();
    let c = &pod["containers"][0];
    let [mount] = c["volumeMounts"].as_array().unwrap().as_slice() else {
        panic!("one volume mount expected");
    };
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    PodSpec {
        args: c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
        host_path: volume["hostPath"]["path"].as_str().unwrap().to_owned(),
        mount_path: mount["mountPath"].as_str().unwrap().to_owned(),
        read_only: mount["readOnly"] == true,
        uid: id("runAsUser"),
        gid: id("runAsGroup"),
        read_only_root: c["securityContext"]["readOnlyRootFilesystem"] == true,
    }
}
