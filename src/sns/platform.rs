//! Mobile push: platform applications and endpoints. Stored and reported only; publishes to an
//! endpoint go to the outbox (see `publish`).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::parse_input;
use super::error::*;
use super::state::{PlatformApplication, PlatformEndpoint, Record, State};
use super::util::{check_arn, page, parse_arn, scope_prefix, uuid};
use super::Sns;
use crate::context::RequestContext;
use crate::error::ServiceResult;

const PLATFORMS: &[&str] = &[
    "ADM",
    "APNS",
    "APNS_SANDBOX",
    "APNS_VOIP",
    "APNS_VOIP_SANDBOX",
    "BAIDU",
    "GCM",
    "MPNS",
    "WNS",
];

/// Attributes GetPlatformApplicationAttributes never reveals.
const SECRET: &[&str] = &["PlatformCredential"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAppInput {
    name: String,
    platform: String,
    #[serde(default)]
    attributes: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AppArnInput {
    platform_application_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetAppInput {
    platform_application_arn: String,
    attributes: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAppsInput {
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateEndpointInput {
    platform_application_arn: String,
    token: String,
    custom_user_data: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EndpointArnInput {
    endpoint_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetEndpointInput {
    endpoint_arn: String,
    attributes: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEndpointsInput {
    platform_application_arn: String,
    next_token: Option<String>,
}

fn check_enabled(attrs: &HashMap<String, String>) -> ServiceResult<()> {
    match attrs.get("Enabled").map(String::as_str) {
        None | Some("true") | Some("false") => Ok(()),
        Some(_) => Err(invalid_parameter(
            "Attributes Reason: Enabled must be true or false",
        )),
    }
}

fn find_app<'a>(
    st: &'a State,
    ctx: &RequestContext,
    arn: &str,
) -> ServiceResult<&'a PlatformApplication> {
    check_arn(
        ctx,
        arn,
        "PlatformApplicationArn",
        "GetPlatformApplicationAttributes",
    )?;
    if !parse_arn(arn).is_some_and(|a| a.resource.starts_with("app/")) {
        return Err(invalid_parameter("PlatformApplicationArn"));
    }
    st.applications.get(arn).ok_or_else(application_not_found)
}

fn find_endpoint<'a>(
    st: &'a State,
    ctx: &RequestContext,
    arn: &str,
) -> ServiceResult<&'a PlatformEndpoint> {
    check_arn(ctx, arn, "EndpointArn", "GetEndpointAttributes")?;
    if !parse_arn(arn).is_some_and(|a| a.resource.starts_with("endpoint/")) {
        return Err(invalid_parameter("EndpointArn"));
    }
    st.endpoints.get(arn).ok_or_else(endpoint_not_found)
}

fn public_attributes(a: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    a.iter()
        .filter(|(k, _)| !SECRET.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Sns {
    pub(super) async fn create_platform_application(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: CreateAppInput = parse_input(input, PARSE_CODE)?;
        if i.name.is_empty()
            || i.name.len() > 256
            || !i
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(invalid_parameter("Name"));
        }
        if !PLATFORMS.contains(&i.platform.as_str()) {
            return Err(invalid_parameter("Platform"));
        }
        check_enabled(&i.attributes)?;
        let arn = format!("{}app/{}/{}", scope_prefix(ctx), i.platform, i.name);
        self.mutate(|st| {
            let mut attributes = st
                .applications
                .get(&arn)
                .map(|a| a.attributes.clone())
                .unwrap_or_default();
            attributes.extend(i.attributes.clone());
            attributes
                .entry("Enabled".into())
                .or_insert_with(|| "true".into());
            let app = PlatformApplication {
                arn: arn.clone(),
                name: i.name.clone(),
                platform: i.platform.clone(),
                attributes,
            };
            Ok((vec![Record::PutApplication(app)], ()))
        })
        .await?;
        Ok(json!({ "PlatformApplicationArn": arn }))
    }

    pub(super) async fn delete_platform_application(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: AppArnInput = parse_input(input, PARSE_CODE)?;
        check_arn(
            ctx,
            &i.platform_application_arn,
            "PlatformApplicationArn",
            "DeletePlatformApplication",
        )?;
        self.mutate(|st| {
            let recs = if st.applications.contains_key(&i.platform_application_arn) {
                vec![Record::DeleteApplication(
                    i.platform_application_arn.clone(),
                )]
            } else {
                vec![]
            };
            Ok((recs, ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn get_platform_application_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: AppArnInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let a = find_app(&st, ctx, &i.platform_application_arn)?;
        Ok(json!({ "Attributes": public_attributes(&a.attributes) }))
    }

    pub(super) async fn set_platform_application_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SetAppInput = parse_input(input, PARSE_CODE)?;
        check_enabled(&i.attributes)?;
        self.mutate(|st| {
            let mut a = find_app(st, ctx, &i.platform_application_arn)?.clone();
            a.attributes.extend(i.attributes.clone());
            Ok((vec![Record::PutApplication(a)], ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn list_platform_applications(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ListAppsInput = parse_input(input, PARSE_CODE)?;
        let prefix = scope_prefix(ctx);
        let st = self.state.lock();
        let (items, next) = page(
            st.applications
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, a)| {
                    (k, json!({"PlatformApplicationArn": a.arn, "Attributes": public_attributes(&a.attributes)}))
                }),
            i.next_token.as_deref(),
        )?;
        let mut out = json!({ "PlatformApplications": items });
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }

    pub(super) async fn create_platform_endpoint(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: CreateEndpointInput = parse_input(input, PARSE_CODE)?;
        if i.token.is_empty() {
            return Err(invalid_parameter("Token"));
        }
        check_enabled(&i.attributes)?;
        self.mutate(|st| {
            let app = find_app(st, ctx, &i.platform_application_arn)?;
            let mut attributes: BTreeMap<String, String> = i.attributes.clone().into_iter().collect();
            attributes.insert("Token".into(), i.token.clone());
            if let Some(c) = &i.custom_user_data {
                attributes.insert("CustomUserData".into(), c.clone());
            }
            attributes.entry("Enabled".into()).or_insert_with(|| "true".into());
            if let Some(e) = st
                .endpoints
                .values()
                .find(|e| e.application_arn == app.arn && e.attributes.get("Token") == Some(&i.token))
            {
                if e.attributes != attributes {
                    return Err(invalid_parameter(format!(
                        "Token Reason: Endpoint {} already exists with the same Token, but different attributes.",
                        e.arn
                    )));
                }
                return Ok((vec![], e.arn.clone()));
            }
            let arn = format!("{}endpoint/{}/{}/{}", scope_prefix(ctx), app.platform, app.name, uuid());
            let e = PlatformEndpoint {
                arn: arn.clone(),
                application_arn: app.arn.clone(),
                attributes,
            };
            Ok((vec![Record::PutEndpoint(e)], arn))
        })
        .await
        .map(|arn| json!({ "EndpointArn": arn }))
    }

    pub(super) async fn delete_endpoint(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: EndpointArnInput = parse_input(input, PARSE_CODE)?;
        check_arn(ctx, &i.endpoint_arn, "EndpointArn", "DeleteEndpoint")?;
        self.mutate(|st| {
            let recs = if st.endpoints.contains_key(&i.endpoint_arn) {
                vec![Record::DeleteEndpoint(i.endpoint_arn.clone())]
            } else {
                vec![]
            };
            Ok((recs, ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn get_endpoint_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: EndpointArnInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let e = find_endpoint(&st, ctx, &i.endpoint_arn)?;
        Ok(json!({ "Attributes": e.attributes }))
    }

    pub(super) async fn set_endpoint_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SetEndpointInput = parse_input(input, PARSE_CODE)?;
        check_enabled(&i.attributes)?;
        self.mutate(|st| {
            let mut e = find_endpoint(st, ctx, &i.endpoint_arn)?.clone();
            e.attributes.extend(i.attributes.clone());
            Ok((vec![Record::PutEndpoint(e)], ()))
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn list_endpoints_by_platform_application(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: ListEndpointsInput = parse_input(input, PARSE_CODE)?;
        let st = self.state.lock();
        let app = find_app(&st, ctx, &i.platform_application_arn)?;
        let (items, next) = page(
            st.endpoints
                .iter()
                .filter(|(_, e)| e.application_arn == app.arn)
                .map(|(k, e)| (k, json!({"EndpointArn": e.arn, "Attributes": e.attributes}))),
            i.next_token.as_deref(),
        )?;
        let mut out = json!({ "Endpoints": items });
        if let Some(n) = next {
            out["NextToken"] = json!(n);
        }
        Ok(out)
    }
}
