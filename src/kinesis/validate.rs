//! Model-constraint checks (required, length, range, pattern, enum) that AWS answers with
//! `ValidationException: N validation error(s) detected: ...`. Collects every violation of a
//! request, then fails once.

use crate::error::ServiceResult;

use super::error::validation;

#[derive(Default)]
pub struct Checks {
    errs: Vec<String>,
}

pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl Checks {
    pub fn new() -> Self {
        Checks::default()
    }

    fn push(&mut self, value: String, path: &str, constraint: &str) {
        self.errs.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: Member must {constraint}"
        ));
    }

    pub fn required<T>(&mut self, v: &Option<T>, path: &str) -> &mut Self {
        if v.is_none() {
            self.push("null".into(), path, "not be null");
        }
        self
    }

    pub fn len(&mut self, v: Option<&str>, path: &str, min: usize, max: usize) -> &mut Self {
        if let Some(s) = v {
            let n = s.chars().count();
            if n < min {
                self.push(
                    format!("'{s}'"),
                    path,
                    &format!("have length greater than or equal to {min}"),
                );
            } else if n > max {
                self.push(
                    format!("'{s}'"),
                    path,
                    &format!("have length less than or equal to {max}"),
                );
            }
        }
        self
    }

    /// Stream, consumer and shard names: 1..=max of `[a-zA-Z0-9_.-]`. An empty name breaks
    /// both rules, and AWS reports both (kinesalite's tests, written against AWS).
    pub fn name(&mut self, v: Option<&str>, path: &str, max: usize) -> &mut Self {
        if v == Some("") {
            self.push(
                "''".into(),
                path,
                "satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
            );
            return self.len(v, path, 1, max);
        }
        let before = self.errs.len();
        self.len(v, path, 1, max);
        if let Some(s) = v {
            if self.errs.len() == before && !is_name(s) {
                self.push(
                    format!("'{s}'"),
                    path,
                    "satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
                );
            }
        }
        self
    }

    pub fn range(&mut self, v: Option<i64>, path: &str, min: i64, max: Option<i64>) -> &mut Self {
        if let Some(n) = v {
            if n < min {
                self.push(
                    format!("'{n}'"),
                    path,
                    &format!("have value greater than or equal to {min}"),
                );
            } else if let Some(max) = max.filter(|m| n > *m) {
                self.push(
                    format!("'{n}'"),
                    path,
                    &format!("have value less than or equal to {max}"),
                );
            }
        }
        self
    }

    pub fn one_of(&mut self, v: Option<&str>, path: &str, allowed: &[&str]) -> &mut Self {
        if let Some(s) = v {
            if !allowed.contains(&s) {
                self.push(
                    format!("'{s}'"),
                    path,
                    &format!("satisfy enum value set: [{}]", allowed.join(", ")),
                );
            }
        }
        self
    }

    pub fn pattern(&mut self, v: Option<&str>, path: &str, ok: bool, pattern: &str) -> &mut Self {
        if let Some(s) = v {
            if !ok {
                self.push(
                    format!("'{s}'"),
                    path,
                    &format!("satisfy regular expression pattern: {pattern}"),
                );
            }
        }
        self
    }

    pub fn count(&mut self, n: Option<usize>, path: &str, min: usize, max: usize) -> &mut Self {
        if let Some(n) = n {
            if n < min {
                self.push(
                    "'[]'".into(),
                    path,
                    &format!("have length greater than or equal to {min}"),
                );
            } else if n > max {
                self.push(
                    format!("'[... {n} items]'"),
                    path,
                    &format!("have length less than or equal to {max}"),
                );
            }
        }
        self
    }

    /// A free-form violation in the same format.
    pub fn raw(&mut self, value: String, path: &str, constraint: &str) -> &mut Self {
        self.push(value, path, constraint);
        self
    }

    /// A violation whose value printed would seem to satisfy the constraint (it is broken only
    /// together with another member): the same format without the value.
    pub fn unvalued(&mut self, path: &str, constraint: &str) -> &mut Self {
        self.errs.push(format!(
            "Value at '{path}' failed to satisfy constraint: Member must {constraint}"
        ));
        self
    }

    pub fn finish(&mut self) -> ServiceResult<()> {
        match self.errs.len() {
            0 => Ok(()),
            1 => Err(validation(format!(
                "1 validation error detected: {}",
                self.errs[0]
            ))),
            // AWS counts and lists at most ten (kinesalite's putRecords tests).
            n => Err(validation(format!(
                "{} validation errors detected: {}",
                n.min(10),
                self.errs[..n.min(10)].join("; ")
            ))),
        }
    }
}

pub const STREAM_ARN_PATTERN: &str = "arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+";

/// `arn:aws:kinesis:{region}:{account}:stream/{name}` → (region, account, name).
pub fn parse_stream_arn(arn: &str) -> Option<(String, String, String)> {
    let mut it = arn.splitn(6, ':');
    let (arn_, partition, service, region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if arn_ != "arn" || !partition.starts_with("aws") || service != "kinesis" {
        return None;
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = resource.strip_prefix("stream/")?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    Some((region.to_string(), account.to_string(), name.to_string()))
}

/// `...:stream/{name}/consumer/{consumer}:{created}` → (region, account, stream, consumer, created).
pub fn parse_consumer_arn(arn: &str) -> Option<(String, String, String, String, u64)> {
    let mut it = arn.splitn(6, ':');
    let (arn_, partition, service, region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    if arn_ != "arn" || !partition.starts_with("aws") || service != "kinesis" {
        return None;
    }
    let rest = resource.strip_prefix("stream/")?;
    let (stream, rest) = rest.split_once("/consumer/")?;
    let (consumer, created) = rest.rsplit_once(':')?;
    if !is_name(stream) || !is_name(consumer) {
        return None;
    }
    Some((
        region.to_string(),
        account.to_string(),
        stream.to_string(),
        consumer.to_string(),
        created.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = Checks::new()
            .name(Some("a b"), "streamName", 128)
            .finish()
            .unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert_eq!(e.message, "1 validation error detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+");
        let e = Checks::new()
            .required(&None::<u8>, "streamName")
            .range(Some(0), "shardCount", 1, None)
            .finish()
            .unwrap_err();
        assert!(e.message.starts_with("2 validation errors detected: "));
        // An empty name breaks the pattern and the length, in AWS's order.
        let e = Checks::new()
            .name(Some(""), "streamName", 128)
            .finish()
            .unwrap_err();
        assert_eq!(e.message, "2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1");
        // At most ten are counted and listed.
        let mut c = Checks::new();
        for i in 0..12 {
            c.len(
                Some(""),
                &format!("records.{i}.member.partitionKey"),
                1,
                256,
            );
        }
        let e = c.finish().unwrap_err();
        assert!(
            e.message.starts_with("10 validation errors detected: "),
            "{}",
            e.message
        );
        assert_eq!(e.message.matches("failed to satisfy").count(), 10);
    }

    #[test]
    fn arns() {
        assert_eq!(
            parse_stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/s1"),
            Some(("us-east-1".into(), "000000000000".into(), "s1".into()))
        );
        assert!(parse_stream_arn("arn:aws:sqs:us-east-1:000000000000:stream/s1").is_none());
        assert_eq!(
            parse_consumer_arn("arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/c:17")
                .map(|c| (c.3, c.4)),
            Some(("c".into(), 17))
        );
    }
}
