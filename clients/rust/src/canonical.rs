//! Canonical JSON and the `enqueue_sha` (v1), computed exactly as the server computes them.
//!
//! The `enqueue_sha` of a send is the lowercase hex SHA-256 of the UTF-8 bytes of the canonical
//! JSON of the object `{delay_ms, good_until, kwargs, priority, queue_name, task_id, task_name}`.
//! Canonical JSON has no whitespace, object keys sorted by code point, strings escaped only where
//! JSON requires it, and every number written as its exact decimal value (no exponent, no
//! redundant zeros, zero as `0`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

/// The canonical JSON text of a JSON value.
///
/// ```
/// let v: serde_json::Value = serde_json::from_str(r#"{"b":2.50,"a":[1e16,-0.0]}"#).unwrap();
/// assert_eq!(horsies::canonical::canonical_json(&v), r#"{"a":[10000000000000000,0],"b":2.5}"#);
/// ```
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    // Rust's `str` ordering is byte order of UTF-8, which is code point order.
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push('{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, item);
    }
    out.push('}');
}

/// Writes a JSON string: `"` and `\` escaped, `\b \f \n \r \t`, other controls as `\u00xx`.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&exact_decimal(f));
    } else {
        // Not reachable without serde_json's arbitrary precision; its own text is the best we have.
        out.push_str(&n.to_string());
    }
}

/// The exact decimal text of the shortest round-trip representation of a finite `f64`
/// (`1e16` -> `10000000000000000`, `1e-7` -> `0.0000001`, `2500.0` -> `2500`, `-0.0` -> `0`).
pub fn exact_decimal(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        // JSON has no NaN or infinity (serde_json never stores them in a Value); zero is "0".
        return "0".to_string();
    }
    let sci = format!("{:e}", f); // shortest round-trip digits, e.g. "-1.23e-4", "1e16"
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int_part}{frac_part}");
    let digits = all.trim_start_matches('0');
    // Leading zeros cannot occur in `{:e}` output except for zero itself (handled above), but
    // adjust the exponent if they ever did.
    let skipped = (all.len() - digits.len()) as i64;
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return "0".to_string();
    }
    // value = 0.<digits> * 10^point
    let point = exponent + 1 - skipped;
    let len = digits.len() as i64;
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    if point <= 0 {
        text.push_str("0.");
        text.extend(std::iter::repeat('0').take((-point) as usize));
        text.push_str(digits);
    } else if point >= len {
        text.push_str(digits);
        text.extend(std::iter::repeat('0').take((point - len) as usize));
    } else {
        text.push_str(&digits[..point as usize]);
        text.push('.');
        text.push_str(&digits[point as usize..]);
    }
    text
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC with exactly 6 fraction digits (the enqueue_sha form).
pub fn format_good_until(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The canonical JSON that the `enqueue_sha` of a send is computed over.
pub fn enqueue_canonical(
    task_id: &str,
    task_name: &str,
    queue_name: &str,
    priority: u32,
    kwargs: &Value,
    delay_ms: Option<u64>,
    good_until: Option<&DateTime<Utc>>,
) -> String {
    let mut object = Map::new();
    object.insert("delay_ms".into(), delay_ms.map(Value::from).unwrap_or(Value::Null));
    object.insert(
        "good_until".into(),
        good_until.map(|g| Value::String(format_good_until(g))).unwrap_or(Value::Null),
    );
    object.insert("kwargs".into(), kwargs.clone());
    object.insert("priority".into(), Value::from(priority));
    object.insert("queue_name".into(), Value::String(queue_name.to_string()));
    object.insert("task_id".into(), Value::String(task_id.to_lowercase()));
    object.insert("task_name".into(), Value::String(task_name.to_string()));
    canonical_json(&Value::Object(object))
}

/// Lowercase hex SHA-256 of some text's UTF-8 bytes.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// The `enqueue_sha` (v1) of a send.
pub fn enqueue_sha(
    task_id: &str,
    task_name: &str,
    queue_name: &str,
    priority: u32,
    kwargs: &Value,
    delay_ms: Option<u64>,
    good_until: Option<&DateTime<Utc>>,
) -> String {
    sha256_hex(&enqueue_canonical(
        task_id, task_name, queue_name, priority, kwargs, delay_ms, good_until,
    ))
}

/// True if some string (or object key) in the value holds U+0000, which PostgreSQL's `jsonb`
/// cannot store.
pub(crate) fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// A new UUIDv7 (48-bit unix-millisecond timestamp, version 7, variant `10`, random rest),
/// as lowercase hyphenated text.
pub fn new_task_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    uuid_v7_from(millis, rand::random::<[u8; 10]>())
}

pub(crate) fn uuid_v7_from(millis: u64, random: [u8; 10]) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..8]);
    bytes[6..].copy_from_slice(&random);
    bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vectors {
        version: u32,
        vectors: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        task_id: String,
        task_name: String,
        queue_name: String,
        priority: u32,
        kwargs: String,
        delay_ms: Option<u64>,
        good_until: Option<String>,
        canonical: String,
        enqueue_sha: String,
    }

    fn vectors() -> Vectors {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../enqueue_sha_vectors.json");
        let text = std::fs::read_to_string(path).expect("read the shared test vectors");
        serde_json::from_str(&text).expect("parse the shared test vectors")
    }

    #[test]
    fn every_shared_vector_matches() {
        let all = vectors();
        assert_eq!(all.version, 1);
        assert!(all.vectors.len() >= 10, "expected the shared vectors, got {}", all.vectors.len());
        for v in &all.vectors {
            let kwargs: Value = serde_json::from_str(&v.kwargs).expect(&v.name);
            let good_until = v.good_until.as_ref().map(|g| {
                DateTime::parse_from_rfc3339(g).expect(&v.name).with_timezone(&Utc)
            });
            let canonical = enqueue_canonical(
                &v.task_id,
                &v.task_name,
                &v.queue_name,
                v.priority,
                &kwargs,
                v.delay_ms,
                good_until.as_ref(),
            );
            assert_eq!(canonical, v.canonical, "canonical JSON of vector {:?}", v.name);
            let sha = enqueue_sha(
                &v.task_id,
                &v.task_name,
                &v.queue_name,
                v.priority,
                &kwargs,
                v.delay_ms,
                good_until.as_ref(),
            );
            assert_eq!(sha, v.enqueue_sha, "enqueue_sha of vector {:?}", v.name);
            assert_eq!(sha256_hex(&v.canonical), v.enqueue_sha, "sha of {:?}", v.name);
        }
    }

    #[test]
    fn floats_expand_exactly() {
        let cases: &[(f64, &str)] = &[
            (1e16, "10000000000000000"),
            (1e-7, "0.0000001"),
            (1.0, "1"),
            (2500.0, "2500"),
            (-0.0, "0"),
            (0.0, "0"),
            (0.1, "0.1"),
            (-0.000123, "-0.000123"),
            (123.456, "123.456"),
            (1.5e300, &format!("15{}", "0".repeat(299))),
            (5e-324, &format!("0.{}5", "0".repeat(323))),
            (f64::MAX, &format!("17976931348623157{}", "0".repeat(292))),
            (0.30000000000000004, "0.30000000000000004"),
            (-42.0, "-42"),
        ];
        for (f, want) in cases {
            assert_eq!(exact_decimal(*f), *want, "{f:e}");
        }
    }

    #[test]
    fn integers_and_strings() {
        let v = serde_json::json!({"z": u64::MAX, "y": i64::MIN, "x": "\u{0}\u{1f}\u{7f}é😀/"});
        assert_eq!(
            canonical_json(&v),
            format!(
                "{{\"x\":\"\\u0000\\u001f\u{7f}é😀/\",\"y\":{},\"z\":{}}}",
                i64::MIN,
                u64::MAX
            )
        );
        assert!(contains_nul(&v));
        assert!(!contains_nul(&serde_json::json!({"a": ["\\u0000"]})));
    }

    #[test]
    fn good_until_has_six_fraction_digits() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T04:04:05.006007891+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_good_until(&at), "2030-01-02T03:04:05.006007Z");
        let whole = DateTime::parse_from_rfc3339("2026-12-04T17:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(format_good_until(&whole), "2026-12-04T17:00:00.000000Z");
    }

    #[test]
    fn uuid_v7_layout() {
        let id = uuid_v7_from(0x0193_a1c2_7d4e, [0xff; 10]);
        assert_eq!(id, "0193a1c2-7d4e-7fff-bfff-ffffffffffff");
        let id = uuid_v7_from(0x0193_a1c2_7d4e, [0; 10]);
        assert_eq!(id, "0193a1c2-7d4e-7000-8000-000000000000");
        let fresh = new_task_id();
        let parsed = uuid::Uuid::parse_str(&fresh).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(new_task_id(), fresh);
    }
}
