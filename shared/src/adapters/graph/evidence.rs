//! Evidence retrieval's calls (ms-apis.md §7, §8): Defender for Endpoint live response with its
//! machine actions and result links, the result download from Azure Blob Storage (no token, only
//! to an allowed blob host), and Exchange Online's quarantine cmdlets through `InvokeCommand`.

use serde_json::{json, Value};

use super::auth::{without_url, Audience};
use super::client::{Call, MicrosoftHttp};
use crate::domain::evidence::job::ActionStatus;
use crate::domain::integration::Credentials;
use crate::error::GraphError;
use crate::ports::evidence::{ActionReport, Download, ExportedEml, LibraryUpload, LiveCommand, MAX_EXPORT_ANSWER_BYTES};
use crate::ports::EvidenceApi;
use crate::sources::path_segment;

const MDE: &str = "Defender for Endpoint";
const EXCHANGE: &str = "Exchange Online";
/// The system mailbox the Exchange module anchors every call to (OSS-CIPP; ms-apis.md §8).
const ANCHOR: &str = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";
/// The most pages of one cmdlet's answer followed.
const MAX_PAGES: usize = 50;

fn decode(what: &str, body: &[u8]) -> Result<Value, GraphError> {
    serde_json::from_slice(body).map_err(|e| GraphError::Decode { what: what.into(), detail: e.to_string() })
}

/// A Defender for Endpoint call of an evidence step: paced within the API's limits (client.rs),
/// waiting for the tenant's budget at most this long; a step that would wait longer comes back
/// later (`OverBudget`, read as busy) rather than hold its invocation.
fn mde_call(url: &str) -> Call<'_> {
    Call { budget_wait: Some(std::time::Duration::from_secs(20)), ..Call::get(MDE, Audience::DefenderForEndpoint, url) }
}

/// A Graph call of an evidence step on a recipient's mailbox: within Outlook's limits for the
/// mailbox (client.rs), waiting for them at most this long (`OverBudget`, read as busy).
fn mailbox_call(url: &str) -> Call<'_> {
    Call { budget_wait: Some(std::time::Duration::from_secs(20)), ..Call::get("Graph", Audience::Graph, url) }
}

/// Message ids that survive a move between the mailbox's folders (outlook-immutable-id.md): a
/// job's found message is still found after the user deletes it or a rule files it, between
/// the search and the export.
fn immutable_ids() -> [(&'static str, String); 1] {
    [("Prefer", "IdType=\"ImmutableId\"".to_owned())]
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn action_status(s: &str) -> Result<ActionStatus, GraphError> {
    Ok(match s {
        "Pending" => ActionStatus::Pending,
        "InProgress" => ActionStatus::InProgress,
        "Succeeded" => ActionStatus::Succeeded,
        "Failed" => ActionStatus::Failed,
        "TimeOut" => ActionStatus::TimeOut,
        "Cancelled" => ActionStatus::Cancelled,
        other => return Err(GraphError::Decode { what: "a machine action".into(), detail: format!("unknown status `{other}`") }),
    })
}

/// A `multipart/form-data` body (RFC 7578): the file as the `File` part, then text fields. The
/// boundary is derived from the file's hash, which never occurs in the file itself.
fn multipart_form(boundary: &str, file: &LibraryUpload<'_>, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.bytes.len() + 1024);
    out.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            file.file_name
        )
        .as_bytes(),
    );
    out.extend_from_slice(file.bytes);
    for (name, value) in fields {
        out.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}").as_bytes());
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Where the `Eml` of an export's first row lies in its answer: borrowed (a `&str` borrows
/// only a string without JSON escapes, which Base64 never needs), so the answer stays the only
/// copy of the message; an escaped one is read owned, once.
fn eml_in(answer: bytes::Bytes) -> Result<ExportedEml, GraphError> {
    #[derive(serde::Deserialize)]
    struct Borrowed<'a> {
        #[serde(borrow)]
        value: Vec<BorrowedRow<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct BorrowedRow<'a> {
        #[serde(rename = "Eml", borrow, default)]
        eml: Option<&'a str>,
        #[serde(rename = "BodyEncoding", default)]
        encoding: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Owned {
        value: Vec<OwnedRow>,
    }
    #[derive(serde::Deserialize)]
    struct OwnedRow {
        #[serde(rename = "Eml", default)]
        eml: Option<String>,
        #[serde(rename = "BodyEncoding", default)]
        encoding: Option<String>,
    }
    let bad = |detail: String| GraphError::Decode { what: "an export".into(), detail };
    let checked = |encoding: &Option<String>| match encoding {
        Some(e) if !e.eq_ignore_ascii_case("Base64") => Err(bad("an `Eml` not in Base64".into())),
        _ => Ok(()),
    };
    let found = match serde_json::from_slice::<Borrowed<'_>>(&answer) {
        Ok(parsed) => {
            let row = parsed.value.into_iter().next().ok_or_else(|| bad("no message in the answer".into()))?;
            checked(&row.encoding)?;
            let text = row.eml.ok_or_else(|| bad("no `Eml`".into()))?.trim();
            let start = (text.as_ptr() as usize).wrapping_sub(answer.as_ptr() as usize);
            ExportedEml { eml: start..start + text.len(), answer: answer.clone() }
        }
        // A string with escapes cannot be borrowed: read it owned.
        Err(_) => {
            let parsed: Owned = serde_json::from_slice(&answer).map_err(|e| bad(e.to_string()))?;
            let row = parsed.value.into_iter().next().ok_or_else(|| bad("no message in the answer".into()))?;
            checked(&row.encoding)?;
            let mut text = row.eml.ok_or_else(|| bad("no `Eml`".into()))?;
            text.retain(|c| !c.is_ascii_whitespace());
            ExportedEml::of_base64(text)
        }
    };
    if found.base64().is_empty() {
        return Err(bad("an empty `Eml`".into()));
    }
    Ok(found)
}

impl MicrosoftHttp {
    fn mde_url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.mde_base_url.trim_end_matches('/'))
    }

    /// One cmdlet through InvokeCommand, every page of its answer (the nextLink is followed with
    /// the same body, and only at Exchange's own origin).
    async fn invoke(&self, creds: &Credentials, organization: &str, cmdlet: &str, parameters: Value) -> Result<Vec<Value>, GraphError> {
        self.invoke_pages(creds, organization, cmdlet, parameters, false).await
    }

    /// The identities of at most one quarantined message received since `since`, asked as the
    /// jobs ask (the same cmdlet, headers, timeout and start date): Test & Save's lookup.
    pub(super) async fn quarantine_sample(
        &self,
        creds: &Credentials,
        organization: &str,
        since: crate::domain::time::GraphTime,
    ) -> Result<Vec<String>, GraphError> {
        let params = json!({"StartReceivedDate": since.to_string(), "PageSize": 1});
        let rows = self.invoke_pages(creds, organization, "Get-QuarantineMessage", params, true).await?;
        Ok(rows.iter().take(1).filter_map(|r| r.get("Identity").and_then(Value::as_str).map(str::to_owned)).collect())
    }

    async fn invoke_pages(
        &self,
        creds: &Credentials,
        organization: &str,
        cmdlet: &str,
        parameters: Value,
        first_page_only: bool,
    ) -> Result<Vec<Value>, GraphError> {
        let base = self.settings.exchange_base_url.trim_end_matches('/').to_owned();
        let mut url = format!("{base}/adminapi/beta/{}/InvokeCommand", enc(organization));
        let body = json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}});
        let headers = [("X-AnchorMailbox", format!("UPN:{ANCHOR}@{organization}")), ("Prefer", "odata.maxpagesize=1000".to_owned())];
        let mut rows = Vec::new();
        for _ in 0..MAX_PAGES {
            let call = Call {
                body: Some(&body),
                headers: &headers,
                timeout: Some(self.settings.exchange_timeout),
                ..Call::get(EXCHANGE, Audience::Exchange, &url)
            };
            let page = decode("an Exchange answer", &self.send(creds, &call).await?)?;
            rows.extend(page.get("value").and_then(Value::as_array).cloned().unwrap_or_default());
            if first_page_only {
                return Ok(rows);
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) if super::settings::HttpSettings::same_origin(next, &base) => url = next.to_owned(),
                Some(_) => {
                    return Err(GraphError::Decode {
                        what: "an Exchange answer".into(),
                        detail: "its nextLink points to another host".into(),
                    })
                }
                None => return Ok(rows),
            }
        }
        Err(GraphError::Decode { what: "an Exchange answer".into(), detail: format!("more than {MAX_PAGES} pages") })
    }
}

impl EvidenceApi for MicrosoftHttp {
    async fn microsoft_copy(
        &self,
        creds: &Credentials,
        path: &str,
        head: crate::domain::alert::HeadSpec,
    ) -> Result<Option<crate::domain::alert::Item>, GraphError> {
        self.graph().item(creds, path, head).await
    }

    async fn run_live_response(&self, creds: &Credentials, device_id: &str, commands: &[LiveCommand]) -> Result<String, GraphError> {
        let url = self.mde_url(&format!("/api/machines/{}/runliveresponse", enc(device_id)));
        let commands: Vec<Value> = commands
            .iter()
            .map(|c| match c {
                LiveCommand::RunScript { script, args } => json!({"type": "RunScript", "params": [
                    {"key": "ScriptName", "value": script}, {"key": "Args", "value": args}]}),
                LiveCommand::GetFile { path } => json!({"type": "GetFile", "params": [{"key": "Path", "value": path}]}),
            })
            .collect();
        let body = json!({"Commands": commands, "Comment": "m365-ingest: evidence of a Defender alert"});
        let call = Call { body: Some(&body), ..mde_call(&url) };
        let v = decode("a machine action", &self.send(creds, &call).await?)?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| GraphError::Decode { what: "a machine action".into(), detail: "no `id`".into() })
    }

    async fn cancel_action(&self, creds: &Credentials, action_id: &str) -> Result<(), GraphError> {
        let url = self.mde_url(&format!("/api/machineactions/{}/cancel", enc(action_id)));
        let body = json!({"Comment": "m365-ingest: the evidence job ended before its restore ran"});
        let call = Call { body: Some(&body), ..mde_call(&url) };
        self.send(creds, &call).await.map(|_| ())
    }

    async fn upload_library(&self, creds: &Credentials, file: &LibraryUpload<'_>) -> Result<(), GraphError> {
        let url = self.mde_url("/api/libraryfiles");
        let boundary = format!("m365-ingest-{}", crate::domain::envelope::sha256_hex(file.bytes));
        let form = multipart_form(
            &boundary,
            file,
            &[
                ("Description", file.description),
                ("ParametersDescription", file.parameters_description),
                ("HasParameters", "true"),
                ("OverrideIfExists", "true"),
            ],
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let call = Call { raw: Some((&form, &content_type)), ..mde_call(&url) };
        self.send(creds, &call).await.map(|_| ())
    }

    async fn machine_action(&self, creds: &Credentials, action_id: &str) -> Result<ActionReport, GraphError> {
        let url = self.mde_url(&format!("/api/machineactions/{}", enc(action_id)));
        let v = decode("a machine action", &self.send(creds, &mde_call(&url)).await?)?;
        let status = action_status(v.get("status").and_then(Value::as_str).unwrap_or_default())?;
        let errors = v
            .get("commands")
            .and_then(Value::as_array)
            .map(|c| c.iter().flat_map(|c| c.get("errors").and_then(Value::as_array).cloned().unwrap_or_default()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| e.as_str().map(|s| s.chars().take(500).collect()))
            .take(5)
            .collect();
        let error_hresult = v.get("errorHResult").and_then(Value::as_i64).filter(|h| *h != 0);
        Ok(ActionReport { status, errors, error_hresult })
    }

    async fn result_link(&self, creds: &Credentials, action_id: &str, index: usize) -> Result<String, GraphError> {
        let url = self.mde_url(&format!("/api/machineactions/{}/GetLiveResponseResultDownloadLink(index={index})", enc(action_id)));
        let v = decode("a result link", &self.send(creds, &mde_call(&url)).await?)?;
        v.get("value")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| GraphError::Decode { what: "a result link".into(), detail: "no `value`".into() })
    }

    async fn download(&self, url: &str) -> Result<Download, GraphError> {
        if !self.settings.allowed_download(url) {
            return Err(GraphError::Decode {
                what: "a result link".into(),
                detail: "it does not point to an Azure Blob Storage host over HTTPS; not followed".into(),
            });
        }
        let resp = self
            .http()
            .get(url)
            .timeout(self.settings.download_timeout)
            .send()
            .await
            .map_err(|e| GraphError::Transport { what: "a result download".into(), detail: without_url(&e) })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let code = resp.headers().get("x-ms-error-code").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            return Err(GraphError::Http { api: "Azure Blob Storage", status, code, message: "the result download was refused".into() });
        }
        let length = resp.content_length();
        let chunks = futures_util::stream::unfold(Some(resp), |state| async move {
            let mut resp = state?;
            match resp.chunk().await {
                Ok(Some(c)) => Some((Ok(c), Some(resp))),
                Ok(None) => None,
                Err(e) => Some((Err(GraphError::Transport { what: "a result download".into(), detail: without_url(&e) }), None)),
            }
        });
        Ok(Download { length, chunks: Box::pin(chunks) })
    }

    async fn find_quarantined(
        &self,
        creds: &Credentials,
        organization: &str,
        message_id: &str,
        recipient: &str,
        since: crate::domain::time::GraphTime,
    ) -> Result<Vec<String>, GraphError> {
        // Never without an identity of the message: an empty filter returns the whole quarantine.
        if message_id.trim().is_empty() || recipient.trim().is_empty() {
            return Err(GraphError::Decode { what: "a quarantine lookup".into(), detail: "no Message-ID or recipient".into() });
        }
        // Without StartReceivedDate the cmdlet searches the last 16 days only; it searches 30 at
        // most (Get-QuarantineMessage.md), which is as long as quarantine keeps a message.
        let start = since.to_string();
        let params = json!({"MessageId": message_id, "RecipientAddress": [recipient], "StartReceivedDate": start, "PageSize": 100});
        let rows = self.invoke(creds, organization, "Get-QuarantineMessage", params).await?;
        Ok(rows
            .iter()
            .filter(|r| r.get("MessageId").and_then(Value::as_str).is_none_or(|m| m == message_id))
            .filter_map(|r| r.get("Identity").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    async fn find_in_mailbox(&self, creds: &Credentials, mailbox: &str, message_id: &str) -> Result<Vec<String>, GraphError> {
        if message_id.trim().is_empty() || !mailbox.contains('@') {
            return Err(GraphError::Decode { what: "a mailbox search".into(), detail: "no Message-ID or mailbox".into() });
        }
        // An OData string literal doubles its quotes; every other byte is percent-encoded.
        let filter = format!("internetMessageId eq '{}'", message_id.replace('\'', "''"));
        let url = format!(
            "{}/v1.0/users/{}/messages?$filter={}&$select=id,internetMessageId",
            self.settings.graph_base_url.trim_end_matches('/'),
            path_segment(mailbox),
            path_segment(&filter)
        );
        let headers = immutable_ids();
        let v = decode("a mailbox search", &self.send(creds, &Call { headers: &headers, ..mailbox_call(&url) }).await?)?;
        let rows = v
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| GraphError::Decode { what: "a mailbox search".into(), detail: "no `value` array in the answer".into() })?;
        // The filter is Microsoft's to apply; the id is checked again, as for quarantine.
        Ok(rows
            .iter()
            .filter(|r| r.get("internetMessageId").and_then(Value::as_str).is_none_or(|m| m == message_id))
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }

    async fn mailbox_mime(&self, creds: &Credentials, mailbox: &str, id: &str) -> Result<bytes::Bytes, GraphError> {
        let url = format!(
            "{}/v1.0/users/{}/messages/{}/$value",
            self.settings.graph_base_url.trim_end_matches('/'),
            path_segment(mailbox),
            path_segment(id)
        );
        let call = Call { timeout: Some(self.settings.exchange_timeout), max_bytes: Some(MAX_EXPORT_ANSWER_BYTES), ..mailbox_call(&url) };
        self.send(creds, &call).await
    }

    async fn export_quarantined(&self, creds: &Credentials, organization: &str, identity: &str) -> Result<ExportedEml, GraphError> {
        let base = self.settings.exchange_base_url.trim_end_matches('/').to_owned();
        let url = format!("{base}/adminapi/beta/{}/InvokeCommand", enc(organization));
        let body = json!({"CmdletInput": {"CmdletName": "Export-QuarantineMessage", "Parameters": {"Identity": identity}}});
        let headers = [("X-AnchorMailbox", format!("UPN:{ANCHOR}@{organization}"))];
        let call = Call {
            body: Some(&body),
            headers: &headers,
            timeout: Some(self.settings.exchange_timeout),
            max_bytes: Some(MAX_EXPORT_ANSWER_BYTES),
            ..Call::get(EXCHANGE, Audience::Exchange, &url)
        };
        let answer = self.send(creds, &call).await?;
        eml_in(answer)
    }
}

#[cfg(test)]
mod export_tests {
    use super::*;

    #[test]
    fn an_exports_eml_is_found_in_the_answer_itself_and_an_escaped_one_read_once() {
        let answer = bytes::Bytes::from_static(br#"{"value": [{"Identity": "a\b", "Eml": " TWVzc2FnZQ== ", "BodyEncoding": "Base64"}]}"#);
        let x = eml_in(answer.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(x.base64(), b"TWVzc2FnZQ==");
        assert_eq!(x.answer.as_ptr(), answer.as_ptr(), "the answer's own bytes: no copy of the message");
        let escaped = bytes::Bytes::from_static(br#"{"value": [{"Eml": "TWVz\/c2FnZQ==\r\n"}]}"#);
        assert_eq!(eml_in(escaped).unwrap_or_else(|e| panic!("{e}")).base64(), b"TWVz/c2FnZQ==");
        for bad in [&br#"{"value": []}"#[..], br#"{"value": [{"Eml": "  "}]}"#, br#"{"value": [{"Eml": "x", "BodyEncoding": "QP"}]}"#] {
            assert!(eml_in(bytes::Bytes::from_static(bad)).is_err());
        }
    }
}
