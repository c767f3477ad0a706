//! botocore's service models (without documentation), embedded and read lazily.
//!
//! The wire formats are derived from the model instead of being written out per action: which
//! query parameters form a list or a map, what each XML element is called, which JSON strings are
//! blobs in CBOR. One model per service, parsed on first use so an idle broker never pays for it.
//! The files come from `scripts/gen-models.py`.

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// A service whose wire format the protocol layer derives from a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceName {
    Sqs,
    Sns,
    Kinesis,
}

/// One parsed service model.
pub struct Model {
    raw: Value,
}

static SQS: OnceLock<Model> = OnceLock::new();
static SNS: OnceLock<Model> = OnceLock::new();
static KINESIS: OnceLock<Model> = OnceLock::new();

/// The model of `service`, parsed on first call.
pub fn model(service: ServiceName) -> &'static Model {
    let (cell, text) = match service {
        ServiceName::Sqs => (&SQS, include_str!("models/sqs.json")),
        ServiceName::Sns => (&SNS, include_str!("models/sns.json")),
        ServiceName::Kinesis => (&KINESIS, include_str!("models/kinesis.json")),
    };
    cell.get_or_init(|| Model {
        // The embedded file is generated and checked by tests; it cannot fail to parse.
        raw: serde_json::from_str(text).expect("embedded service model is valid JSON"),
    })
}

/// A reference to a shape from a member, list member, map key/value or operation input/output:
/// the target shape plus the serialization traits that sit on the reference.
#[derive(Clone, Copy)]
pub struct ShapeRef<'m> {
    pub model: &'m Model,
    raw: &'m Value,
}

/// A shape and the reference that led to it.
impl<'m> ShapeRef<'m> {
    pub fn shape_name(&self) -> &'m str {
        self.raw.get("shape").and_then(Value::as_str).unwrap_or("")
    }

    fn shape(&self) -> &'m Value {
        self.model.shape(self.shape_name())
    }

    /// `structure`, `list`, `map`, `string`, `integer`, `long`, `boolean`, `blob`, `timestamp`, …
    pub fn kind(&self) -> &'m str {
        self.shape()
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
    }

    /// The serialized name on the reference, if any (`locationName`).
    pub fn location_name(&self) -> Option<&'m str> {
        self.raw.get("locationName").and_then(Value::as_str)
    }

    /// Whether a list or map is flattened, on the reference or on the shape.
    pub fn flattened(&self) -> bool {
        let on = |v: &Value| v.get("flattened").and_then(Value::as_bool).unwrap_or(false);
        on(self.raw) || on(self.shape())
    }

    /// The members of a structure, in model order.
    pub fn members(&self) -> impl Iterator<Item = (&'m str, ShapeRef<'m>)> {
        let model = self.model;
        self.shape()
            .get("members")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.iter())
            .map(move |(name, raw)| (name.as_str(), ShapeRef { model, raw }))
    }

    pub fn member(&self) -> Option<ShapeRef<'m>> {
        self.child("member")
    }

    pub fn key(&self) -> Option<ShapeRef<'m>> {
        self.child("key")
    }

    pub fn value(&self) -> Option<ShapeRef<'m>> {
        self.child("value")
    }

    fn child(&self, which: &str) -> Option<ShapeRef<'m>> {
        self.shape().get(which).map(|raw| ShapeRef {
            model: self.model,
            raw,
        })
    }

    /// The output's `resultWrapper` (query protocol).
    pub fn result_wrapper(&self) -> Option<&'m str> {
        self.raw.get("resultWrapper").and_then(Value::as_str)
    }
}

impl Model {
    fn shape(&self, name: &str) -> &Value {
        static EMPTY: Value = Value::Null;
        self.raw
            .get("shapes")
            .and_then(|s| s.get(name))
            .unwrap_or(&EMPTY)
    }

    fn operation(&self, name: &str) -> Option<&Map<String, Value>> {
        self.raw.get("operations")?.get(name)?.as_object()
    }

    /// Whether `name` is an operation of this service.
    pub fn has_operation(&self, name: &str) -> bool {
        self.operation(name).is_some()
    }

    pub fn input(&self, op: &str) -> Option<ShapeRef<'_>> {
        self.operation(op)?
            .get("input")
            .map(|raw| ShapeRef { model: self, raw })
    }

    pub fn output(&self, op: &str) -> Option<ShapeRef<'_>> {
        self.operation(op)?
            .get("output")
            .map(|raw| ShapeRef { model: self, raw })
    }

    /// The XML namespace of query responses.
    pub fn xml_namespace(&self) -> &str {
        self.raw
            .get("metadata")
            .and_then(|m| m.get("xmlNamespace"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Every operation name, for tests and routing tables.
    pub fn operation_names(&self) -> impl Iterator<Item = &str> {
        self.raw
            .get("operations")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_models_parse_and_resolve_every_reference() {
        for svc in [ServiceName::Sqs, ServiceName::Sns, ServiceName::Kinesis] {
            let m = model(svc);
            let mut n = 0;
            for op in m.operation_names() {
                n += 1;
                for r in [m.input(op), m.output(op)].into_iter().flatten() {
                    assert!(
                        !m.shape(r.shape_name()).is_null(),
                        "{op}: {}",
                        r.shape_name()
                    );
                }
            }
            assert!(n > 20, "{svc:?} has {n} operations");
        }
    }
}
