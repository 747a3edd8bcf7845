//! The whole Talos node story on one machine, as the README tells it: the extension
//! service's `talos-init` runs with the README's `ExtensionServiceConfig` against a
//! temporary directory standing in for the host's `/var/lib/aws-iam-authenticator`; the
//! server starts with exactly the DaemonSet's arguments (its mount path rewritten to that
//! directory) as the DaemonSet's uid; its probes answer; and a TokenReview sent as
//! kube-apiserver sends it, with the CA and URL of the generated `kubeconfig.yaml`, is
//! allowed. Only STS is redirected, to the local emulator, and the health port to
//! loopback.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on setup failure by design

mod common;

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use common::docs::{daemonset, readme_extension_service_config};
use common::http::plain_get;
use common::process::{BinaryForAnyUser, Running, free_port, is_root, traversable_tempdir};
use common::sts_emulator::{Identity, StsEmulator};
use common::{ACCESS_KEY_ID, CLUSTER_ID, REGION, SECRET_ACCESS_KEY, STS_HOST, TestEnv, bin};

/// The identity the README's mapping is for: its role, assumed with session `alice`.
const ACCOUNT: &str = "111122223333";
const ASSUMED_ARN: &str = "arn:aws:sts::111122223333:assumed-role/KubernetesAdmin/alice";
const ROLE_ID: &str = "AROAEXAMPLEKUBEADMIN";

/// POSTs a TokenReview as kube-apiserver does: to the kubeconfig's URL, trusting only
/// the kubeconfig's CA.
async fn token_review(kubeconfig: &Path, token: &str) -> Value {
    let v: Value = serde_saphyr::from_str(&fs::read_to_string(kubeconfig).unwrap()).unwrap();
    let cluster = &v["clusters"][0]["cluster"];
    let url: http::Uri = cluster["server"].as_str().unwrap().parse().unwrap();
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(
        aws_iam_authenticator::tls::pinned_client_config(std::str::from_utf8(&ca).unwrap())
            .unwrap(),
    );
    let host = url.host().unwrap().to_owned();
    let mut last = None;
    for addr in tokio::net::lookup_host((host.as_str(), url.port_u16().unwrap()))
        .await
        .unwrap()
    {
        let tcp = match tokio::net::TcpStream::connect(addr).await {
            Ok(t) => t,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let name = rustls_pki_types::ServerName::try_from(host.clone()).unwrap();
        let stream = tls.connect(name, tcp).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {"creationTimestamp": null},
            "spec": {"token": token},
            "status": {"user": {}}
        });
        let req = Request::post(url.path())
            .header("host", url.authority().unwrap().as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        return serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    }
    panic!("could not connect to {url}: {last:?}");
}

#[tokio::test]
async fn talos_init_then_the_daemonset_server_allows_a_token_review() {
    common::install_crypto_provider();
    // A world-traversable root (as bind mounts make the host's parents irrelevant), the
    // host directory inside it as Talos creates a missing mount source: 0700.
    let root = traversable_tempdir();
    let host_dir = root.path().join("var-lib-aws-iam-authenticator");
    fs::create_dir(&host_dir).unwrap();
    fs::set_permissions(&host_dir, fs::Permissions::from_mode(0o700)).unwrap();

    let sts = StsEmulator::start_with(Some(&root.path().join("sts-ca.pem")), 0).unwrap();
    sts.add_identity(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Identity::new(ASSUMED_ARN, ACCOUNT, format!("{ROLE_ID}:alice")),
    );

    // 1. The extension service: the README's ExtensionServiceConfig, its config file
    //    where Talos would mount it; only the port differs from the README (a free one
    //    instead of 21362).
    let esc = readme_extension_service_config();
    let port = free_port();
    let mut config: Value =
        serde_saphyr::from_str(esc["configFiles"][0]["content"].as_str().unwrap()).unwrap();
    config["server"]["port"] = json!(port);
    let config_file = root.path().join("config.yaml");
    fs::write(&config_file, serde_saphyr::to_string(&config).unwrap()).unwrap();
    let mut init = Command::new(bin());
    init.arg("talos-init")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("STATE_DIR", &host_dir);
    for var in esc["environment"].as_array().unwrap() {
        let (k, v) = var.as_str().unwrap().split_once('=').unwrap();
        if k == "CONFIG_FILE" {
            init.env(k, &config_file);
        } else {
            init.env(k, v);
        }
    }
    let pod = daemonset();
    let (args, mount) = (pod.args, pod.mount_path);
    let (uid, gid) = if is_root() {
        // talos-init's default KEY_OWNER must be the DaemonSet's user.
        (pod.uid, pod.gid)
    } else {
        // Without root the key cannot be given away: keep it, and run the server as us.
        let (u, g) = (nix::unistd::getuid(), nix::unistd::getgid());
        init.env("KEY_OWNER", format!("{u}:{g}"));
        (u.as_raw(), g.as_raw())
    };
    let out = init.output().unwrap();
    assert!(out.status.success(), "{}", common::describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "executing: /usr/local/bin/aws-iam-authenticator [init -i={CLUSTER_ID} "
        )),
        "{}",
        common::describe(&out)
    );

    // 2. The DaemonSet's server, exactly its args with the mount path rewritten, as its
    //    uid, with nothing writable for it.
    let host = host_dir.to_str().unwrap();
    let args: Vec<String> = args.iter().map(|a| a.replace(&mount, host)).collect();
    assert!(args.iter().all(|a| !a.contains(&mount)));
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The server's binary as its pod sees it: in an image any uid can read, not in
    // the build tree.
    let image = BinaryForAnyUser::install();
    let mut server = Command::new(image.path());
    server
        .args(&args)
        .arg("--sts-resolve")
        .arg(sts.resolve_arg(STS_HOST))
        .arg("--sts-ca-file")
        .arg(sts.ca_file())
        .arg(format!("--health-address={health}"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        // Only loopback traffic: no instance metadata lookups.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .current_dir(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if is_root() {
        server.uid(uid).gid(gid);
    }
    let before: Vec<_> = fs::read_dir(&host_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut server = Running::spawn(server);

    // 3. The readiness probe turns ready (bounded), and the liveness probe answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!(
                "server exited ({status}) before it was ready:\n{}",
                server.log_text()
            );
        }
        if let Some((StatusCode::OK, _)) = plain_get(health, "/readyz").await {
            break;
        }
        assert!(Instant::now() < deadline, "server not ready after 20 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        plain_get(health, "/healthz").await,
        Some((StatusCode::OK, "ok".to_owned()))
    );

    // 4. kube-apiserver's TokenReview with a token minted by `token`: allowed, mapped as
    //    the README's mapping says.
    let mut client = TestEnv::new();
    client.set("AWS_REGION", REGION);
    let out = client.run(&["token", "-i", CLUSTER_ID, "--token-only"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let kubeconfig = host_dir.join("kubeconfig.yaml");
    let review = token_review(&kubeconfig, &token).await;
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    let user = &review["status"]["user"];
    assert_eq!(user["username"], "kubernetes-admin:alice", "{review}");
    assert_eq!(user["groups"], json!(["system:masters"]), "{review}");
    assert_eq!(user["extra"]["arn"], json!([ASSUMED_ARN]));

    // A token of a key STS does not know is denied.
    client.set("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNEXAMPLE00");
    let out = client.run(&["token", "-i", CLUSTER_ID, "--token-only"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let stranger = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let review = token_review(&kubeconfig, &stranger).await;
    assert_eq!(review["status"]["authenticated"], false, "{review}");

    // The server changed nothing in the directory it only reads.
    let after: Vec<_> = fs::read_dir(&host_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    assert!(sts.request_count() >= 2);
}
