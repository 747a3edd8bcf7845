use super::*;

fn env(vars: &[(&str, &str)]) -> ProxyEnv {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ProxyEnv::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// The proxy (without credentials) `url` goes through, if any.
fn route(vars: &[(&str, &str)], url: &str) -> Option<String> {
    let proxies = env(vars).proxies().unwrap()?;
    let dst: Uri = url.parse().unwrap();
    proxies.for_target(&dst).map(|i| i.uri().to_string())
}

const STS: &str = "https://sts.us-west-2.amazonaws.com/";
const PROXY: &str = "http://proxy.example:3128/";

/// Variables, a target URL, the proxy it goes through.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);

#[test]
fn which_variable_applies() {
    let table: &[Case<'_>] = &[
        (&[], STS, None),
        (
            &[("HTTPS_PROXY", "http://proxy.example:3128")],
            STS,
            Some(PROXY),
        ),
        (
            &[("https_proxy", "http://proxy.example:3128")],
            STS,
            Some(PROXY),
        ),
        // A bare host:port is an http:// proxy.
        (&[("HTTPS_PROXY", "proxy.example:3128")], STS, Some(PROXY)),
        // No port: the scheme's.
        (
            &[("HTTPS_PROXY", "http://proxy.example")],
            STS,
            Some("http://proxy.example/"),
        ),
        // Upper case wins; an empty value counts as unset.
        (
            &[
                ("HTTPS_PROXY", "http://upper:1"),
                ("https_proxy", "http://lower:2"),
            ],
            STS,
            Some("http://upper:1/"),
        ),
        (
            &[("HTTPS_PROXY", " "), ("https_proxy", "http://lower:2")],
            STS,
            Some("http://lower:2/"),
        ),
        // HTTP_PROXY is for http:// targets only.
        (&[("HTTP_PROXY", "http://proxy.example:3128")], STS, None),
        (
            &[("HTTP_PROXY", "http://proxy.example:3128")],
            "http://ec2.example/",
            Some(PROXY),
        ),
        // ALL_PROXY is the fallback for both.
        (
            &[("all_proxy", "http://proxy.example:3128")],
            STS,
            Some(PROXY),
        ),
        (
            &[
                ("ALL_PROXY", "http://all:1"),
                ("HTTPS_PROXY", "http://https:2"),
            ],
            STS,
            Some("http://https:2/"),
        ),
        // Loopback targets never go through a proxy.
        (
            &[("HTTPS_PROXY", "http://p:1")],
            "https://127.0.0.1:8443/",
            None,
        ),
        (
            &[("HTTPS_PROXY", "http://p:1")],
            "https://[::1]:8443/",
            None,
        ),
        (&[("HTTPS_PROXY", "http://p:1")], "https://LOCALHOST/", None),
    ];
    for (vars, url, want) in table {
        assert_eq!(route(vars, url).as_deref(), *want, "{vars:?} {url}");
    }
}

#[test]
fn no_proxy_rules() {
    let table = [
        // Domains match themselves and their subdomains, with or without a leading dot,
        // in any case, never a mere suffix of a label.
        ("amazonaws.com", STS, true),
        (".amazonaws.com", STS, true),
        ("STS.us-west-2.amazonaws.com", STS, true),
        (
            "sts.us-west-2.amazonaws.com",
            "https://sts.us-east-1.amazonaws.com/",
            false,
        ),
        ("ws.com", STS, false),
        ("other.example, amazonaws.com", STS, true),
        ("*", STS, true),
        ("", STS, false),
        // Addresses and networks, IPv4 and IPv6.
        ("10.1.2.3", "https://10.1.2.3/", true),
        ("10.0.0.0/8", "https://10.1.2.3/", true),
        ("10.0.0.0/8", "https://11.1.2.3/", false),
        ("fd00::/8", "https://[fd00::1]/", true),
        // A name is not its address.
        ("10.0.0.0/8", STS, false),
    ];
    for (no, url, bypass) in table {
        for var in ["NO_PROXY", "no_proxy"] {
            let got = route(&[("HTTPS_PROXY", "http://p:1"), (var, no)], url);
            assert_eq!(got.is_none(), bypass, "{var}={no:?} {url}");
        }
    }
}

#[test]
fn credentials_become_basic_auth_and_stay_out_of_logs_and_errors() {
    let proxies = env(&[("HTTPS_PROXY", "http://us%40er:p%3Ass@proxy.example:3128")])
        .proxies()
        .unwrap()
        .unwrap();
    let intercept = proxies.for_target(&STS.parse().unwrap()).unwrap();
    assert_eq!(intercept.uri().to_string(), PROXY);
    // base64("us@er:p:ss")
    assert_eq!(intercept.basic_auth().unwrap(), "Basic dXNAZXI6cDpzcw==");
    let shown = format!("{proxies:?}");
    assert!(
        shown.contains("proxy.example:3128") && !shown.contains("p%3Ass"),
        "{shown}"
    );
    let e = env(&[("HTTPS_PROXY", "socks5://user:secret@proxy.example:1080")]);
    assert!(!format!("{e:?}").contains("secret"));
    let e = e.proxies().unwrap_err().to_string();
    assert!(!e.contains("secret"), "{e}");
}

#[test]
fn unusable_values_name_their_variable() {
    let table = [
        (
            "HTTPS_PROXY",
            "socks5://proxy.example:1080",
            "HTTPS_PROXY: only http:// proxies are supported, not socks5://",
        ),
        (
            "https_proxy",
            "https://proxy.example:443",
            "https_proxy: only http:// proxies are supported, not https://",
        ),
        (
            "ALL_PROXY",
            "ftp://proxy.example",
            "ALL_PROXY: not a proxy URL",
        ),
        (
            "HTTP_PROXY",
            "http://bad host:1",
            "HTTP_PROXY: not a proxy URL",
        ),
    ];
    for (var, value, want) in table {
        let e = env(&[(var, value)]).proxies().unwrap_err().to_string();
        assert!(e.starts_with(want), "{var}={value}: {e}");
    }
    // NO_PROXY alone names no proxy.
    assert!(env(&[("NO_PROXY", "*")]).proxies().unwrap().is_none());
}
