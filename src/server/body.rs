//! Reading a request's TokenReview: POST, a bounded body held within the body budget,
//! the first JSON value (borrowing its strings from the body).

use std::net::IpAddr;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;

use super::budget::{BodyBudget, Held};
use super::outcome::Malformed;
use super::review::TokenReviewRequest;

/// The largest request body read. A TokenReview carrying a 4 KiB token is ~4.5 KiB; the
/// rest is headroom for metadata an apiserver may add.
///
/// upstream: pkg/server/server.go reads bodies without a limit; we stop at 64 KiB and answer
/// 413 because an unbounded read lets any client exhaust memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request's body, held within the body budget until dropped.
pub(super) struct Body {
    bytes: Vec<u8>,
    _held: Held,
}

impl Body {
    /// The TokenReview in it: the first JSON value (its strings borrowed from the body).
    pub fn review(&self) -> Result<TokenReviewRequest<'_>, Malformed> {
        // Like Go's json.Decoder, read the first JSON value and ignore whatever follows.
        match serde_json::Deserializer::from_slice(&self.bytes)
            .into_iter::<TokenReviewRequest<'_>>()
            .next()
        {
            Some(Ok(r)) => Ok(r),
            _ => Err(Malformed::NotTokenReview),
        }
    }
}

/// Reads a TokenReview's body: POST, within [`MAX_BODY_BYTES`] and the body budget, not
/// empty.
pub(super) async fn read<B>(
    method: &Method,
    body: B,
    budget: &BodyBudget,
    peer: IpAddr,
) -> Result<Body, Malformed>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if method != Method::POST {
        return Err(Malformed::Method);
    }
    let mut held = budget.hold(peer);
    let bytes = collect(body, &mut held).await?;
    if bytes.is_empty() {
        return Err(Malformed::NoBody);
    }
    Ok(Body { bytes, _held: held })
}

/// Collects a body of at most [`MAX_BODY_BYTES`], each byte taken from `held` first.
///
/// The frames are copied into one buffer and dropped at once: a frame is a slice of the
/// connection's read buffer, and keeping many small ones would keep whole read buffers
/// alive, so the memory held would be more than the bytes counted.
async fn collect<B>(body: B, held: &mut Held) -> Result<Vec<u8>, Malformed>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let announced = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    if announced > MAX_BODY_BYTES {
        tracing::warn!(limit = MAX_BODY_BYTES, "request body too large");
        return Err(Malformed::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                // The client went away or broke the framing mid-body: treat it as no body.
                tracing::debug!(error = %e.into(), "could not read request body");
                return Err(Malformed::NoBody);
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let len = bytes.len() + data.len();
        if len > MAX_BODY_BYTES {
            tracing::warn!(limit = MAX_BODY_BYTES, "request body too large");
            return Err(Malformed::TooLarge);
        }
        // The buffer's capacity is what is held. It grows to the announced length, else
        // doubles (so a body in tiny frames is not copied over and over), never past the
        // limit.
        if len > bytes.capacity() {
            let want = len
                .max(announced)
                .max(bytes.capacity() * 2)
                .min(MAX_BODY_BYTES);
            if held.grow(want - bytes.capacity()).is_err() {
                tracing::warn!(
                    held = held.bytes(),
                    "request body budget spent; answering 503"
                );
                return Err(Malformed::Busy);
            }
            bytes.reserve_exact(want - bytes.len());
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}
