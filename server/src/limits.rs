//! Input rules enforced at the edge, before anything is queued or written (DESIGN.md §3).
//!
//! Every check names the field it refused and the limit it applied, so a user of any language
//! can correct the request from the message alone.

use dialkv_proto::v1;

use crate::error::ServiceError;

/// The size limits of the data API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Limits {
    /// The largest key, in bytes.
    pub max_key_bytes: usize,
    /// The largest value, in bytes.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4096,
            max_value_bytes: 1 << 20,
        }
    }
}

/// The most keys one scan page may ask for.
pub const MAX_SCAN_LIMIT: u32 = 10_000;
/// The keys a scan page returns when its limit is 0.
pub const DEFAULT_SCAN_LIMIT: u32 = 1_000;
/// The most key and value bytes in one scan page (past its first key).
pub const MAX_SCAN_PAGE_BYTES: usize = 4 << 20;
/// The longest namespace name.
pub const MAX_NAMESPACE_NAME: usize = 64;
/// The largest staleness bound accepted, in milliseconds (one day).
pub const MAX_STALENESS_MS: u64 = 86_400_000;

impl Limits {
    /// The largest gRPC message the server decodes: room for a compare-and-set carrying a
    /// full-size expected value and new value, so that oversized fields get a message naming
    /// them instead of a transport error.
    pub fn max_decoding_message_bytes(&self) -> usize {
        2 * self.max_value_bytes + 2 * self.max_key_bytes + (64 << 10)
    }

    /// Checks a key: 1..=max_key_bytes.
    pub fn check_key(&self, field: &str, key: &[u8]) -> Result<(), ServiceError> {
        if key.is_empty() {
            return Err(ServiceError::invalid(
                field,
                "KEY_EMPTY",
                format!(
                    "must not be empty (a key is 1 to {} bytes)",
                    self.max_key_bytes
                ),
            ));
        }
        self.check_key_bound(field, key)
    }

    /// Checks a range bound: 0..=max_key_bytes (empty means open).
    pub fn check_key_bound(&self, field: &str, key: &[u8]) -> Result<(), ServiceError> {
        if key.len() > self.max_key_bytes {
            return Err(ServiceError::invalid(
                field,
                "KEY_TOO_LARGE",
                format!(
                    "{} bytes is over the limit of {} bytes",
                    key.len(),
                    self.max_key_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checks a value: 0..=max_value_bytes.
    pub fn check_value(&self, field: &str, value: &[u8]) -> Result<(), ServiceError> {
        if value.len() > self.max_value_bytes {
            return Err(ServiceError::invalid(
                field,
                "VALUE_TOO_LARGE",
                format!(
                    "{} bytes is over the limit of {} bytes",
                    value.len(),
                    self.max_value_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// Checks a namespace name: `[a-z0-9_-]{1,64}`.
pub fn check_namespace_name(field: &str, name: &str) -> Result<(), ServiceError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if name.is_empty() || name.len() > MAX_NAMESPACE_NAME || !name.chars().all(ok_char) {
        return Err(ServiceError::invalid(
            field,
            "BAD_NAMESPACE_NAME",
            format!("{name:?} is not a namespace name: 1 to {MAX_NAMESPACE_NAME} characters of a-z, 0-9, _ and -"),
        ));
    }
    Ok(())
}

/// Checks a scan limit and applies its default: 0 → [`DEFAULT_SCAN_LIMIT`], at most
/// [`MAX_SCAN_LIMIT`].
pub fn scan_limit(field: &str, limit: u32) -> Result<usize, ServiceError> {
    match limit {
        0 => Ok(DEFAULT_SCAN_LIMIT as usize),
        n if n <= MAX_SCAN_LIMIT => Ok(n as usize),
        n => Err(ServiceError::invalid(
            field,
            "SCAN_LIMIT_TOO_LARGE",
            format!("{n} is over the maximum of {MAX_SCAN_LIMIT}"),
        )),
    }
}

/// Decodes an enum field, refusing numbers outside the enum.
pub fn enum_field<E: TryFrom<i32>>(
    field: &str,
    value: i32,
    range: &str,
) -> Result<E, ServiceError> {
    E::try_from(value).map_err(|_| {
        ServiceError::invalid(
            field,
            "UNKNOWN_ENUM_VALUE",
            format!("{value} is not a known value ({range})"),
        )
    })
}

/// Checks the consistency of a request and returns its level (UNSPECIFIED → LINEARIZABLE).
/// `replicas` bounds the quorum overrides, which only quorum namespaces take.
pub fn check_consistency(
    c: Option<&v1::Consistency>,
    quorum_namespace: bool,
    replicas: u32,
) -> Result<v1::ConsistencyLevel, ServiceError> {
    let Some(c) = c else {
        return Ok(v1::ConsistencyLevel::Linearizable);
    };
    let level: v1::ConsistencyLevel = enum_field("consistency.level", c.level, "0 to 5")?;
    let level = match level {
        v1::ConsistencyLevel::Unspecified => v1::ConsistencyLevel::Linearizable,
        l => l,
    };
    if c.max_staleness_ms > MAX_STALENESS_MS {
        return Err(ServiceError::invalid(
            "consistency.max_staleness_ms",
            "STALENESS_BOUND_TOO_LARGE",
            format!(
                "{} is over the maximum of {MAX_STALENESS_MS} ms",
                c.max_staleness_ms
            ),
        ));
    }
    if level == v1::ConsistencyLevel::BoundedStaleness
        && c.max_staleness_ms == 0
        && c.max_staleness_versions == 0
    {
        return Err(ServiceError::invalid(
            "consistency.max_staleness_ms",
            "STALENESS_BOUND_MISSING",
            "BOUNDED_STALENESS needs max_staleness_ms or max_staleness_versions greater than 0",
        ));
    }
    for (field, q) in [
        ("consistency.write_quorum", c.write_quorum),
        ("consistency.read_quorum", c.read_quorum),
    ] {
        if q == 0 {
            continue;
        }
        if !quorum_namespace {
            return Err(ServiceError::invalid(
                field,
                "QUORUM_OVERRIDE_NOT_APPLICABLE",
                "applies to quorum namespaces only; leave it 0 for a primary-backup namespace",
            ));
        }
        if q > replicas {
            return Err(ServiceError::invalid(
                field,
                "QUORUM_TOO_LARGE",
                format!("{q} is over the namespace's {replicas} replicas"),
            ));
        }
    }
    Ok(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names() {
        for ok in ["default", "a", "a-b_c9", &"x".repeat(64)] {
            assert!(check_namespace_name("namespace", ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a b", "é", &"x".repeat(65), "a/b"] {
            let err = check_namespace_name("namespace", bad).expect_err(bad);
            assert!(err.to_string().starts_with("namespace: "), "{err}");
        }
    }

    #[test]
    fn sizes_name_the_field_and_the_limit() {
        let l = Limits {
            max_key_bytes: 4,
            max_value_bytes: 8,
        };
        let e = l.check_key("key", b"12345").expect_err("too long");
        assert_eq!(e.to_string(), "key: 5 bytes is over the limit of 4 bytes");
        assert!(l.check_key("key", b"").is_err());
        assert!(l.check_value("value", &[0; 8]).is_ok());
        assert!(l.check_value("value", &[0; 9]).is_err());
        assert_eq!(scan_limit("limit", 0).expect("default"), 1000);
        assert!(scan_limit("limit", 10_001).is_err());
    }

    #[test]
    fn consistency_rules() {
        let c = |level, ms, w| v1::Consistency {
            level,
            max_staleness_ms: ms,
            write_quorum: w,
            ..Default::default()
        };
        assert_eq!(
            check_consistency(None, false, 1).expect("ok"),
            v1::ConsistencyLevel::Linearizable
        );
        assert!(check_consistency(Some(&c(99, 0, 0)), false, 1).is_err());
        assert!(check_consistency(Some(&c(4, 0, 0)), false, 1).is_err());
        assert!(check_consistency(Some(&c(4, 10, 0)), false, 1).is_ok());
        assert!(check_consistency(Some(&c(5, 0, 2)), false, 3).is_err());
        assert!(check_consistency(Some(&c(5, 0, 2)), true, 3).is_ok());
        assert!(check_consistency(Some(&c(5, 0, 4)), true, 3).is_err());
    }
}
