//! The query protocol: `Action=…&Param.1.Name=…` forms in, XML documents out.
//!
//! Requests are turned into the JSON-shaped documents services take by walking the operation's
//! input shape in the model, with botocore's rules for flattened and wrapped lists and maps.
//! Responses are rendered from the service's output document by walking the output shape.
//! Owns nothing else: no routing, no service calls.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Map, Number, Value};

use super::model::{Model, ShapeRef};
use crate::error::{Fault, ServiceError};

/// Form parameters, sorted so that the members of a list or map can be found by prefix.
pub type Params = BTreeMap<String, String>;

/// Parses `a=b&c=d` pairs (query string or form body) into `into`; a later duplicate wins, as
/// AWS does. Fails on a body that is not UTF-8.
pub fn parse_form(bytes: &[u8], into: &mut Params) -> Result<(), ServiceError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ServiceError::sender(
            "MalformedQueryString",
            "The request body is not valid UTF-8.",
        ));
    }
    for (k, v) in form_urlencoded::parse(bytes) {
        into.insert(k.into_owned(), v.into_owned());
    }
    Ok(())
}

/// Builds the input document of `op` from its form parameters.
pub fn input_document(model: &Model, op: &str, params: &Params) -> Result<Value, ServiceError> {
    match model.input(op) {
        Some(shape) => {
            Ok(parse_structure(shape, "", params)?.unwrap_or_else(|| Value::Object(Map::new())))
        }
        None => Ok(Value::Object(Map::new())),
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The distinct numeric indices directly below `prefix` (`prefix.3.x` → 3), sorted.
fn indices(params: &Params, prefix: &str) -> Vec<u64> {
    let dotted = format!("{prefix}.");
    let mut out: Vec<u64> = params
        .range(dotted.clone()..)
        .take_while(|(k, _)| k.starts_with(&dotted))
        .filter_map(|(k, _)| k[dotted.len()..].split('.').next()?.parse().ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn parse_structure(
    shape: ShapeRef<'_>,
    prefix: &str,
    params: &Params,
) -> Result<Option<Value>, ServiceError> {
    let mut obj = Map::new();
    for (name, member) in shape.members() {
        let key = join(prefix, member.location_name().unwrap_or(name));
        let value = match parse_value(member, &key, params)? {
            Some(v) => Some(v),
            // Clients disagree on whether a renamed member keeps its model name; accept both.
            None if member.location_name().is_some() => {
                parse_value(member, &join(prefix, name), params)?
            }
            None => None,
        };
        if let Some(v) = value {
            obj.insert(name.to_string(), v);
        }
    }
    Ok((!obj.is_empty()).then_some(Value::Object(obj)))
}

fn parse_value(
    shape: ShapeRef<'_>,
    key: &str,
    params: &Params,
) -> Result<Option<Value>, ServiceError> {
    match shape.kind() {
        "structure" => parse_structure(shape, key, params),
        "list" => parse_list(shape, key, params),
        "map" => parse_map(shape, key, params),
        _ => params
            .get(key)
            .map(|raw| scalar(shape, key, raw))
            .transpose(),
    }
}

/// The prefixes a list's items may sit under, the model's own first: botocore's rule, then the
/// wrapped and bare forms other SDKs send.
fn list_prefixes(shape: ShapeRef<'_>, key: &str) -> Vec<String> {
    let member_name = shape.member().and_then(|m| m.location_name());
    let mut out = Vec::with_capacity(3);
    if shape.flattened() {
        if let Some(name) = member_name {
            let parent = key.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
            out.push(join(parent, name));
        }
        out.push(key.to_string());
        out.push(format!("{key}.member"));
    } else {
        out.push(format!("{key}.{}", member_name.unwrap_or("member")));
        out.push(format!("{key}.member"));
        out.push(key.to_string());
    }
    out.dedup();
    out
}

fn parse_list(
    shape: ShapeRef<'_>,
    key: &str,
    params: &Params,
) -> Result<Option<Value>, ServiceError> {
    let Some(member) = shape.member() else {
        return Ok(None);
    };
    for prefix in list_prefixes(shape, key) {
        let idx = indices(params, &prefix);
        if idx.is_empty() {
            continue;
        }
        let mut items = Vec::with_capacity(idx.len());
        for i in idx {
            if let Some(v) = parse_value(member, &format!("{prefix}.{i}"), params)? {
                items.push(v);
            }
        }
        return Ok(Some(Value::Array(items)));
    }
    // `Key=` with no items is how botocore sends an empty list.
    Ok(params
        .get(key)
        .filter(|v| v.is_empty())
        .map(|_| Value::Array(Vec::new())))
}

fn parse_map(
    shape: ShapeRef<'_>,
    key: &str,
    params: &Params,
) -> Result<Option<Value>, ServiceError> {
    let (Some(k), Some(v)) = (shape.key(), shape.value()) else {
        return Ok(None);
    };
    let key_name = k.location_name().unwrap_or("key");
    let value_name = v.location_name().unwrap_or("value");
    let prefixes = if shape.flattened() {
        [key.to_string(), format!("{key}.entry")]
    } else {
        [format!("{key}.entry"), key.to_string()]
    };
    for prefix in prefixes {
        let idx = indices(params, &prefix);
        if idx.is_empty() {
            continue;
        }
        let mut obj = Map::new();
        for i in idx {
            let entry = format!("{prefix}.{i}");
            let Some(name) = params.get(&format!("{entry}.{key_name}")) else {
                return Err(ServiceError::sender(
                    "MissingParameter",
                    format!("The request must contain the parameter {entry}.{key_name}."),
                ));
            };
            if let Some(value) = parse_value(v, &format!("{entry}.{value_name}"), params)? {
                obj.insert(name.clone(), value);
            }
        }
        return Ok(Some(Value::Object(obj)));
    }
    Ok(None)
}

fn scalar(shape: ShapeRef<'_>, key: &str, raw: &str) -> Result<Value, ServiceError> {
    let bad = |what: &str| {
        ServiceError::sender(
            "InvalidParameterValue",
            format!("Value ({raw}) for parameter {key} is invalid. Must be {what}."),
        )
    };
    Ok(match shape.kind() {
        "integer" | "long" => Value::Number(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| bad("an integer"))?
                .into(),
        ),
        "float" | "double" => Number::from_f64(raw.trim().parse().map_err(|_| bad("a number"))?)
            .map(Value::Number)
            .ok_or_else(|| bad("a finite number"))?,
        "boolean" => match raw {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        _ => Value::String(raw.to_string()),
    })
}

/// Appends `s` to `out` with XML escaping. `\r` is escaped too: an XML parser would otherwise
/// turn it into `\n` and change a message body's bytes (and its MD5).
///
/// A character XML 1.0 does not allow at all (controls other than tab, newline and carriage
/// return; U+FFFE, U+FFFF), which not even a character reference may carry, becomes U+FFFD:
/// otherwise one such character, echoed from a request into an error message or stored in a tag
/// through the JSON protocol, makes the whole response unparsable for every XML client. Message
/// bodies and attribute values never hold one (they are refused on the way in).
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            '\0'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Renders a successful query response: `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…`.
pub fn render_response(model: &Model, op: &str, output: &Value, request_id: &str) -> String {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "<?xml version=\"1.0\"?><{op}Response xmlns=\"{}\">",
        model.xml_namespace()
    );
    if let Some(shape) = model.output(op) {
        let wrapper = shape
            .result_wrapper()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{op}Result"));
        let start = out.len();
        let _ = write!(out, "<{wrapper}>");
        let inner = out.len();
        if let Value::Object(obj) = output {
            write_members(&mut out, shape, obj);
        }
        if out.len() == inner {
            // An empty result is one self-closing element, as AWS writes it (LocalStack's
            // AWS-validated query-API test_get_send_and_receive_messages: an empty receive
            // is `<ReceiveMessageResult/>`).
            out.truncate(start);
            let _ = write!(out, "<{wrapper}/>");
        } else {
            let _ = write!(out, "</{wrapper}>");
        }
    }
    let _ = write!(
        out,
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>"
    );
    out
}

fn write_members(out: &mut String, shape: ShapeRef<'_>, obj: &Map<String, Value>) {
    for (name, member) in shape.members() {
        if let Some(v) = obj.get(name) {
            if !v.is_null() {
                write_value(out, member, member.location_name().unwrap_or(name), v);
            }
        }
    }
}

fn write_value(out: &mut String, shape: ShapeRef<'_>, el: &str, v: &Value) {
    match (shape.kind(), v) {
        ("structure", Value::Object(obj)) => {
            let _ = write!(out, "<{el}>");
            write_members(out, shape, obj);
            let _ = write!(out, "</{el}>");
        }
        ("list", Value::Array(items)) => {
            let Some(member) = shape.member() else { return };
            if shape.flattened() {
                let item_el = member.location_name().unwrap_or(el);
                for item in items {
                    write_value(out, member, item_el, item);
                }
            } else {
                let item_el = member.location_name().unwrap_or("member");
                let _ = write!(out, "<{el}>");
                for item in items {
                    write_value(out, member, item_el, item);
                }
                let _ = write!(out, "</{el}>");
            }
        }
        ("map", Value::Object(obj)) => {
            let (Some(k), Some(val)) = (shape.key(), shape.value()) else {
                return;
            };
            let key_el = k.location_name().unwrap_or("key");
            let value_el = val.location_name().unwrap_or("value");
            let flat = shape.flattened();
            if !flat {
                let _ = write!(out, "<{el}>");
            }
            for (key, value) in obj {
                let _ = write!(out, "<{}>", if flat { el } else { "entry" });
                let _ = write!(out, "<{key_el}>");
                escape_into(out, key);
                let _ = write!(out, "</{key_el}>");
                write_value(out, val, value_el, value);
                let _ = write!(out, "</{}>", if flat { el } else { "entry" });
            }
            if !flat {
                let _ = write!(out, "</{el}>");
            }
        }
        ("timestamp", Value::Number(n)) => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).max(0.0) as u64;
            let _ = write!(out, "<{el}>{}</{el}>", crate::service::iso8601_ms(ms));
        }
        (_, Value::String(s)) => {
            let _ = write!(out, "<{el}>");
            escape_into(out, s);
            let _ = write!(out, "</{el}>");
        }
        (_, Value::Bool(b)) => {
            let _ = write!(out, "<{el}>{b}</{el}>");
        }
        (_, Value::Number(n)) => {
            let _ = write!(out, "<{el}>{n}</{el}>");
        }
        // A value of the wrong JSON type for its shape is a service bug; render it as text
        // rather than drop it silently.
        (_, other) => {
            let _ = write!(out, "<{el}>");
            escape_into(out, &other.to_string());
            let _ = write!(out, "</{el}>");
        }
    }
}

/// Renders an `ErrorResponse` document. `detail`: with the empty `<Detail/>` member SQS's
/// errors carry; SNS's have none (LocalStack's AWS-recorded raw XML of
/// test_subscribe_external_http_endpoint), and boto3 would show it as `Detail: None`.
pub fn render_error(namespace: &str, detail: bool, err: &ServiceError, request_id: &str) -> String {
    let mut out = String::with_capacity(256);
    let fault = match err.fault {
        Fault::Sender => "Sender",
        Fault::Receiver => "Receiver",
    };
    let _ = write!(
        out,
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{namespace}\"><Error><Type>{fault}</Type><Code>"
    );
    escape_into(&mut out, &err.query_code);
    out.push_str("</Code><Message>");
    escape_into(&mut out, err.query_message.unwrap_or(&err.message));
    out.push_str(if detail {
        "</Message><Detail/></Error>"
    } else {
        "</Message></Error>"
    });
    let _ = write!(out, "<RequestId>{request_id}</RequestId></ErrorResponse>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::model::{model, ServiceName};
    use serde_json::json;

    #[test]
    fn characters_xml_forbids_are_replaced() {
        let mut out = String::new();
        escape_into(
            &mut out,
            "a\u{0}b\u{1}c\u{1F}d\u{FFFE}e\u{FFFF}f\tg\nh\ri<&\u{FFFD}\u{10FFFF}",
        );
        assert_eq!(
            out,
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}f\tg\nh&#xD;i&lt;&amp;\u{FFFD}\u{10FFFF}"
        );
    }

    fn form(s: &str) -> Params {
        let mut p = Params::new();
        parse_form(s.as_bytes(), &mut p).unwrap();
        p
    }

    #[test]
    fn sqs_flattened_maps_and_lists_become_json_shapes() {
        let m = model(ServiceName::Sqs);
        let p = form(
            "Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F0%2Fq\
            &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=hi\
            &SendMessageBatchRequestEntry.1.DelaySeconds=5\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=color\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
            &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=red\
            &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=yo",
        );
        let doc = input_document(m, "SendMessageBatch", &p).unwrap();
        assert_eq!(
            doc,
            json!({"QueueUrl": "http://h/0/q", "Entries": [
                {"Id": "a", "MessageBody": "hi", "DelaySeconds": 5,
                 "MessageAttributes": {"color": {"StringValue": "red", "DataType": "String"}}},
                {"Id": "b", "MessageBody": "yo"}]})
        );
    }

    #[test]
    fn sqs_attribute_names_tags_and_queue_attributes() {
        let m = model(ServiceName::Sqs);
        let p = form("AttributeName.1=All&AttributeName.2=Policy&QueueUrl=u");
        assert_eq!(
            input_document(m, "GetQueueAttributes", &p).unwrap(),
            json!({"QueueUrl": "u", "AttributeNames": ["All", "Policy"]})
        );
        // Both lists of ReceiveMessage, each under its own name.
        let p = form("QueueUrl=u&AttributeName.1=SenderId&MessageSystemAttributeName.1=All");
        assert_eq!(
            input_document(m, "ReceiveMessage", &p).unwrap(),
            json!({"QueueUrl": "u", "AttributeNames": ["SenderId"], "MessageSystemAttributeNames": ["All"]})
        );
        let p = form("QueueName=q&Attribute.1.Name=DelaySeconds&Attribute.1.Value=3&Tag.1.Key=k&Tag.1.Value=v");
        assert_eq!(
            input_document(m, "CreateQueue", &p).unwrap(),
            json!({"QueueName": "q", "Attributes": {"DelaySeconds": "3"}, "tags": {"k": "v"}})
        );
    }

    #[test]
    fn sns_wrapped_lists_and_entry_maps() {
        let m = model(ServiceName::Sns);
        let p = form(
            "Name=t&Attributes.entry.1.key=DisplayName&Attributes.entry.1.value=x\
            &Tags.member.1.Key=a&Tags.member.1.Value=b",
        );
        assert_eq!(
            input_document(m, "CreateTopic", &p).unwrap(),
            json!({"Name": "t", "Attributes": {"DisplayName": "x"}, "Tags": [{"Key": "a", "Value": "b"}]})
        );
    }

    #[test]
    fn bad_integer_is_invalid_parameter_value() {
        let m = model(ServiceName::Sqs);
        let err = input_document(
            m,
            "ReceiveMessage",
            &form("QueueUrl=u&MaxNumberOfMessages=ten"),
        )
        .unwrap_err();
        assert_eq!(err.code, "InvalidParameterValue");
    }

    #[test]
    fn an_empty_result_is_one_self_closing_element() {
        let m = model(ServiceName::Sqs);
        let xml = render_response(m, "ReceiveMessage", &json!({}), "rid");
        assert!(
            xml.contains("<ReceiveMessageResult/><ResponseMetadata>"),
            "{xml}"
        );
    }

    #[test]
    fn receive_message_renders_flattened_xml() {
        let m = model(ServiceName::Sqs);
        let out = json!({"Messages": [{"MessageId": "m1", "Body": "a<b\r", "Attributes": {"SentTimestamp": "1"},
            "MessageAttributes": {"c": {"StringValue": "r", "DataType": "String"}}}]});
        let xml = render_response(m, "ReceiveMessage", &out, "rid");
        assert!(xml.contains("<ReceiveMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ReceiveMessageResult><Message><MessageId>m1</MessageId>"), "{xml}");
        assert!(xml.contains("<Body>a&lt;b&#xD;</Body>"), "{xml}");
        assert!(
            xml.contains("<Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>"),
            "{xml}"
        );
        assert!(xml.contains("<MessageAttribute><Name>c</Name><Value><StringValue>r</StringValue><DataType>String</DataType></Value></MessageAttribute>"), "{xml}");
        assert!(xml.ends_with("<ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></ReceiveMessageResponse>"));
    }

    #[test]
    fn sns_lists_render_with_member_wrappers() {
        let m = model(ServiceName::Sns);
        let xml = render_response(
            m,
            "ListTopics",
            &json!({"Topics": [{"TopicArn": "arn:1"}], "NextToken": "n"}),
            "r",
        );
        assert!(xml.contains("<ListTopicsResult><Topics><member><TopicArn>arn:1</TopicArn></member></Topics><NextToken>n</NextToken></ListTopicsResult>"), "{xml}");
    }

    #[test]
    fn responses_without_output_have_only_metadata() {
        let m = model(ServiceName::Sqs);
        let xml = render_response(m, "DeleteMessage", &Value::Null, "r");
        assert_eq!(xml, "<?xml version=\"1.0\"?><DeleteMessageResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DeleteMessageResponse>");
    }
}
