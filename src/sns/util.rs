//! Small helpers shared by the SNS action families: ARNs, paging tokens, timestamps.

use base64::Engine;

use super::error::{authorization_error, invalid_parameter};
use crate::context::RequestContext;
use crate::error::ServiceResult;

/// Page size of every SNS List* action.
pub const PAGE: usize = 100;

pub fn topic_arn(ctx: &RequestContext, name: &str) -> String {
    format!("arn:aws:sns:{}:{}:{}", ctx.region, ctx.account_id, name)
}

/// The parts of an `arn:aws:sns:region:account:resource` ARN.
pub struct Arn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

pub fn parse_arn(arn: &str) -> Option<Arn<'_>> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let partition = it.next()?;
    let service = it.next()?;
    let region = it.next()?;
    let account = it.next()?;
    let resource = it.next()?;
    if partition.is_empty() || service != "sns" || region.is_empty() || resource.is_empty() {
        return None;
    }
    Some(Arn {
        region,
        account,
        resource,
    })
}

/// Checks an ARN parameter names an SNS resource of this request's account and region.
/// `param` names it in the error ("TopicArn", "SubscriptionArn", ...).
pub fn check_arn(ctx: &RequestContext, arn: &str, param: &str, action: &str) -> ServiceResult<()> {
    // AWS's wording for a value that is not ARN-shaped at all (SDK examples and client test
    // suites assert it: "Invalid parameter: TopicArn Reason: An ARN must have at least 6
    // elements, not 1").
    let elements = arn.split(':').count();
    if elements < 6 {
        return Err(invalid_parameter(format!(
            "{param} Reason: An ARN must have at least 6 elements, not {elements}"
        )));
    }
    let Some(a) = parse_arn(arn) else {
        return Err(invalid_parameter(param));
    };
    if a.region != ctx.region {
        return Err(invalid_parameter(param));
    }
    if a.account != ctx.account_id {
        return Err(authorization_error(format!(
            "User: arn:aws:iam::{}:root is not authorized to perform: SNS:{} on resource: {}",
            ctx.account_id, action, arn
        )));
    }
    Ok(())
}

/// The ARN prefix of every SNS resource of this request's (account, region).
pub fn scope_prefix(ctx: &RequestContext) -> String {
    format!("arn:aws:sns:{}:{}:", ctx.region, ctx.account_id)
}

/// Padded standard base64, as AWS's tokens are (LocalStack's AWS-validated
/// test_list_subscriptions_by_topic_pagination decodes one with `base64.b64decode`).
pub fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// Also takes the unpadded URL-safe tokens of earlier versions.
pub fn decode_token(token: &str) -> ServiceResult<String> {
    base64::engine::general_purpose::STANDARD
        .decode(token.as_bytes())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.as_bytes()))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| invalid_parameter("NextToken"))
}

/// One page of items sorted by key, starting after the key the token names.
pub fn page<'a, T: 'a>(
    items: impl Iterator<Item = (&'a String, T)>,
    token: Option<&str>,
) -> ServiceResult<(Vec<T>, Option<String>)> {
    let after = token
        .filter(|t| !t.is_empty())
        .map(decode_token)
        .transpose()?;
    let mut out = Vec::new();
    let mut last: Option<&String> = None;
    let mut more = false;
    for (k, v) in items {
        if after.as_ref().is_some_and(|a| k.as_str() <= a.as_str()) {
            continue;
        }
        if out.len() == PAGE {
            more = true;
            break;
        }
        last = Some(k);
        out.push(v);
    }
    let next = if more {
        last.map(|k| encode_token(k))
    } else {
        None
    };
    Ok((out, next))
}

/// ISO 8601 UTC with milliseconds, as SNS stamps notifications: `2024-05-02T00:54:06.655Z`.
pub fn iso8601(ms: u64) -> String {
    crate::service::iso8601_ms(ms)
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Parses the booleans SNS attributes carry as strings ("true"/"false", any case).
pub fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// What follows "failed to parse JSON. " in AWS's message about a policy attribute that is not
/// JSON. AWS parses with Jackson and passes its message on; the two mistakes people make most
/// (a bare word, an unquoted key) get Jackson's words and location, anything else serde's.
pub fn json_error(text: &str, e: &serde_json::Error) -> String {
    let at = |line: usize, column: usize| {
        format!("\n at [Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled); line: {line}, column: {column}]")
    };
    let (line, column) = (e.line(), e.column());
    let rest = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.get(column.saturating_sub(1)..))
        .unwrap_or("");
    let Some(c) = rest.chars().next().filter(|c| c.is_ascii_graphic()) else {
        return e.to_string();
    };
    let what = e.to_string();
    if what.starts_with("key must be a string") {
        return format!(
            "Unexpected character ('{c}' (code {})): was expecting double-quote to start field name{}",
            c as u32,
            at(line, column)
        );
    }
    if what.starts_with("expected value") && c.is_ascii_alphabetic() {
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$'))
            .collect();
        return format!(
            "Unrecognized token '{token}': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false'){}",
            at(line, column + token.len())
        );
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_335_920_046_655), "2012-05-02T00:54:06.655Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn arns() {
        let a = parse_arn("arn:aws:sns:us-east-1:000000000000:t").unwrap();
        assert_eq!(
            (a.region, a.account, a.resource),
            ("us-east-1", "000000000000", "t")
        );
        assert!(parse_arn("arn:aws:sqs:us-east-1:0:t").is_none());
        assert!(parse_arn("nonsense").is_none());
    }

    #[test]
    fn json_errors_in_jacksons_words() {
        let msg = |text: &str| {
            let e = serde_json::from_str::<serde_json::Value>(text).unwrap_err();
            json_error(text, &e)
        };
        let src = "[Source: REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)";
        assert_eq!(
            msg("{invalidjson}"),
            format!("Unexpected character ('i' (code 105)): was expecting double-quote to start field name\n at {src}; line: 1, column: 2]")
        );
        assert_eq!(
            msg("invalid"),
            format!("Unrecognized token 'invalid': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')\n at {src}; line: 1, column: 8]")
        );
    }
}
