//! The one thing lookout reads from a JWT: its `exp` claim, to say when a
//! Bearer credential expires. The signature is never verified (lookout is
//! not the audience) and no other claim is kept or shown.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A JWT longer than this is not looked into (the work stays bounded).
const MAX_JWT_BYTES: usize = 16 * 1024;

/// The `exp` claim (Unix seconds) of `token` if it is a JWT: three
/// base64url parts, the middle one a JSON object with a numeric `exp`.
/// Anything else, a payload that does not decode included, is `None`.
pub fn expiry(token: &str) -> Option<i64> {
    if token.len() > MAX_JWT_BYTES {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() || payload.is_empty() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.as_object()?.get("exp")?;
    // Far past any real date (year 31 million): arithmetic on it never
    // overflows.
    const BOUND: i64 = 1_000_000_000_000_000;
    let exp = exp.as_i64().or_else(|| {
        exp.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })?;
    (-BOUND < exp && exp < BOUND).then_some(exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode("not a real signature")
        )
    }

    #[test]
    fn reads_exp_and_nothing_else() {
        let cases: [(&str, Option<i64>); 8] = [
            (r#"{"sub":"svc","exp":1800000000}"#, Some(1_800_000_000)),
            (r#"{"exp":1800000000.75}"#, Some(1_800_000_000)),
            (r#"{"sub":"svc"}"#, None),
            (r#"{"exp":"1800000000"}"#, None),
            (r#"[1800000000]"#, None),
            ("not json", None),
            (r#"{"exp":1e300}"#, None),
            ("", None),
        ];
        for (payload, want) in cases {
            assert_eq!(expiry(&jwt(payload)), want, "{payload}");
        }
    }

    #[test]
    fn what_is_not_a_jwt_has_no_expiry() {
        let good = jwt(r#"{"exp":1800000000}"#);
        let parts: Vec<&str> = good.split('.').collect();
        for token in [
            "hk_test_Zq8Xw3Vb9Nc2Lm4Kp7Rt".to_owned(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.extra"),
            format!(".{}.{}", parts[1], parts[2]),
            format!("{}.!!!.{}", parts[0], parts[2]),
            format!("{}.{}.{}", parts[0], "x".repeat(MAX_JWT_BYTES), parts[2]),
            // An `exp` no real date has: later arithmetic must not overflow.
            jwt(r#"{"exp":-9223372036854775808}"#),
            jwt(r#"{"exp":9223372036854775807}"#),
        ] {
            assert_eq!(expiry(&token), None, "{token}");
        }
        // Padding some encoders add is tolerated; an empty signature (alg none) too.
        assert_eq!(
            expiry(&format!("{}.{}==.", parts[0], parts[1])),
            Some(1_800_000_000)
        );
    }
}
