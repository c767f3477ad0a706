//! SigV4: the credential scope tells which region and service a request is for.
//! Signatures are not checked: every local emulator accepts any credentials.

/// What the credential scope `AKID/date/region/service/aws4_request` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scope<'a> {
    pub region: Option<&'a str>,
    pub service: Option<&'a str>,
}

/// Reads the scope from an `Authorization: AWS4-HMAC-SHA256 Credential=…` header value or a
/// presigned URL's `X-Amz-Credential`.
pub fn scope<'a>(
    authorization: Option<&'a str>,
    presigned_credential: Option<&'a str>,
) -> Scope<'a> {
    let credential = authorization
        .and_then(|a| a.split_once("Credential="))
        .map(|(_, rest)| rest.split([',', ' ']).next().unwrap_or(""))
        .or(presigned_credential);
    let Some(credential) = credential else {
        return Scope::default();
    };
    let mut parts = credential.split('/');
    let (_akid, _date, region, service) = (parts.next(), parts.next(), parts.next(), parts.next());
    let nonempty = |s: Option<&'a str>| s.filter(|s| !s.is_empty());
    Scope {
        region: nonempty(region),
        service: nonempty(service),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_region_and_service() {
        let a = "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/sqs/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(
            scope(Some(a), None),
            Scope {
                region: Some("eu-west-1"),
                service: Some("sqs")
            }
        );
        assert_eq!(
            scope(None, Some("AKID/20240101/us-west-2/sns/aws4_request")).region,
            Some("us-west-2")
        );
        assert_eq!(scope(Some("garbage"), None), Scope::default());
        assert_eq!(scope(Some("Credential="), None), Scope::default());
    }
}
