//! Message attributes as SQS stores them, their validation, and the MD5 digests AWS computes
//! over bodies and attributes (SDKs verify these, so the byte layout must match AWS exactly).

use std::collections::BTreeMap;

use base64::Engine;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error as e;
use crate::error::ServiceResult;

/// One message (or system) attribute as stored in a Send record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAttr {
    pub data_type: String,
    pub string_value: Option<String>,
    pub binary_value: Option<Vec<u8>>,
}

impl StoredAttr {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(s) = &self.string_value {
            m.insert("StringValue".into(), Value::String(s.clone()));
        }
        if let Some(b) = &self.binary_value {
            m.insert(
                "BinaryValue".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            );
        }
        m.insert("DataType".into(), Value::String(self.data_type.clone()));
        Value::Object(m)
    }

    /// Bytes the attribute counts towards MaximumMessageSize (name + type + value, as AWS).
    pub fn size(&self, name: &str) -> usize {
        name.len()
            + self.data_type.len()
            + self.string_value.as_ref().map_or(0, |s| s.len())
            + self.binary_value.as_ref().map_or(0, |b| b.len())
    }
}

pub type Attrs = BTreeMap<String, StoredAttr>;

pub fn hex_md5(data: &[u8]) -> String {
    to_hex(&Md5::digest(data))
}

/// Lowercase hex of `bytes`. `hex::encode` collects one `char` at a time into a growing
/// `String`; digests are hexed for every message sent, so this writes into one exact buffer.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = vec![0; bytes.len() * 2];
    // Infallible: the output is exactly twice the input, and hex digits are ASCII.
    let _ = hex::encode_to_slice(bytes, &mut s);
    String::from_utf8(s).unwrap_or_default()
}

/// AWS's MD5OfMessageAttributes (and MD5OfMessageSystemAttributes): for each attribute in name
/// order, length-prefixed name and data type, a transport byte (1 string, 2 binary), and the
/// length-prefixed value.
pub fn md5_of_attributes(attrs: &Attrs) -> String {
    let mut h = Md5::new();
    let put = |h: &mut Md5, b: &[u8]| {
        h.update((b.len() as u32).to_be_bytes());
        h.update(b);
    };
    for (name, a) in attrs {
        put(&mut h, name.as_bytes());
        put(&mut h, a.data_type.as_bytes());
        if let Some(s) = &a.string_value {
            h.update([1u8]);
            put(&mut h, s.as_bytes());
        } else if let Some(b) = &a.binary_value {
            h.update([2u8]);
            put(&mut h, b);
        }
    }
    to_hex(&h.finalize())
}

/// AWS's allowed body characters: #x9 #xA #xD #x20–#xD7FF #xE000–#xFFFD #x10000–#x10FFFF.
pub fn check_chars(s: &str) -> ServiceResult<()> {
    // A `str` holds no surrogates, so the only characters outside the set are the C0 controls
    // other than tab, LF and CR (single bytes below 0x20) and U+FFFE / U+FFFF (encoded
    // EF BF BE / EF BF BF). One pass over the bytes, which the compiler vectorizes, rules
    // both out for almost every body; only a body that has one of those bytes is decoded.
    let suspicious = s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20 && !matches!(b, 0x9 | 0xA | 0xD)) | (b == 0xEF)
    });
    if !suspicious {
        return Ok(());
    }
    for c in s.chars() {
        let u = c as u32;
        let ok =
            matches!(u, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
        if !ok {
            return Err(e::invalid_message_contents(u));
        }
    }
    Ok(())
}

fn valid_attr_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            // Letters and digits of any script: AWS accepts names like `attr.1øßä`.
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.to_ascii_lowercase().starts_with("aws.")
        && !name.to_ascii_lowercase().starts_with("amazon.")
}

/// Parses JSON-shaped `MessageAttributes` (user attributes, `system` false) or
/// `MessageSystemAttributes` (only AWSTraceHeader, `system` true).
pub fn parse_attrs(v: Option<&Map<String, Value>>, system: bool) -> ServiceResult<Attrs> {
    let mut out = Attrs::new();
    let Some(map) = v else { return Ok(out) };
    let kind = if system { "system" } else { "user" };
    if !system && map.len() > 10 {
        return Err(e::invalid_parameter_value(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [10].",
            map.len()
        )));
    }
    for (name, val) in map {
        if system {
            if name != "AWSTraceHeader" {
                return Err(e::invalid_parameter_value(format!(
                    "Message system attribute name '{name}' is invalid."
                )));
            }
        } else if !valid_attr_name(name) {
            return Err(e::invalid_parameter_value(format!(
                "Message ({kind}) attribute name '{name}' is invalid."
            )));
        }
        let obj = val.as_object().ok_or_else(|| {
            e::invalid_parameter_value(format!("Message ({kind}) attribute '{name}' is invalid."))
        })?;
        let data_type = obj
            .get("DataType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if data_type.is_empty() {
            return Err(e::invalid_parameter_value(format!(
                "The message ({kind}) attribute '{name}' must contain a non-empty attribute type."
            )));
        }
        let base = data_type.split('.').next().unwrap_or_default();
        if system && data_type != "String" {
            return Err(e::invalid_parameter_value(format!(
                "The message system attribute '{name}' must be of type 'String'."
            )));
        }
        if !matches!(base, "String" | "Number" | "Binary")
            || data_type.len() > 256
            || (data_type.contains('.') && data_type.ends_with('.'))
        {
            return Err(e::invalid_parameter_value(format!(
                "The type of message ({kind}) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
            )));
        }
        if obj.contains_key("StringListValues") || obj.contains_key("BinaryListValues") {
            let nonempty = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            };
            if nonempty("StringListValues") || nonempty("BinaryListValues") {
                return Err(e::invalid_parameter_value(
                    "Message attribute list values in SendMessage operation are not supported.",
                ));
            }
        }
        let string_value = obj.get("StringValue").and_then(Value::as_str);
        let binary_value = obj.get("BinaryValue").and_then(Value::as_str);
        let attr = if base == "Binary" {
            let b = binary_value
                .map(|s| base64::engine::general_purpose::STANDARD.decode(s))
                .transpose()
                .map_err(|_| {
                    e::invalid_parameter_value(format!(
                        "Message ({kind}) attribute '{name}' has an invalid binary value."
                    ))
                })?;
            match b {
                Some(b) if !b.is_empty() => StoredAttr {
                    data_type,
                    string_value: None,
                    binary_value: Some(b),
                },
                _ => {
                    return Err(e::invalid_parameter_value(format!(
                        "Message ({kind}) attribute '{name}' must contain a non-empty value of type 'Binary'."
                    )))
                }
            }
        } else {
            match string_value {
                Some(s) if !s.is_empty() => {
                    check_chars(s).map_err(|_| {
                        e::invalid_parameter_value(format!(
                            "Message ({kind}) attribute '{name}' contains invalid characters."
                        ))
                    })?;
                    if base == "Number" && !crate::service::is_attribute_number(s) {
                        return Err(e::invalid_parameter_value(format!(
                            "Could not cast message attribute '{name}' value to number."
                        )));
                    }
                    StoredAttr {
                        data_type,
                        string_value: Some(s.to_string()),
                        binary_value: None,
                    }
                }
                _ => {
                    return Err(e::invalid_parameter_value(format!(
                        "Message ({kind}) attribute '{name}' must contain a non-empty value of type '{base}'."
                    )))
                }
            }
        };
        out.insert(name.clone(), attr);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(dt: &str, s: Option<&str>, b: Option<&[u8]>) -> StoredAttr {
        StoredAttr {
            data_type: dt.into(),
            string_value: s.map(str::to_string),
            binary_value: b.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn body_md5() {
        assert_eq!(hex_md5(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn hex_is_the_hex_crates() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(to_hex(&all), hex::encode(&all));
        assert_eq!(to_hex(&[]), "");
    }

    // Vectors from the algorithm of botocore's former `_add_md5_of_message_attributes` (current
    // botocore no longer ships it), cross-checked with moto's independent implementation
    // (`moto.sqs.models.Message.attribute_md5`), which gives the same digests.
    #[test]
    fn attributes_md5_matches_aws_algorithm() {
        let mut a = Attrs::new();
        a.insert("b".into(), sa("Number", Some("1"), None));
        a.insert("a".into(), sa("String", Some("x"), None));
        a.insert("c".into(), sa("Binary", None, Some(b"\x00\x01")));
        a.insert("d".into(), sa("String.custom", Some("h\u{e9}"), None));
        assert_eq!(md5_of_attributes(&a), "dc56f7273db073c8e34d45e977af2a50");
        let mut t = Attrs::new();
        t.insert(
            "AWSTraceHeader".into(),
            sa(
                "String",
                Some("Root=1-5759e988-bd862e3fe1be46a994272793"),
                None,
            ),
        );
        assert_eq!(md5_of_attributes(&t), "62a56dd927315f2b2e12832b84617ea5");
    }

    #[test]
    fn chars() {
        assert!(check_chars("ok \t\n\r\u{10000}").is_ok());
        assert_eq!(
            check_chars("a\u{1}").unwrap_err().code,
            "InvalidMessageContents"
        );
        assert!(check_chars("\u{FFFE}").is_err());
        assert!(check_chars("x\u{FFFF}y").is_err());
        assert!(check_chars("\u{1f}").is_err());
        assert!(check_chars("\u{7f}\u{80}").is_ok());
        // Bytes that take the slow path but are allowed: EF BB BF, EF BF BD.
        assert!(check_chars("\u{FEFF}\u{FFFD}\u{D7FF}\u{E000}").is_ok());
    }
}
