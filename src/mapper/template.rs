//! Username and group templates (upstream `renderTemplate` in `pkg/server/server.go`).
//!
//! Placeholders are replaced in upstream's order: `{{EC2PrivateDNSName}}` (only when
//! present: it costs an EC2 call), `{{AccountID}}`, `{{SessionName}}` (with every `@`
//! replaced by `-`, so an e-mail session name becomes a valid username segment),
//! `{{SessionNameRaw}}`, `{{AccessKeyID}}`. Unknown placeholders stay as written.

use crate::ec2::PrivateDnsLookup;
use crate::identity::Identity;

/// The placeholder that needs an EC2 lookup.
pub const EC2_PRIVATE_DNS_NAME: &str = "{{EC2PrivateDNSName}}";

/// Why a template could not be rendered. `Display` is upstream's text where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The session name is not an EC2 instance id (`^i-(\w{8}|\w{17})$`).
    #[error("SessionName did not contain an instance id")]
    NoInstanceId,
    /// The server has no EC2 lookup configured.
    #[error("{{{{EC2PrivateDNSName}}}} is used but no EC2 private DNS lookup is configured")]
    NoLookup,
    /// The EC2 lookup failed (its message).
    #[error("{0}")]
    Lookup(String),
}

/// Go's `\w`: ASCII letters, digits and `_`.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `session` matches `^i-(\w{8}|\w{17})$`, the shape of an EC2 instance id.
pub fn is_instance_id(session: &str) -> bool {
    session
        .strip_prefix("i-")
        .is_some_and(|rest| (rest.len() == 8 || rest.len() == 17) && rest.chars().all(is_word))
}

/// Renders `template` for `identity`.
pub async fn render(
    template: &str,
    identity: &Identity,
    lookup: Option<&dyn PrivateDnsLookup>,
) -> Result<String, RenderError> {
    // Most templates are plain names (`system:masters`): nothing to replace, one copy
    // instead of one per placeholder.
    if !template.contains("{{") {
        return Ok(template.to_owned());
    }
    let mut out = template.to_owned();
    if out.contains(EC2_PRIVATE_DNS_NAME) {
        if !is_instance_id(&identity.session_name) {
            return Err(RenderError::NoInstanceId);
        }
        let lookup = lookup.ok_or(RenderError::NoLookup)?;
        let name = lookup
            .private_dns_name(&identity.session_name)
            .await
            .map_err(RenderError::Lookup)?;
        out = out.replace(EC2_PRIVATE_DNS_NAME, &name);
    }
    Ok(render_static(&out, identity))
}

/// The placeholders that need no I/O, in upstream's order.
pub fn render_static(template: &str, identity: &Identity) -> String {
    if !template.contains("{{") {
        return template.to_owned();
    }
    template
        .replace("{{AccountID}}", &identity.account_id)
        .replace("{{SessionName}}", &identity.session_name.replace('@', "-"))
        .replace("{{SessionNameRaw}}", &identity.session_name)
        .replace("{{AccessKeyID}}", &identity.access_key_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::BoxFuture;

    #[derive(Debug)]
    struct FakeDns;

    impl PrivateDnsLookup for FakeDns {
        fn private_dns_name<'a>(
            &'a self,
            instance_id: &'a str,
        ) -> BoxFuture<'a, Result<String, String>> {
            Box::pin(async move {
                if instance_id == "i-0123456789abcdef0" {
                    Ok("ip-10-0-0-1.ec2.internal".to_owned())
                } else {
                    Err(format!("failed to find node {instance_id} "))
                }
            })
        }
    }

    fn identity(session: &str) -> Identity {
        Identity {
            account_id: "123456789012".into(),
            session_name: session.into(),
            access_key_id: "ASIAEXAMPLE".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn placeholders() {
        let id = identity("alice@example.com");
        let cases = [
            ("admin:{{SessionName}}", "admin:alice-example.com"),
            ("{{SessionNameRaw}}", "alice@example.com"),
            ("{{AccountID}}:{{AccessKeyID}}", "123456789012:ASIAEXAMPLE"),
            ("{{Unknown}}-x", "{{Unknown}}-x"),
            ("plain", "plain"),
            ("{AccountID} }}", "{AccountID} }}"),
            (
                "{{SessionName}}{{SessionName}}",
                "alice-example.comalice-example.com",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(render(t, &id, None).await.unwrap(), want, "{t}");
            assert_eq!(render_static(t, &id), want, "{t}");
        }
    }

    #[tokio::test]
    async fn ec2_private_dns_name() {
        let dns = FakeDns;
        let got = render(
            "system:node:{{EC2PrivateDNSName}}",
            &identity("i-0123456789abcdef0"),
            Some(&dns),
        )
        .await
        .unwrap();
        assert_eq!(got, "system:node:ip-10-0-0-1.ec2.internal");
        assert_eq!(
            render("{{EC2PrivateDNSName}}", &identity("alice"), Some(&dns))
                .await
                .unwrap_err()
                .to_string(),
            "SessionName did not contain an instance id"
        );
        assert_eq!(
            render("{{EC2PrivateDNSName}}", &identity("i-01234567"), Some(&dns))
                .await
                .unwrap_err(),
            RenderError::Lookup("failed to find node i-01234567 ".into())
        );
        assert_eq!(
            render(
                "{{EC2PrivateDNSName}}",
                &identity("i-0123456789abcdef0"),
                None
            )
            .await
            .unwrap_err(),
            RenderError::NoLookup
        );
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-01234567"));
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(!is_instance_id("i-0123456"));
        assert!(!is_instance_id("i-0123456789"));
        assert!(!is_instance_id("x-01234567"));
        assert!(!is_instance_id("i-0123456-"));
    }
}
