//! Signatures: Standard Webhooks (outbound deliveries and inbound CRM feedback) and
//! unsubscribe tokens.
//!
//! Standard Webhooks: secrets are `whsec_<base64 of the key bytes>`; the signature header is
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, several space-separated signatures
//! allowing key rotation. Verification compares in constant time and checks the timestamp
//! against a tolerance.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a Standard Webhooks signature or an unsubscribe token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The secret is not `whsec_<base64>`.
    #[error("the secret is not a Standard Webhooks secret (whsec_<base64>)")]
    BadSecret,
    /// A header is missing or malformed.
    #[error("missing or malformed signature headers")]
    BadHeaders,
    /// The timestamp is older than the tolerance allows (a replay, or a very slow delivery).
    #[error("timestamp too old (tolerance {0} s)")]
    TooOld(i64),
    /// The timestamp is further in the future than the tolerance allows.
    #[error("timestamp too far in the future (tolerance {0} s)")]
    TooNew(i64),
    /// Well-formed, but none of the `v1,` signatures (or the token's MAC) is right for the secret.
    #[error("no signature matches")]
    Mismatch,
    /// The token is malformed.
    #[error("malformed token")]
    BadToken,
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, SigningError> {
    let b64 = secret.strip_prefix("whsec_").ok_or(SigningError::BadSecret)?;
    let key = STANDARD.decode(b64).map_err(|_| SigningError::BadSecret)?;
    if key.is_empty() {
        return Err(SigningError::BadSecret);
    }
    Ok(key)
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// `v1,<base64 signature>` for a delivery: HMAC-SHA256 of `"{msg_id}.{timestamp_secs}.{body}"`
/// with the key of `secret` (`whsec_…`).
pub fn sign(secret: &str, msg_id: &str, timestamp_secs: i64, body: &str) -> Result<String, SigningError> {
    let key = secret_key(secret)?;
    let sig = mac(&key, &[msg_id.as_bytes(), b".", timestamp_secs.to_string().as_bytes(), b".", body.as_bytes()]);
    Ok(format!("v1,{}", STANDARD.encode(sig)))
}

/// Verifies the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers over the raw
/// body (never a re-serialised one). `signatures` may hold several space-separated `v1,…`
/// entries (key rotation): one match is enough; other versions are ignored. The timestamp must
/// lie within `tolerance_secs` of `now_secs`, in either direction.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signatures: &str,
    body: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SigningError> {
    let key = secret_key(secret)?;
    if msg_id.is_empty() {
        return Err(SigningError::BadHeaders);
    }
    let ts: i64 = timestamp.trim().parse().map_err(|_| SigningError::BadHeaders)?;
    if ts < now_secs.saturating_sub(tolerance_secs) {
        return Err(SigningError::TooOld(tolerance_secs));
    }
    if ts > now_secs.saturating_add(tolerance_secs) {
        return Err(SigningError::TooNew(tolerance_secs));
    }
    let expected = mac(&key, &[msg_id.as_bytes(), b".", ts.to_string().as_bytes(), b".", body.as_bytes()]);
    let mut any = false;
    for candidate in signatures.split_whitespace() {
        let Some(b64) = candidate.strip_prefix("v1,") else { continue };
        let Ok(sig) = STANDARD.decode(b64) else { continue };
        any = true;
        if sig.len() == expected.len() && bool::from(sig.ct_eq(&expected)) {
            return Ok(());
        }
    }
    if any { Err(SigningError::Mismatch) } else { Err(SigningError::BadHeaders) }
}

/// Bytes of HMAC kept in an unsubscribe token.
const TOKEN_MAC_LEN: usize = 16;

/// A token for the unsubscribe link: the lead's opaque id and a truncated HMAC, URL-safe.
/// Lead ids are random, so the token reveals nothing about the person.
pub fn unsubscribe_token(secret: &[u8], lead_id: &str) -> String {
    let m = mac(secret, &[b"unsubscribe:", lead_id.as_bytes()]);
    format!("{}.{}", URL_SAFE_NO_PAD.encode(lead_id), URL_SAFE_NO_PAD.encode(&m[..TOKEN_MAC_LEN]))
}

/// The lead id of a valid unsubscribe token.
pub fn verify_unsubscribe_token(secret: &[u8], token: &str) -> Result<String, SigningError> {
    let (id_b64, mac_b64) = token.split_once('.').ok_or(SigningError::BadToken)?;
    let id = String::from_utf8(URL_SAFE_NO_PAD.decode(id_b64).map_err(|_| SigningError::BadToken)?)
        .map_err(|_| SigningError::BadToken)?;
    let given = URL_SAFE_NO_PAD.decode(mac_b64).map_err(|_| SigningError::BadToken)?;
    let m = mac(secret, &[b"unsubscribe:", id.as_bytes()]);
    if given.len() == TOKEN_MAC_LEN && bool::from(given.ct_eq(&m[..TOKEN_MAC_LEN])) {
        Ok(id)
    } else {
        Err(SigningError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification (its reference libraries' test vector);
    // the expected signature was also checked independently with Python's `hmac` module.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;

    #[test]
    fn matches_the_specification_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        verify(SECRET, ID, &TS.to_string(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", BODY, TS + 10, 300)
            .unwrap();
    }

    #[test]
    fn rejects_tampering_staleness_and_accepts_rotation() {
        let sig = sign(SECRET, ID, TS, BODY).unwrap();
        assert_eq!(verify(SECRET, ID, &TS.to_string(), &sig, "{}", TS, 300), Err(SigningError::Mismatch));
        assert_eq!(verify(SECRET, "other", &TS.to_string(), &sig, BODY, TS, 300), Err(SigningError::Mismatch));
        assert_eq!(verify(SECRET, ID, &TS.to_string(), &sig, BODY, TS + 301, 300), Err(SigningError::TooOld(300)));
        assert_eq!(verify(SECRET, ID, &TS.to_string(), &sig, BODY, TS - 301, 300), Err(SigningError::TooNew(300)));
        verify(SECRET, ID, &TS.to_string(), &sig, BODY, TS + 300, 300).unwrap();
        verify(SECRET, ID, &TS.to_string(), &sig, BODY, TS - 300, 300).unwrap();
        assert_eq!(verify(SECRET, ID, &i64::MIN.to_string(), &sig, BODY, TS, 300), Err(SigningError::TooOld(300)));
        // Key rotation: the old key's signature and the new one's, either order; other versions ignored.
        let old = sign("whsec_b2xkLWtleS1ieXRlcw==", ID, TS, BODY).unwrap();
        verify(SECRET, ID, &TS.to_string(), &format!("{old} {sig}"), BODY, TS, 300).unwrap();
        verify(SECRET, ID, &TS.to_string(), &format!("v2,xyz {sig} {old}"), BODY, TS, 300).unwrap();
        assert_eq!(verify(SECRET, ID, &TS.to_string(), &old, BODY, TS, 300), Err(SigningError::Mismatch));
        assert_eq!(verify(SECRET, ID, &TS.to_string(), "", BODY, TS, 300), Err(SigningError::BadHeaders));
        assert_eq!(verify(SECRET, ID, "x", &sig, BODY, TS, 300), Err(SigningError::BadHeaders));
        assert_eq!(sign("nope", ID, TS, BODY), Err(SigningError::BadSecret));
    }

    #[test]
    fn unsubscribe_tokens() {
        let t = unsubscribe_token(b"k1", "ld_123");
        assert_eq!(verify_unsubscribe_token(b"k1", &t).unwrap(), "ld_123");
        assert!(verify_unsubscribe_token(b"k2", &t).is_err());
        let mut tampered = t.clone();
        tampered.replace_range(0..1, if t.starts_with('A') { "B" } else { "A" });
        assert!(verify_unsubscribe_token(b"k1", &tampered).is_err());
        let (id, m) = t.split_once('.').unwrap();
        let other_mac = unsubscribe_token(b"k1", "ld_124").split_once('.').unwrap().1.to_string();
        assert_eq!(verify_unsubscribe_token(b"k1", &format!("{id}.{other_mac}")), Err(SigningError::Mismatch));
        let forged_id = URL_SAFE_NO_PAD.encode("ld_124");
        assert_eq!(verify_unsubscribe_token(b"k1", &format!("{forged_id}.{m}")), Err(SigningError::Mismatch));
        assert_eq!(
            verify_unsubscribe_token(b"k1", &format!("{id}.{}", &m[..m.len() - 2])),
            Err(SigningError::Mismatch)
        );
        assert!(verify_unsubscribe_token(b"k1", "garbage").is_err());
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'), "URL-safe: {t}");
        assert!(!t.contains('@'));
    }
}
