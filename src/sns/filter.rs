//! The SNS subscription filter policy language: parsing (with AWS's validation and limits) and
//! matching against message attributes or a JSON message body. Pure: no state, no I/O.
//!
//! Supported: exact strings, numbers, booleans and null; `prefix`, `suffix`,
//! `equals-ignore-case`, `anything-but` (a value, a list of values, `{"prefix"}`, `{"suffix"}`),
//! `numeric` (`=` or a range with up to one lower and one upper bound), `exists`, `cidr`
//! (IPv4/IPv6), `$or` at any level, nested keys (MessageBody scope only). Within one key the
//! conditions are OR-ed; keys are AND-ed. Arrays in the message (String.Array attributes, arrays
//! in the body) match when any element matches.
//!
//! Limits, as AWS documents them: at most 5 top-level keys (for nested policies only parent keys
//! count), at most 150 value combinations (nested keys multiply by their depth), policies at most
//! 256 KiB; numbers within ±1e9 with at most 5 decimal places.
//!
//! Parse errors are AWS's messages without the "Invalid parameter: " prefix (Subscribe adds
//! "Attributes Reason: " before them, SetSubscriptionAttributes does not).

use std::net::IpAddr;

use serde_json::{Map, Value};

pub const MAX_KEYS: usize = 5;
pub const MAX_COMBINATIONS: usize = 150;
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
const MAX_NUMBER: f64 = 1e9;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    MessageAttributes,
    MessageBody,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "MessageAttributes" => Some(Scope::MessageAttributes),
            "MessageBody" => Some(Scope::MessageBody),
            _ => None,
        }
    }
}

/// A parsed filter policy: all clauses must match.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    clauses: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq)]
enum Clause {
    /// The value(s) at `path` must satisfy at least one condition.
    Field { path: Vec<String>, conds: Vec<Cond> },
    /// At least one branch must match.
    Or(Vec<Policy>),
}

#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug, PartialEq)]
enum Cond {
    Exact(Scalar),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(String),
    AnythingBut(Vec<Scalar>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    /// (lower bound, inclusive), (upper bound, inclusive); `=` is both bounds inclusive.
    Numeric(Option<(f64, bool)>, Option<(f64, bool)>),
    Exists(bool),
    Cidr(IpAddr, u8),
}

/// Parses and validates a policy. The error is AWS's message after "Invalid parameter: ".
pub fn parse(text: &str, scope: Scope) -> Result<Policy, String> {
    let fail = |m: &str| format!("FilterPolicy: {m}");
    if text.len() > MAX_POLICY_BYTES {
        return Err(fail("Filter policy is too long"));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        fail(&format!(
            "failed to parse JSON. {}",
            super::util::json_error(text, &e)
        ))
    })?;
    let Value::Object(obj) = v else {
        return Err(fail("Filter policy must be a JSON object"));
    };
    let p = parse_object(&obj, &[]).map_err(|m| fail(&m))?;
    // AWS reads the whole policy before it holds the nesting against the scope: a malformed
    // nested policy gets the reason it is malformed, whatever the scope.
    if scope == Scope::MessageAttributes && p.is_nested() {
        return Err(
            "Filter policy scope MessageAttributes does not support nested filter policy".into(),
        );
    }
    if obj.len() > MAX_KEYS {
        return Err(fail("Filter policy can not have more than 5 keys"));
    }
    if p.combinations() > MAX_COMBINATIONS {
        return Err(fail("Filter policy is too complex"));
    }
    Ok(p)
}

fn parse_object(obj: &Map<String, Value>, prefix: &[String]) -> Result<Policy, String> {
    let mut clauses = Vec::new();
    for (k, v) in obj {
        if k == "$or" {
            let Value::Array(branches) = v else {
                return Err("$or must be an array of objects".into());
            };
            if branches.len() < 2 {
                return Err("$or must contain at least two objects".into());
            }
            let mut ps = Vec::new();
            for b in branches {
                let Value::Object(bo) = b else {
                    return Err("$or must be an array of objects".into());
                };
                ps.push(parse_object(bo, prefix)?);
            }
            clauses.push(Clause::Or(ps));
            continue;
        }
        let mut path = prefix.to_vec();
        path.push(k.clone());
        match v {
            Value::Object(inner) => {
                if inner.is_empty() {
                    return Err("Empty objects are not allowed".into());
                }
                let p = parse_object(inner, &path)?;
                clauses.extend(p.clauses);
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return Err("Empty arrays are not allowed".into());
                }
                let conds = items
                    .iter()
                    .map(parse_cond)
                    .collect::<Result<Vec<_>, _>>()?;
                clauses.push(Clause::Field { path, conds });
            }
            _ => return Err(format!("\"{k}\" must be an object or an array")),
        }
    }
    if clauses.is_empty() && !prefix.is_empty() {
        return Err("Empty objects are not allowed".into());
    }
    Ok(Policy { clauses })
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn check_number(n: f64) -> Result<f64, String> {
    if !(-MAX_NUMBER..=MAX_NUMBER).contains(&n) {
        return Err("Numeric value must be between -1.0E9 and 1.0E9, inclusive".into());
    }
    // At most 5 decimal places.
    let scaled = n * 100_000.0;
    if (scaled - scaled.round()).abs() > 1e-6 * scaled.abs().max(1.0) {
        return Err("Numeric value must have at most 5 decimal places".into());
    }
    Ok(n)
}

fn scalar(v: &Value) -> Result<Scalar, String> {
    Ok(match v {
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Number(_) => Scalar::Num(check_number(number(v).unwrap_or(f64::NAN))?),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Null => Scalar::Null,
        _ => return Err("Match value must be String, number, true, false, or null".into()),
    })
}

fn string_operand(op: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(format!("{op} match pattern must be a string")),
    }
}

fn parse_cond(v: &Value) -> Result<Cond, String> {
    let Value::Object(o) = v else {
        return scalar(v).map(Cond::Exact);
    };
    if o.len() != 1 {
        return Err("Only one key allowed in match expression".into());
    }
    let (op, arg) = o.iter().next().ok_or("Empty match expression")?;
    Ok(match op.as_str() {
        "prefix" => Cond::Prefix(string_operand("prefix", arg)?),
        "suffix" => Cond::Suffix(string_operand("suffix", arg)?),
        "equals-ignore-case" => Cond::EqualsIgnoreCase(string_operand("equals-ignore-case", arg)?),
        "exists" => match arg {
            Value::Bool(b) => Cond::Exists(*b),
            _ => return Err("exists match pattern must be either true or false.".into()),
        },
        "anything-but" => match arg {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err("Empty arrays are not allowed".into());
                }
                let mut vals = Vec::new();
                for i in items {
                    match i {
                        Value::String(_) | Value::Number(_) => vals.push(scalar(i)?),
                        _ => {
                            return Err(
                                "Inside anything but list, start|null|boolean is not supported."
                                    .into(),
                            )
                        }
                    }
                }
                Cond::AnythingBut(vals)
            }
            Value::String(_) | Value::Number(_) => Cond::AnythingBut(vec![scalar(arg)?]),
            Value::Object(inner) => {
                if inner.len() != 1 {
                    return Err("Only one key allowed in match expression".into());
                }
                match inner.iter().next() {
                    Some((k, Value::String(s))) if k == "prefix" => {
                        Cond::AnythingButPrefix(s.clone())
                    }
                    Some((k, Value::String(s))) if k == "suffix" => {
                        Cond::AnythingButSuffix(s.clone())
                    }
                    Some((k, _)) if k == "prefix" || k == "suffix" => {
                        return Err(format!("{k} match pattern must be a string"))
                    }
                    Some((k, _)) => return Err(format!("Unsupported anything-but pattern: {k}")),
                    None => return Err("Empty match expression".into()),
                }
            }
            _ => {
                return Err(
                    "Value of anything-but must be an array or single string/number value.".into(),
                )
            }
        },
        "numeric" => parse_numeric(arg)?,
        "cidr" => parse_cidr(arg)?,
        other => return Err(format!("Unrecognized match type {other}")),
    })
}

fn parse_numeric(arg: &Value) -> Result<Cond, String> {
    let Value::Array(items) = arg else {
        return Err("Value of numeric must be an array.".into());
    };
    let mut it = items.iter();
    let op = |v: Option<&Value>, what: &str| -> Result<String, String> {
        match v {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{what}: {other}")),
            None => Err(format!("{what}: ]")),
        }
    };
    let operand = |v: Option<&Value>, op: &str| -> Result<f64, String> {
        let name = if op == "=" { "equals" } else { op };
        match v.and_then(Value::as_f64) {
            Some(n) => check_number(n),
            None => Err(format!("Value of {name} must be numeric")),
        }
    };
    let first = op(it.next(), "Invalid member in numeric match")?;
    if !matches!(first.as_str(), "<" | "<=" | "=" | ">" | ">=") {
        return Err(format!("Unrecognized numeric range operator: {first}"));
    }
    let lo = operand(it.next(), &first)?;
    let Some(next) = it.next() else {
        return Ok(match first.as_str() {
            "=" => Cond::Numeric(Some((lo, true)), Some((lo, true))),
            ">" | ">=" => Cond::Numeric(Some((lo, first == ">=")), None),
            _ => Cond::Numeric(None, Some((lo, first == "<="))),
        });
    };
    if first != ">" && first != ">=" {
        return Err("Too many elements in numeric expression".into());
    }
    let second = op(Some(next), "Bad value in numeric range")?;
    if second != "<" && second != "<=" {
        return Err(format!("Bad numeric range operator: {second}"));
    }
    let hi = operand(it.next(), &second)?;
    if hi <= lo {
        return Err("Bottom must be less than top".into());
    }
    if it.next().is_some() {
        return Err("Too many terms in numeric range expression".into());
    }
    Ok(Cond::Numeric(
        Some((lo, first == ">=")),
        Some((hi, second == "<=")),
    ))
}

/// AWS's checks and words, in its order (LocalStack's AWS-validated
/// `test_validate_policy_string_operators`): a non-string gets the prefix operator's message,
/// then the slash, the mask, and last the address.
fn parse_cidr(arg: &Value) -> Result<Cond, String> {
    let Value::String(s) = arg else {
        return Err("prefix match pattern must be a string".into());
    };
    let (ip, bits) = match s.split('/').collect::<Vec<_>>()[..] {
        [ip, bits] => (ip, bits),
        _ => return Err("Malformed CIDR, one '/' required".into()),
    };
    let bits: u8 = bits
        .parse()
        .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("Nonstandard IP address: {ip}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max {
        return Err(format!(
            "Malformed CIDR, mask bits must be between 0 and {max}: {s}"
        ));
    }
    Ok(Cond::Cidr(ip, bits))
}

impl Policy {
    /// Whether any key sits below another (`$or` branches do not nest by themselves).
    fn is_nested(&self) -> bool {
        self.clauses.iter().any(|c| match c {
            Clause::Field { path, .. } => path.len() > 1,
            Clause::Or(ps) => ps.iter().any(Policy::is_nested),
        })
    }

    /// Total value combinations as AWS counts them: products over keys (a key nested `d` levels
    /// deep counts its values `d` times over), sums over `$or` branches.
    fn combinations(&self) -> usize {
        self.clauses.iter().fold(1usize, |acc, c| {
            let n = match c {
                Clause::Field { conds, path } => conds.len() * path.len(),
                Clause::Or(ps) => ps.iter().map(Policy::combinations).sum(),
            };
            acc.saturating_mul(n)
        })
    }

    /// Matches message attributes in their JSON request shape:
    /// `{"name": {"DataType": "String", "StringValue": "v"}}`.
    pub fn matches_attributes(&self, attrs: &Map<String, Value>) -> bool {
        // AWS: `"exists": false` "only matches if at least one attribute is present"; a
        // message without attributes matches no policy (every other operator needs its key).
        if attrs.is_empty() {
            return self.clauses.is_empty();
        }
        self.matches_with(&|path: &[String]| {
            let [name] = path else { return None };
            let a = attrs.get(name)?;
            let dt = a.get("DataType").and_then(Value::as_str).unwrap_or("");
            let sv = a.get("StringValue").and_then(Value::as_str);
            if dt.starts_with("Binary") {
                // AWS does not filter on Binary attributes: the key counts as present only.
                return Some(vec![]);
            }
            let sv = sv?;
            Some(if dt == "String.Array" {
                // Not an array but other JSON (`100`): that one value, as moto's tests take
                // AWS's behaviour to be ("100" matches a policy of [100, 500]).
                match serde_json::from_str::<Value>(sv) {
                    Ok(Value::Array(items)) => items.iter().filter_map(to_scalar).collect(),
                    Ok(other) => to_scalar(&other).into_iter().collect(),
                    Err(_) => vec![Scalar::Str(sv.to_string())],
                }
            } else if dt.starts_with("Number") {
                match sv.trim().parse::<f64>() {
                    Ok(n) => vec![Scalar::Num(n)],
                    Err(_) => vec![Scalar::Str(sv.to_string())],
                }
            } else {
                vec![Scalar::Str(sv.to_string())]
            })
        })
    }

    /// Matches a message body; a body that is not a JSON object matches nothing.
    pub fn matches_body(&self, body: &str) -> bool {
        match serde_json::from_str::<Value>(body) {
            Ok(v @ Value::Object(_)) => self.matches_value(&v),
            _ => false,
        }
    }

    pub fn matches_value(&self, body: &Value) -> bool {
        self.matches_with(&|path: &[String]| {
            // A dot in a key is a level of nesting, in the policy and in the body alike:
            // `{"a.b": [..]}` matches `{"a": {"b": ..}}` and `{"a.b": ..}` (LocalStack's
            // AWS-validated `test_filter_policy_on_message_body_dot_attribute`).
            let levels: Vec<&str> = path.iter().flat_map(|k| k.split('.')).collect();
            let mut out = Vec::new();
            let mut found = false;
            collect(body, &levels, &mut out, &mut found);
            found.then_some(out)
        })
    }

    /// `lookup(path)` gives `None` when the key is absent, else the leaf values there.
    fn matches_with(&self, lookup: &dyn Fn(&[String]) -> Option<Vec<Scalar>>) -> bool {
        self.clauses.iter().all(|c| match c {
            Clause::Or(ps) => ps.iter().any(|p| p.matches_with(lookup)),
            Clause::Field { path, conds } => {
                let vals = lookup(path);
                conds.iter().any(|cond| cond_matches(cond, vals.as_deref()))
            }
        })
    }
}

fn to_scalar(v: &Value) -> Option<Scalar> {
    Some(match v {
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Number(n) => Scalar::Num(n.as_f64()?),
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Null => Scalar::Null,
        _ => return None,
    })
}

/// Walks `path` (levels, no dots) into `v`, descending through arrays, collecting leaf
/// scalars. A key of the body may span several levels (`"a.b"`): each run of levels is
/// looked up joined.
fn collect(v: &Value, path: &[&str], out: &mut Vec<Scalar>, found: &mut bool) {
    match v {
        Value::Array(items) => {
            for i in items {
                collect(i, path, out, found);
            }
        }
        Value::Object(o) => {
            let mut key = String::new();
            for (i, level) in path.iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                key.push_str(level);
                if let Some(next) = o.get(&key) {
                    collect(next, &path[i + 1..], out, found);
                }
            }
        }
        other => {
            if path.is_empty() {
                *found = true;
                if let Some(s) = to_scalar(other) {
                    out.push(s);
                }
            }
        }
    }
}

fn num_eq(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn scalar_eq(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Num(x), Scalar::Num(y)) => num_eq(*x, *y),
        _ => a == b,
    }
}

fn cond_matches(cond: &Cond, vals: Option<&[Scalar]>) -> bool {
    match cond {
        Cond::Exists(want) => vals.is_some() == *want,
        _ => vals.is_some_and(|vs| vs.iter().any(|v| value_matches(cond, v))),
    }
}

fn value_matches(cond: &Cond, v: &Scalar) -> bool {
    let s = match v {
        Scalar::Str(s) => Some(s.as_str()),
        _ => None,
    };
    match cond {
        Cond::Exact(want) => scalar_eq(want, v),
        Cond::Prefix(p) => s.is_some_and(|s| s.starts_with(p.as_str())),
        Cond::Suffix(p) => s.is_some_and(|s| s.ends_with(p.as_str())),
        Cond::EqualsIgnoreCase(p) => s.is_some_and(|s| s.to_lowercase() == p.to_lowercase()),
        Cond::AnythingBut(list) => !list.iter().any(|x| scalar_eq(x, v)),
        Cond::AnythingButPrefix(p) => s.is_some_and(|s| !s.starts_with(p.as_str())),
        Cond::AnythingButSuffix(p) => s.is_some_and(|s| !s.ends_with(p.as_str())),
        Cond::Numeric(lo, hi) => {
            let Scalar::Num(n) = v else { return false };
            let n = *n;
            lo.is_none_or(|(b, inc)| {
                if inc {
                    n >= b || num_eq(n, b)
                } else {
                    n > b && !num_eq(n, b)
                }
            }) && hi.is_none_or(|(b, inc)| {
                if inc {
                    n <= b || num_eq(n, b)
                } else {
                    n < b && !num_eq(n, b)
                }
            })
        }
        Cond::Cidr(net, bits) => s
            .and_then(|s| s.parse::<IpAddr>().ok())
            .is_some_and(|ip| in_cidr(ip, *net, *bits)),
        Cond::Exists(_) => true,
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits as u32)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits as u32)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else {
            panic!("object")
        };
        m
    }

    fn s(v: &str) -> Value {
        json!({"DataType": "String", "StringValue": v})
    }
    fn n(v: &str) -> Value {
        json!({"DataType": "Number", "StringValue": v})
    }
    fn arr(v: &str) -> Value {
        json!({"DataType": "String.Array", "StringValue": v})
    }

    /// (policy, attributes, expected match)
    #[test]
    fn attribute_table() {
        let cases: Vec<(Value, Value, bool)> = vec![
            // exact string
            (json!({"a": ["x"]}), json!({"a": s("x")}), true),
            (json!({"a": ["x"]}), json!({"a": s("y")}), false),
            (json!({"a": ["x", "y"]}), json!({"a": s("y")}), true),
            (json!({"a": ["x"]}), json!({}), false),
            // exact number
            (json!({"a": [5]}), json!({"a": n("5.0")}), true),
            (json!({"a": [5]}), json!({"a": n("6")}), false),
            (json!({"a": [5]}), json!({"a": s("5")}), false),
            // prefix / suffix
            (
                json!({"a": [{"prefix": "ab"}]}),
                json!({"a": s("abc")}),
                true,
            ),
            (
                json!({"a": [{"prefix": "ab"}]}),
                json!({"a": s("cab")}),
                false,
            ),
            (
                json!({"a": [{"suffix": "bc"}]}),
                json!({"a": s("abc")}),
                true,
            ),
            (
                json!({"a": [{"suffix": "bc"}]}),
                json!({"a": s("bca")}),
                false,
            ),
            // equals-ignore-case
            (
                json!({"a": [{"equals-ignore-case": "HeLLo"}]}),
                json!({"a": s("hello")}),
                true,
            ),
            (
                json!({"a": [{"equals-ignore-case": "hello"}]}),
                json!({"a": s("hell")}),
                false,
            ),
            // anything-but
            (
                json!({"a": [{"anything-but": ["x", "y"]}]}),
                json!({"a": s("z")}),
                true,
            ),
            (
                json!({"a": [{"anything-but": ["x", "y"]}]}),
                json!({"a": s("x")}),
                false,
            ),
            (json!({"a": [{"anything-but": "x"}]}), json!({}), false),
            (
                json!({"a": [{"anything-but": 5}]}),
                json!({"a": n("5")}),
                false,
            ),
            (
                json!({"a": [{"anything-but": 5}]}),
                json!({"a": n("6")}),
                true,
            ),
            (
                json!({"a": [{"anything-but": {"prefix": "ab"}}]}),
                json!({"a": s("abc")}),
                false,
            ),
            (
                json!({"a": [{"anything-but": {"prefix": "ab"}}]}),
                json!({"a": s("xbc")}),
                true,
            ),
            (
                json!({"a": [{"anything-but": {"suffix": "bc"}}]}),
                json!({"a": s("abc")}),
                false,
            ),
            (
                json!({"a": [{"anything-but": {"suffix": "bc"}}]}),
                json!({"a": s("abx")}),
                true,
            ),
            // numeric
            (
                json!({"a": [{"numeric": ["=", 10]}]}),
                json!({"a": n("10")}),
                true,
            ),
            (
                json!({"a": [{"numeric": ["=", 10]}]}),
                json!({"a": n("10.5")}),
                false,
            ),
            (
                json!({"a": [{"numeric": [">", 0, "<=", 5]}]}),
                json!({"a": n("5")}),
                true,
            ),
            (
                json!({"a": [{"numeric": [">", 0, "<=", 5]}]}),
                json!({"a": n("0")}),
                false,
            ),
            (
                json!({"a": [{"numeric": [">=", 0, "<", 5]}]}),
                json!({"a": n("0")}),
                true,
            ),
            (
                json!({"a": [{"numeric": [">=", 0, "<", 5]}]}),
                json!({"a": n("5")}),
                false,
            ),
            (
                json!({"a": [{"numeric": ["<", 0]}]}),
                json!({"a": n("-1")}),
                true,
            ),
            (
                json!({"a": [{"numeric": [">", 0]}]}),
                json!({"a": s("1")}),
                false,
            ),
            // exists
            (json!({"a": [{"exists": true}]}), json!({"a": s("v")}), true),
            (json!({"a": [{"exists": true}]}), json!({}), false),
            // AWS: "exists": false only matches when some attribute is present.
            (json!({"a": [{"exists": false}]}), json!({}), false),
            (
                json!({"a": [{"exists": false}]}),
                json!({"b": s("v")}),
                true,
            ),
            (
                json!({"a": [{"exists": false}]}),
                json!({"a": s("v")}),
                false,
            ),
            // cidr
            (
                json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
                json!({"ip": s("10.0.0.255")}),
                true,
            ),
            (
                json!({"ip": [{"cidr": "10.0.0.0/24"}]}),
                json!({"ip": s("10.0.1.0")}),
                false,
            ),
            (
                json!({"ip": [{"cidr": "2001:db8::/32"}]}),
                json!({"ip": s("2001:db8::1")}),
                true,
            ),
            (
                json!({"ip": [{"cidr": "2001:db8::/32"}]}),
                json!({"ip": s("2001:db9::1")}),
                false,
            ),
            // String.Array: any element
            (
                json!({"a": ["x"]}),
                json!({"a": arr("[\"y\",\"x\"]")}),
                true,
            ),
            (
                json!({"a": ["x"]}),
                json!({"a": arr("[\"y\",\"z\"]")}),
                false,
            ),
            (json!({"a": [5]}), json!({"a": arr("[1, 5]")}), true),
            // Not an array: other JSON is that one value; text that is not JSON is a string.
            (json!({"a": [100, 500]}), json!({"a": arr("100")}), true),
            (
                json!({"a": [100, 500]}),
                json!({"a": arr("one hundred")}),
                false,
            ),
            // AND across keys
            (
                json!({"a": ["x"], "b": ["y"]}),
                json!({"a": s("x"), "b": s("y")}),
                true,
            ),
            (
                json!({"a": ["x"], "b": ["y"]}),
                json!({"a": s("x"), "b": s("z")}),
                false,
            ),
            // $or
            (
                json!({"$or": [{"a": ["x"]}, {"b": ["y"]}]}),
                json!({"b": s("y")}),
                true,
            ),
            (
                json!({"$or": [{"a": ["x"]}, {"b": ["y"]}]}),
                json!({"b": s("x")}),
                false,
            ),
            (
                json!({"c": ["z"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}),
                json!({"a": s("x"), "c": s("z")}),
                true,
            ),
            (
                json!({"c": ["z"], "$or": [{"a": ["x"]}, {"b": ["y"]}]}),
                json!({"a": s("x")}),
                false,
            ),
            // an empty policy matches everything
            (json!({}), json!({}), true),
        ];
        for (i, (policy, a, want)) in cases.into_iter().enumerate() {
            let p = parse(&policy.to_string(), Scope::MessageAttributes)
                .unwrap_or_else(|e| panic!("case {i}: {policy} failed to parse: {e}"));
            assert_eq!(
                p.matches_attributes(&attrs(a.clone())),
                want,
                "case {i}: {policy} vs {a}"
            );
        }
    }

    #[test]
    fn body_table() {
        let cases: Vec<(Value, Value, bool)> = vec![
            (json!({"a": ["x"]}), json!({"a": "x"}), true),
            (json!({"a": {"b": ["x"]}}), json!({"a": {"b": "x"}}), true),
            (json!({"a": {"b": ["x"]}}), json!({"a": {"b": "y"}}), false),
            (
                json!({"a": {"b": ["x"]}}),
                json!({"a": [{"b": "y"}, {"b": "x"}]}),
                true,
            ),
            (
                json!({"a": {"b": [5]}}),
                json!({"a": {"b": [1, 2, 5]}}),
                true,
            ),
            (
                json!({"a": {"b": [{"numeric": [">", 3]}]}}),
                json!({"a": {"b": 2}}),
                false,
            ),
            (json!({"a": [true]}), json!({"a": true}), true),
            (json!({"a": [null]}), json!({"a": null}), true),
            (json!({"a": [null]}), json!({"a": "null"}), false),
            (
                json!({"a": {"b": [{"exists": false}]}}),
                json!({"a": {"c": 1}}),
                true,
            ),
            (
                json!({"a": {"b": [{"exists": true}]}}),
                json!({"a": {"c": 1}}),
                false,
            ),
            (
                json!({"$or": [{"a": {"b": ["x"]}}, {"c": ["y"]}]}),
                json!({"c": "y"}),
                true,
            ),
            (
                json!({"a": {"$or": [{"b": ["x"]}, {"c": ["y"]}]}}),
                json!({"a": {"c": "y"}}),
                true,
            ),
            (
                json!({"a": {"$or": [{"b": ["x"]}, {"c": ["y"]}]}}),
                json!({"c": "y"}),
                false,
            ),
            // A dot in a key is a level of nesting on either side (LocalStack's
            // AWS-validated test_filter_policy_on_message_body_dot_attribute).
            (json!({"o.n": ["v"]}), json!({"o": {"n": "v"}}), true),
            (json!({"o.n": ["v"]}), json!({"o.n": "v"}), true),
            (json!({"o.n": ["v"]}), json!({"o": {"n": "w"}}), false),
            (
                json!({"o.n.t": ["v"]}),
                json!({"o": {"n": {"t": "v"}}}),
                true,
            ),
            (json!({"o.n.t": ["v"]}), json!({"o.n.t": "v"}), true),
            (json!({"o.n.t": ["v"]}), json!({"o.n": {"t": "v"}}), true),
            (json!({"o.n.t": ["v"]}), json!({"o": {"n.t": "v"}}), true),
            (json!({"o": {"n": ["v"]}}), json!({"o.n": "v"}), true),
            (
                json!({"o": {"n": ["v"]}}),
                json!({"o": [{"n.x": "v"}]}),
                false,
            ),
            (
                json!({"o.n": [{"exists": false}]}),
                json!({"o.n": "v"}),
                false,
            ),
        ];
        for (i, (policy, body, want)) in cases.into_iter().enumerate() {
            let p = parse(&policy.to_string(), Scope::MessageBody)
                .unwrap_or_else(|e| panic!("case {i}: {policy} failed to parse: {e}"));
            assert_eq!(
                p.matches_body(&body.to_string()),
                want,
                "case {i}: {policy} vs {body}"
            );
        }
        let p = parse(r#"{"a":["x"]}"#, Scope::MessageBody).unwrap();
        assert!(!p.matches_body("not json"));
    }

    #[test]
    fn validation_errors() {
        let bad: Vec<(Value, Scope, &str)> = vec![
            (
                json!({"a": [{"prefi": "x"}]}),
                Scope::MessageAttributes,
                "Unrecognized match type prefi",
            ),
            (json!({"a": []}), Scope::MessageAttributes, "Empty arrays"),
            (
                json!({"a": "x"}),
                Scope::MessageAttributes,
                "must be an object or an array",
            ),
            (
                json!({"a": {"b": ["x"]}}),
                Scope::MessageAttributes,
                "does not support nested",
            ),
            (
                json!({"a": [{"prefix": 1}]}),
                Scope::MessageAttributes,
                "prefix match pattern must be a string",
            ),
            (
                json!({"a": [{"exists": "yes"}]}),
                Scope::MessageAttributes,
                "exists match pattern",
            ),
            (
                json!({"a": [{"numeric": [">", "x"]}]}),
                Scope::MessageAttributes,
                "must be numeric",
            ),
            (
                json!({"a": [{"numeric": ["<", 5, ">", 1]}]}),
                Scope::MessageAttributes,
                "Too many elements in numeric expression",
            ),
            (
                json!({"a": [{"numeric": [">", 5, ">", 1]}]}),
                Scope::MessageAttributes,
                "Bad numeric range operator: >",
            ),
            (
                json!({"a": [{"numeric": [">", 1, "<", 5, "<", 7]}]}),
                Scope::MessageAttributes,
                "Too many terms",
            ),
            (
                json!({"a": [{"numeric": ["=", "x"]}]}),
                Scope::MessageAttributes,
                "Value of equals must be numeric",
            ),
            (
                json!({"a": {"b": (0..76).collect::<Vec<_>>()}}),
                Scope::MessageBody,
                "too complex",
            ),
            (
                json!({"a": [{"numeric": [">", 5, "<", 1]}]}),
                Scope::MessageAttributes,
                "Bottom must be less than top",
            ),
            (
                json!({"a": [{"numeric": ["!", 5]}]}),
                Scope::MessageAttributes,
                "Unrecognized numeric range operator",
            ),
            (
                json!({"a": [{"numeric": [">", 1e10]}]}),
                Scope::MessageAttributes,
                "between -1.0E9 and 1.0E9",
            ),
            (
                json!({"a": [{"numeric": 5}]}),
                Scope::MessageAttributes,
                "must be an array",
            ),
            // AWS's cidr checks, in its order and words (LocalStack's AWS-validated
            // test_validate_policy_string_operators).
            (
                json!({"a": [{"cidr": ["bad-filter"]}]}),
                Scope::MessageAttributes,
                "FilterPolicy: prefix match pattern must be a string",
            ),
            (
                json!({"a": [{"cidr": "bad-filter"}]}),
                Scope::MessageAttributes,
                "FilterPolicy: Malformed CIDR, one '/' required",
            ),
            (
                json!({"a": [{"cidr": "bad-/64filter"}]}),
                Scope::MessageAttributes,
                "FilterPolicy: Malformed CIDR, mask bits must be an integer",
            ),
            (
                json!({"a": [{"cidr": "bad-filter/64"}]}),
                Scope::MessageAttributes,
                "FilterPolicy: Nonstandard IP address: bad-filter",
            ),
            (
                json!({"a": [{"cidr": "10.0.0.0"}]}),
                Scope::MessageAttributes,
                "Malformed CIDR",
            ),
            (
                json!({"a": [{"cidr": "10.0.0.0/33"}]}),
                Scope::MessageAttributes,
                "mask bits",
            ),
            (
                json!({"a": [[1]]}),
                Scope::MessageAttributes,
                "Match value must be",
            ),
            (
                json!({"$or": [{"a": ["x"]}]}),
                Scope::MessageAttributes,
                "at least two",
            ),
            (
                json!({"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}),
                Scope::MessageAttributes,
                "more than 5 keys",
            ),
            (
                json!({"a": (0..10).collect::<Vec<_>>(), "b": (0..16).collect::<Vec<_>>()}),
                Scope::MessageAttributes,
                "too complex",
            ),
            (
                json!(["a"]),
                Scope::MessageAttributes,
                "must be a JSON object",
            ),
        ];
        for (policy, scope, want) in bad {
            let err = parse(&policy.to_string(), scope).expect_err(&policy.to_string());
            assert!(
                err.starts_with("FilterPolicy: ") || err.starts_with("Filter policy scope"),
                "{err}"
            );
            assert!(err.contains(want), "{policy}: got {err:?}, want {want:?}");
        }
        assert!(parse("{not json", Scope::MessageAttributes).is_err());
        // 5 keys and exactly 150 combinations are allowed.
        let ok = json!({"a": (0..10).collect::<Vec<_>>(), "b": (0..15).collect::<Vec<_>>(), "c": ["x"], "d": ["y"], "e": ["z"]});
        assert!(parse(&ok.to_string(), Scope::MessageAttributes).is_ok());
        // Nested keys count their values once per level: 75 x 2 = 150.
        let nested = json!({"a": {"b": (0..75).collect::<Vec<_>>()}});
        assert!(parse(&nested.to_string(), Scope::MessageBody).is_ok());
        // Only top-level keys count toward the 5.
        let or = json!({"a": ["1"], "b": ["1"], "$or": [{"c": ["1"], "d": ["1"], "e": ["1"]}, {"f": ["1"]}]});
        assert!(parse(&or.to_string(), Scope::MessageAttributes).is_ok());
    }
}
