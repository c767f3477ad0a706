//! SMS settings, opt-outs, the SMS sandbox and origination numbers: stored per (account,
//! region) and reported; no message is ever sent (SMS publishes go to the outbox).
//! millpond reports accounts as out of the sandbox and enforces no sandbox restriction.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::parse_input;
use super::error::*;
use super::state::{Record, SmsSettings};
use super::subscriptions::valid_phone;
use super::util::{decode_token, encode_token, PAGE};
use super::Sns;
use crate::context::RequestContext;
use crate::error::ServiceResult;

const SMS_ATTRIBUTES: &[&str] = &[
    "MonthlySpendLimit",
    "DeliveryStatusIAMRole",
    "DeliveryStatusSuccessSamplingRate",
    "DefaultSenderID",
    "DefaultSMSType",
    "UsageReportS3Bucket",
];

#[derive(Deserialize)]
struct PhoneInput {
    #[serde(rename = "phoneNumber")]
    phone_number: String,
}

#[derive(Deserialize)]
struct GetAttrsInput {
    #[serde(default)]
    attributes: Vec<String>,
}

#[derive(Deserialize)]
struct SetAttrsInput {
    attributes: HashMap<String, String>,
}

#[derive(Deserialize)]
struct OptedOutInput {
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SandboxPhoneInput {
    phone_number: String,
    #[allow(dead_code)]
    language_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VerifyInput {
    phone_number: String,
    one_time_password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PagedInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

fn key(ctx: &RequestContext) -> String {
    format!("{}:{}", ctx.account_id, ctx.region)
}

fn check_phone(p: &str) -> ServiceResult<()> {
    if valid_phone(p) {
        Ok(())
    } else {
        Err(invalid_parameter("PhoneNumber"))
    }
}

impl Sns {
    fn sms(&self, ctx: &RequestContext) -> SmsSettings {
        self.state
            .lock()
            .sms
            .get(&key(ctx))
            .cloned()
            .unwrap_or_default()
    }

    async fn update_sms(
        &self,
        ctx: &RequestContext,
        f: impl FnOnce(&mut SmsSettings) -> ServiceResult<()>,
    ) -> ServiceResult<()> {
        let k = key(ctx);
        self.mutate(|st| {
            let mut s = st.sms.get(&k).cloned().unwrap_or_default();
            f(&mut s)?;
            Ok((vec![Record::PutSms(k.clone(), s)], ()))
        })
        .await
    }

    pub(super) fn check_if_phone_number_is_opted_out(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: PhoneInput = parse_input(input, PARSE_CODE)?;
        check_phone(&i.phone_number)?;
        let out = self.sms(ctx).opted_out.contains(&i.phone_number);
        Ok(json!({ "isOptedOut": out }))
    }

    pub(super) fn get_sms_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: GetAttrsInput = parse_input(input, PARSE_CODE)?;
        let mut attrs = self.sms(ctx).attributes;
        if !i.attributes.is_empty() {
            attrs.retain(|k, _| i.attributes.contains(k));
        }
        Ok(json!({ "attributes": attrs }))
    }

    pub(super) async fn set_sms_attributes(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SetAttrsInput = parse_input(input, PARSE_CODE)?;
        for (k, v) in &i.attributes {
            if !SMS_ATTRIBUTES.contains(&k.as_str()) {
                return Err(invalid_parameter(format!(
                    "Attributes Reason: Unknown attribute {k}"
                )));
            }
            if k == "DefaultSMSType" && v != "Promotional" && v != "Transactional" {
                return Err(invalid_parameter("DefaultSMSType"));
            }
            if k == "DeliveryStatusSuccessSamplingRate" && !matches!(v.parse::<u32>(), Ok(0..=100))
            {
                return Err(invalid_parameter("DeliveryStatusSuccessSamplingRate"));
            }
            if k == "MonthlySpendLimit" && v.parse::<u64>().is_err() {
                return Err(invalid_parameter("MonthlySpendLimit"));
            }
        }
        self.update_sms(ctx, |s| {
            s.attributes.extend(i.attributes.clone());
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn opt_in_phone_number(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: PhoneInput = parse_input(input, PARSE_CODE)?;
        check_phone(&i.phone_number)?;
        if self.sms(ctx).opted_out.contains(&i.phone_number) {
            self.update_sms(ctx, |s| {
                s.opted_out.retain(|p| *p != i.phone_number);
                Ok(())
            })
            .await?;
        }
        Ok(json!({}))
    }

    pub(super) fn list_phone_numbers_opted_out(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: OptedOutInput = parse_input(input, PARSE_CODE)?;
        let mut nums = self.sms(ctx).opted_out;
        nums.sort();
        let after = i
            .next_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_token)
            .transpose()?;
        let rest: Vec<String> = nums
            .into_iter()
            .filter(|n| after.as_ref().is_none_or(|a| n > a))
            .collect();
        let more = rest.len() > PAGE;
        let page: Vec<String> = rest.into_iter().take(PAGE).collect();
        let mut out = json!({ "phoneNumbers": page });
        if more {
            out["nextToken"] = json!(encode_token(page.last().map_or("", String::as_str)));
        }
        Ok(out)
    }

    pub(super) fn get_sms_sandbox_account_status(
        &self,
        _ctx: &RequestContext,
        _input: Value,
    ) -> ServiceResult<Value> {
        Ok(json!({ "IsInSandbox": false }))
    }

    pub(super) async fn create_sms_sandbox_phone_number(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SandboxPhoneInput = parse_input(input, PARSE_CODE)?;
        check_phone(&i.phone_number)?;
        if self.sms(ctx).opted_out.contains(&i.phone_number) {
            return Err(crate::error::ServiceError::sender(
                "OptedOut",
                "The phone number has opted out",
            ));
        }
        self.update_sms(ctx, |s| {
            s.sandbox.entry(i.phone_number.clone()).or_insert(false);
            Ok(())
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn delete_sms_sandbox_phone_number(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: SandboxPhoneInput = parse_input(input, PARSE_CODE)?;
        check_phone(&i.phone_number)?;
        self.update_sms(ctx, |s| {
            s.sandbox
                .remove(&i.phone_number)
                .map(|_| ())
                .ok_or_else(resource_not_found)
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) async fn verify_sms_sandbox_phone_number(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: VerifyInput = parse_input(input, PARSE_CODE)?;
        check_phone(&i.phone_number)?;
        if i.one_time_password.is_empty()
            || i.one_time_password.len() > 8
            || !i
                .one_time_password
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        {
            return Err(verification("Invalid one-time password"));
        }
        self.update_sms(ctx, |s| match s.sandbox.get_mut(&i.phone_number) {
            Some(v) => {
                *v = true;
                Ok(())
            }
            None => Err(resource_not_found()),
        })
        .await?;
        Ok(json!({}))
    }

    pub(super) fn list_sms_sandbox_phone_numbers(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: PagedInput = parse_input(input, PARSE_CODE)?;
        let max = i.max_results.unwrap_or(100);
        if !(1..=100).contains(&max) {
            return Err(invalid_parameter("MaxResults"));
        }
        let after = i
            .next_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_token)
            .transpose()?;
        let sandbox = self.sms(ctx).sandbox;
        let rest: Vec<(&String, &bool)> = sandbox
            .iter()
            .filter(|(n, _)| after.as_ref().is_none_or(|a| *n > a))
            .collect();
        let more = rest.len() > max as usize;
        let page: Vec<Value> = rest
            .iter()
            .take(max as usize)
            .map(|(n, v)| json!({"PhoneNumber": n, "Status": if **v { "Verified" } else { "Pending" }}))
            .collect();
        let mut out = json!({ "PhoneNumbers": page });
        if more {
            if let Some((n, _)) = rest.get(max as usize - 1) {
                out["NextToken"] = json!(encode_token(n));
            }
        }
        Ok(out)
    }

    pub(super) fn list_origination_numbers(
        &self,
        _ctx: &RequestContext,
        input: Value,
    ) -> ServiceResult<Value> {
        let i: PagedInput = parse_input(input, PARSE_CODE)?;
        if let Some(m) = i.max_results {
            if !(1..=30).contains(&m) {
                return Err(validation("1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 30"));
            }
        }
        if let Some(t) = i.next_token.as_deref().filter(|t| !t.is_empty()) {
            decode_token(t).map_err(|_| validation("Invalid NextToken"))?;
        }
        Ok(json!({ "PhoneNumbers": [] }))
    }
}
