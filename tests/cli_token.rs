//! `token` end to end: the real binary, fake keys, no network (IMDS disabled, nothing
//! but local files and processes).

// `token` (the `client` feature) mints the tokens these tests check.
#![cfg(feature = "client")]
// Test helpers outside `#[test]` functions panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sts_emulator;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A sandbox: a temp HOME with empty AWS files, so the host's never leak in.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join(".aws")).unwrap();
        fs::write(dir.path().join(".aws/config"), "").unwrap();
        fs::write(dir.path().join(".aws/credentials"), "").unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The binary with a clean environment; static keys unless `keys` is false.
    fn command(&self, keys: bool) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aws-iam-authenticator"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_CONFIG_FILE", self.path(".aws/config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path(".aws/credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-west-2");
        if keys {
            cmd.env("AWS_ACCESS_KEY_ID", AKID)
                .env("AWS_SECRET_ACCESS_KEY", SECRET);
        }
        cmd
    }

    /// An AWS config whose default profile runs a `credential_process` that appends a
    /// line to `counter` and prints session credentials expiring at `expires`.
    fn credential_process(&self, expires: SystemTime) -> PathBuf {
        let counter = self.path("process-runs");
        let script = self.path("creds.sh");
        let expiration = OffsetDateTime::from(expires).format(&Rfc3339).unwrap();
        fs::write(
            &script,
            format!(
                "#!/bin/sh\necho run >> '{}'\ncat <<'EOF'\n{{\"Version\": 1, \"AccessKeyId\": \"ASIAPROCESSEXAMPLE\", \"SecretAccessKey\": \"process-secret\", \"SessionToken\": \"process-session-token\", \"Expiration\": \"{expiration}\"}}\nEOF\n",
                counter.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(
            self.path(".aws/config"),
            format!(
                "[default]\ncredential_process = {}\nregion = us-west-2\n",
                script.display()
            ),
        )
        .unwrap();
        counter
    }
}

fn run(cmd: &mut Command) -> Output {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    // Off EC2 with IMDS disabled nothing should wait on the network.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn decode(token: &str) -> String {
    let encoded = token.strip_prefix("k8s-aws-v1.").expect(token);
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

fn exec_credential(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    let text = stdout(out);
    assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "{text:?}"
    );
    serde_json::from_str(&text).unwrap()
}

fn expiration(cred: &serde_json::Value) -> SystemTime {
    let ts = cred["status"]["expirationTimestamp"].as_str().unwrap();
    SystemTime::from(OffsetDateTime::parse(ts, &Rfc3339).unwrap())
}

#[test]
fn prints_an_exec_credential_with_a_presigned_sts_url() {
    let sb = Sandbox::new();
    let before = SystemTime::now();
    let out = run(sb.command(true).args(["token", "-i", "my-cluster"]));
    let cred = exec_credential(&out);
    let text = stdout(&out);
    assert!(
        text.starts_with(
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false},"status":{"expirationTimestamp":""#
        ),
        "{text}"
    );
    let url = decode(cred["status"]["token"].as_str().unwrap());
    let prefix = format!(
        "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={AKID}%2F"
    );
    assert!(url.starts_with(&prefix), "{url}");
    assert!(
        url.contains("%2Fus-west-2%2Fsts%2Faws4_request&X-Amz-Date="),
        "{url}"
    );
    assert!(
        url.contains("&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature="),
        "{url}"
    );
    assert!(!url.contains("X-Amz-Security-Token"), "{url}");
    // Expires 14 minutes from now (whole seconds).
    let exp = expiration(&cred);
    let lo = before + Duration::from_secs(14 * 60 - 1);
    let hi = SystemTime::now() + Duration::from_secs(14 * 60 + 1);
    assert!(exp >= lo && exp <= hi, "{exp:?}");
}

#[test]
fn token_only_prints_just_the_token() {
    let sb = Sandbox::new();
    let out = run(sb
        .command(true)
        .args(["token", "-i", "my-cluster", "--token-only"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let token = text.strip_suffix('\n').unwrap();
    assert!(!token.contains('\n'));
    assert!(
        decode(token).starts_with("https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity")
    );
}

#[test]
fn session_credentials_put_the_security_token_in_the_url() {
    let sb = Sandbox::new();
    let out = run(sb
        .command(true)
        .env("AWS_SESSION_TOKEN", "session/token+value=")
        .args(["token", "-i", "c", "--token-only"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let url = decode(stdout(&out).trim_end());
    assert!(
        url.contains(
            "&X-Amz-Expires=60&X-Amz-Security-Token=session%2Ftoken%2Bvalue%3D&X-Amz-SignedHeaders="
        ),
        "{url}"
    );
}

#[test]
fn answers_v1_when_kubectl_asks_for_it() {
    let sb = Sandbox::new();
    let out = run(sb
        .command(true)
        .env(
            "KUBERNETES_EXEC_INFO",
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
        )
        .args(["token", "-i", "c"]));
    let cred = exec_credential(&out);
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1");

    let out = run(sb
        .command(true)
        .env("KUBERNETES_EXEC_INFO", r#"{"apiVersion":"example.com/v7"}"#)
        .args(["token", "-i", "c"]));
    let cred = exec_credential(&out);
    assert_eq!(cred["apiVersion"], "client.authentication.k8s.io/v1beta1");
}

#[test]
fn region_flag_fips_and_dual_stack_select_the_host() {
    let sb = Sandbox::new();
    let host = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = sb.command(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = run(cmd.args(["token", "-i", "c", "--token-only"]).args(args));
        assert!(out.status.success(), "{}", stderr(&out));
        let url = decode(stdout(&out).trim_end());
        url.split('/').nth(2).unwrap().to_owned()
    };
    assert_eq!(
        host(&[], &["--region", "eu-west-1"]),
        "sts.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        host(&[("AWS_USE_FIPS_ENDPOINT", "true")], &[]),
        "sts-fips.us-west-2.amazonaws.com"
    );
    assert_eq!(
        host(
            &[("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            &["--region", "cn-north-1"]
        ),
        "sts.cn-north-1.api.amazonwebservices.com.cn"
    );
    assert_eq!(host(&[], &["--region", "aws-global"]), "sts.amazonaws.com");
}

#[test]
fn no_region_anywhere_defaults_to_us_east_1() {
    let sb = Sandbox::new();
    let out =
        run(sb
            .command(true)
            .env_remove("AWS_REGION")
            .args(["token", "-i", "c", "--token-only"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let url = decode(stdout(&out).trim_end());
    assert!(
        url.starts_with("https://sts.us-east-1.amazonaws.com/"),
        "{url}"
    );
    assert!(
        stderr(&out).contains(
            "failed to get region from IMDS for token generation, defaulting to us-east-1. imds error:"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cluster_id_from_environment_and_config_file() {
    let sb = Sandbox::new();
    let out = run(sb
        .command(true)
        .env("KUBERNETES_AWS_AUTHENTICATOR_CLUSTER_ID", "env-cluster")
        .args(["token"]));
    exec_credential(&out);

    let config = sb.path("authenticator.yaml");
    fs::write(
        &config,
        "clusterID: file-cluster\ntokenOnly: true\nregion: ap-south-1\n",
    )
    .unwrap();
    let out = run(sb.command(true).args(["token", "-c"]).arg(&config));
    assert!(out.status.success(), "{}", stderr(&out));
    let url = decode(stdout(&out).trim_end());
    assert!(
        url.starts_with("https://sts.ap-south-1.amazonaws.com/"),
        "{url}"
    );

    // An explicit flag beats the file, in both directions.
    let out = run(sb
        .command(true)
        .args([
            "token",
            "--token-only=false",
            "--region",
            "eu-west-1",
            "-i",
            "flag-cluster",
            "-c",
        ])
        .arg(&config));
    let cred = exec_credential(&out);
    let url = decode(cred["status"]["token"].as_str().unwrap());
    assert!(
        url.starts_with("https://sts.eu-west-1.amazonaws.com/"),
        "{url}"
    );
}

fn assert_usage_error(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert_eq!(stdout(out), "");
    assert!(stderr(out).contains(message), "{}", stderr(out));
}

#[test]
fn missing_cluster_id_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = run(sb.command(true).arg("token"));
    assert_usage_error(&out, "Error: cluster ID not specified");
    assert!(stderr(&out).contains("Usage:"), "{}", stderr(&out));
}

#[test]
fn both_session_flags_are_a_usage_error() {
    let sb = Sandbox::new();
    let out = run(sb.command(true).args([
        "token",
        "-i",
        "c",
        "-r",
        "arn:aws:iam::123456789012:role/x",
        "--forward-session-name",
        "-s",
        "me",
    ]));
    assert_usage_error(
        &out,
        "Error: cannot specify both --forward-session-name and --session-name parameter",
    );
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = run(sb.command(true).args(["token", "-i", "c", "--bogus"]));
    assert_usage_error(&out, "--bogus");
}

#[test]
fn no_credentials_is_a_token_error() {
    let sb = Sandbox::new();
    let out = run(sb.command(false).args(["token", "-i", "c"]));
    assert_usage_error(&out, "could not get token: ");
}

#[test]
fn expiry_is_capped_by_the_credentials() {
    let sb = Sandbox::new();
    let expires = SystemTime::now() + Duration::from_secs(5 * 60 + 30);
    sb.credential_process(expires);
    let out = run(sb.command(false).args(["token", "-i", "c"]));
    let cred = exec_credential(&out);
    let exp = expiration(&cred);
    let want = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let got = exp
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(got, want);
    let url = decode(cred["status"]["token"].as_str().unwrap());
    assert!(
        url.contains("X-Amz-Credential=ASIAPROCESSEXAMPLE%2F"),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-Security-Token=process-session-token"),
        "{url}"
    );
}

#[test]
fn cache_stores_expiring_credentials_and_reuses_them() {
    let sb = Sandbox::new();
    let counter = sb.credential_process(SystemTime::now() + Duration::from_secs(3600));
    let cache = sb.path(".kube/cache/aws-iam-authenticator/credentials.yaml");

    let out = run(sb.command(false).args(["token", "-i", "c1", "--cache"]));
    let first = exec_credential(&out);
    assert!(
        stderr(&out).contains(&format!("Cache file {} does not exist.", cache.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&counter).unwrap().lines().count(), 1);
    let mode = fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(cache.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let text = fs::read_to_string(&cache).unwrap();
    for line in [
        "clusters:\n",
        "\n  c1:\n    default:\n      \"\":\n        accesskeyid: ASIAPROCESSEXAMPLE\n",
        "\n        secretaccesskey: process-secret\n",
        "\n        sessiontoken: process-session-token\n",
        "\n        canexpire: true\n",
        "\n        expires: ",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }

    // The second run serves the cached credentials: the process does not run again.
    let out = run(sb.command(false).args(["token", "-i", "c1", "--cache"]));
    let second = exec_credential(&out);
    assert_eq!(fs::read_to_string(&counter).unwrap().lines().count(), 1);
    let url = decode(second["status"]["token"].as_str().unwrap());
    assert!(
        url.contains("X-Amz-Credential=ASIAPROCESSEXAMPLE%2F"),
        "{url}"
    );
    assert!(
        url.contains("X-Amz-Security-Token=process-session-token"),
        "{url}"
    );
    assert!(first["status"]["token"].is_string());

    // The cache is keyed by cluster: another cluster runs the process again.
    let out = run(sb.command(false).args(["token", "-i", "c2", "--cache"]));
    exec_credential(&out);
    assert_eq!(fs::read_to_string(&counter).unwrap().lines().count(), 2);

    // Via the config file and a custom location.
    let custom = sb.path("elsewhere/creds.yaml");
    let config = sb.path("authenticator.yaml");
    fs::write(&config, "clusterID: c3\ncache: true\n").unwrap();
    let out = run(sb
        .command(false)
        .env("AWS_IAM_AUTHENTICATOR_CACHE_FILE", &custom)
        .args(["token", "-c"])
        .arg(&config));
    exec_credential(&out);
    assert!(fs::read_to_string(&custom).unwrap().contains("\n  c3:\n"));
}

#[test]
fn cache_refuses_a_file_others_can_read() {
    let sb = Sandbox::new();
    let cache = sb.path("shared.yaml");
    fs::write(&cache, "clusters: {}\n").unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(sb
        .command(true)
        .env("AWS_IAM_AUTHENTICATOR_CACHE_FILE", &cache)
        .args(["token", "-i", "c", "--cache"]));
    exec_credential(&out);
    assert!(
        stderr(&out).contains(&format!(
            "unable to use cache: cache file {} is not private\n",
            cache.display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&cache).unwrap(), "clusters: {}\n");
}

#[test]
fn cache_warns_about_static_credentials() {
    let sb = Sandbox::new();
    let out = run(sb.command(true).args(["token", "-i", "c", "--cache"]));
    exec_credential(&out);
    assert!(
        stderr(&out).contains("Unable to cache credential: credential doesn't support expiration"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&sb.path(".kube/cache/aws-iam-authenticator/credentials.yaml")).exists());
}

/// A minimal plain-HTTP STS on loopback for the calls `token` itself makes
/// (`AssumeRole`, `GetCallerIdentity`): records each request and answers in STS's XML.
struct FakeSts {
    port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeSts {
    fn start(expiration: SystemTime) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let expiration = OffsetDateTime::from(expiration).format(&Rfc3339).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let body = String::from_utf8(body).unwrap();
                let answer = if body.contains("Action=AssumeRole") {
                    format!(
                        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIAROLEEXAMPLE</AccessKeyId><SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-session-token</SessionToken><Expiration>{expiration}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAROLE:s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/admin/s</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleResponse>"
                    )
                } else {
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/federated/alice@example.com</Arn><UserId>AROAFEDERATED:alice@example.com</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></GetCallerIdentityResponse>".to_owned()
                };
                recorded.lock().unwrap().push(format!("{head}{body}"));
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Self { port, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

#[test]
fn role_is_assumed_with_external_id_and_session_name() {
    let sb = Sandbox::new();
    let sts = FakeSts::start(SystemTime::now() + Duration::from_secs(3600));
    let out = run(sb
        .command(true)
        .env("AWS_ENDPOINT_URL_STS", sts.endpoint())
        .args([
            "token",
            "-i",
            "c",
            "-r",
            "arn:aws:iam::123456789012:role/admin",
            "-e",
            "ext-123",
            "-s",
            "my-session",
        ]));
    let cred = exec_credential(&out);
    let requests = sts.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let assume = &requests[0];
    for part in [
        "Action=AssumeRole",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fadmin",
        "ExternalId=ext-123",
        "RoleSessionName=my-session",
        // Upstream's session length (aws-sdk-go-v2 stscreds' DefaultDuration), not STS's hour.
        "DurationSeconds=900",
        &format!("Credential={AKID}/"),
    ] {
        assert!(assume.contains(part), "{part} not in {assume}");
    }
    // The token is signed with the role's credentials, for the overridden endpoint.
    let url = decode(cred["status"]["token"].as_str().unwrap());
    let prefix = format!(
        "https://127.0.0.1:{}/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAROLEEXAMPLE%2F",
        sts.port
    );
    assert!(url.starts_with(&prefix), "{url}");
    assert!(
        url.contains("X-Amz-Security-Token=role-session-token"),
        "{url}"
    );
}

#[test]
fn role_from_environment_with_forwarded_session_name() {
    let sb = Sandbox::new();
    let expires = SystemTime::now() + Duration::from_secs(7 * 60);
    let sts = FakeSts::start(expires);
    let out = run(sb
        .command(true)
        .env("AWS_ENDPOINT_URL_STS", sts.endpoint())
        .env("DEFAULT_ROLE", "arn:aws:iam::123456789012:role/env-role")
        .args(["token", "-i", "c", "--forward-session-name"]));
    let cred = exec_credential(&out);
    let requests = sts.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[0].contains("Action=GetCallerIdentity"),
        "{}",
        requests[0]
    );
    let assume = &requests[1];
    assert!(
        assume.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fenv-role"),
        "{assume}"
    );
    assert!(
        assume.contains("RoleSessionName=alice%40example.com"),
        "{assume}"
    );
    assert!(!assume.contains("ExternalId"), "{assume}");
    // The assumed credentials expire in 7 minutes, so the token does too.
    let want = expires
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let got = expiration(&cred)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(got, want);
}

#[test]
fn default_session_name_when_none_is_given() {
    let sb = Sandbox::new();
    let sts = FakeSts::start(SystemTime::now() + Duration::from_secs(3600));
    let out = run(sb
        .command(true)
        .env("AWS_ENDPOINT_URL_STS", sts.endpoint())
        .args([
            "token",
            "-i",
            "c",
            "-r",
            "arn:aws:iam::123456789012:role/admin",
        ]));
    exec_credential(&out);
    let requests = sts.requests();
    assert!(
        requests[0].contains("RoleSessionName=aws-iam-authenticator-"),
        "{}",
        requests[0]
    );
}

#[test]
fn mfa_profile_prompts_on_stderr_and_the_cache_spares_the_next_prompt() {
    use std::io::Write as _;
    use std::process::Stdio;

    let sb = Sandbox::new();
    let sts = FakeSts::start(SystemTime::now() + Duration::from_secs(3600));
    fs::write(
        sb.path(".aws/config"),
        "[profile mfa]\nrole_arn = arn:aws:iam::123456789012:role/mfa-role\nmfa_serial = arn:aws:iam::123456789012:mfa/alice\nsource_profile = base\nregion = us-west-2\n",
    )
    .unwrap();
    fs::write(
        sb.path(".aws/credentials"),
        format!("[base]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let command = || {
        let mut cmd = sb.command(false);
        cmd.env("AWS_PROFILE", "mfa")
            .env("AWS_ENDPOINT_URL_STS", sts.endpoint())
            .args(["token", "-i", "c", "--cache"]);
        cmd
    };

    let mut child = command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"123456\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let cred = exec_credential(&out);
    assert!(
        stderr(&out).contains("Assume Role MFA token code: "),
        "{}",
        stderr(&out)
    );
    let requests = sts.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    for part in [
        "Action=AssumeRole",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fmfa-role",
        "SerialNumber=arn%3Aaws%3Aiam%3A%3A123456789012%3Amfa%2Falice",
        "TokenCode=123456",
        "DurationSeconds=900",
        &format!("Credential={AKID}/"),
    ] {
        assert!(requests[0].contains(part), "{part} not in {}", requests[0]);
    }
    let url = decode(cred["status"]["token"].as_str().unwrap());
    assert!(url.contains("X-Amz-Credential=ASIAROLEEXAMPLE%2F"), "{url}");

    // The next run uses the cached role credentials: no prompt, no STS call.
    let out = run(&mut command());
    let cred = exec_credential(&out);
    assert!(!stderr(&out).contains("MFA"), "{}", stderr(&out));
    assert_eq!(sts.requests().len(), 1);
    let url = decode(cred["status"]["token"].as_str().unwrap());
    assert!(url.contains("X-Amz-Credential=ASIAROLEEXAMPLE%2F"), "{url}");
    let cache =
        fs::read_to_string(sb.path(".kube/cache/aws-iam-authenticator/credentials.yaml")).unwrap();
    assert!(cache.contains("\n  c:\n    mfa:\n"), "{cache}");

    // Keys in the environment win over the profile, as in the SDK: no prompt.
    let out = run(sb
        .command(false)
        .env("AWS_PROFILE", "mfa")
        .env("AWS_ENDPOINT_URL_STS", sts.endpoint())
        .env("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .args(["token", "-i", "c"]));
    let cred = exec_credential(&out);
    assert!(!stderr(&out).contains("MFA"), "{}", stderr(&out));
    let url = decode(cred["status"]["token"].as_str().unwrap());
    assert!(url.contains("X-Amz-Credential=AKIAENVEXAMPLE%2F"), "{url}");
}

#[test]
fn role_sessions_last_upstreams_fifteen_minutes() {
    let sb = Sandbox::new();
    let sts = sts_emulator::StsEmulator::start().unwrap();
    sts.add_identity(
        AKID,
        SECRET,
        sts_emulator::Identity::new(
            "arn:aws:iam::123456789012:user/alice",
            "123456789012",
            "AIDAALICE",
        ),
    );
    let out = run(sb
        .command(true)
        .env(
            "AWS_ENDPOINT_URL_STS",
            format!("https://127.0.0.1:{}", sts.port()),
        )
        .env("SSL_CERT_FILE", sts.ca_file())
        .args([
            "token",
            "-i",
            "c",
            "-r",
            "arn:aws:iam::123456789012:role/admin",
        ]));
    let cred = exec_credential(&out);
    let requests = sts.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let assume = &requests[0];
    // The emulator checked the signature over the body and granted the role.
    assert_eq!(
        (assume.method.as_str(), assume.status),
        ("POST", 200),
        "{assume:?}"
    );
    assert_eq!(assume.access_key_id.as_deref(), Some(AKID));
    let form = sts_emulator::parse_query(&assume.body);
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(param("Action"), Some("AssumeRole"));
    assert_eq!(
        param("RoleArn"),
        Some("arn:aws:iam::123456789012:role/admin")
    );
    // Upstream's session length (aws-sdk-go-v2 stscreds' DefaultDuration), not STS's hour.
    assert_eq!(param("DurationSeconds"), Some("900"));
    // The token is signed with the emulator's temporary credentials for the role.
    let url = decode(cred["status"]["token"].as_str().unwrap());
    assert!(url.contains("X-Amz-Credential=ASIAEMULATED"), "{url}");
    assert!(
        url.contains("X-Amz-Security-Token=emulated-session-token-"),
        "{url}"
    );
}
