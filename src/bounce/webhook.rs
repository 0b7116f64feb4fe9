//! `POST /webhooks/bounces` bodies: a generic event and the documented event
//! formats of Amazon SES (through SNS), Postmark, Mailgun and SendGrid, told
//! apart by shape. Each becomes events for the one classifier's store step.

use serde_json::Value;

use crate::domain::BounceKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub email: String,
    /// `None`: an event that asks for nothing (a delivery, a deferral).
    pub kind: Option<BounceKind>,
    pub reason: String,
    /// Names the event, so a provider's retry changes nothing.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    Events {
        provider: &'static str,
        events: Vec<Event>,
    },
    /// Amazon SNS asks that the subscription be confirmed by visiting a URL.
    ConfirmSubscription {
        url: String,
    },
}

/// A body we cannot read, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WebhookError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: &str) -> WebhookError {
    WebhookError { field: field.into(), message: message.into() }
}

pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| bad("body", &format!("not JSON: {e}")))?;
    match &value {
        Value::Array(items) => sendgrid(items),
        Value::Object(o) if o.contains_key("TopicArn") => sns(&value),
        Value::Object(o) if o.contains_key("notificationType") || o.contains_key("eventType") => ses(&value),
        Value::Object(o) if o.contains_key("RecordType") => postmark(&value),
        Value::Object(o) if o.contains_key("event-data") => mailgun(&value),
        Value::Object(o) if o.contains_key("email") => generic(&value),
        _ => Err(bad(
            "body",
            "not a known event: send {\"email\", \"type\": \"hard\"|\"soft\"|\"complaint\", \"reason\"} or a provider's event",
        )),
    }
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A field that may be missing or null, but is text when given.
fn optional_text<'a>(v: &'a Value, field: &str) -> Result<Option<&'a str>, WebhookError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn generic(v: &Value) -> Result<Webhook, WebhookError> {
    let email = text(v, "/email").ok_or_else(|| bad("email", "must be a string"))?;
    let kind = match text(v, "/type") {
        Some("hard") => BounceKind::Hard,
        Some("soft") => BounceKind::Soft,
        Some("complaint") => BounceKind::Complaint,
        _ => return Err(bad("type", "must be \"hard\", \"soft\" or \"complaint\"")),
    };
    let reason = optional_text(v, "reason")?.unwrap_or_default().to_owned();
    let key = optional_text(v, "id")?.map_or_else(|| format!("generic/{}", body_key(v)), |id| format!("generic/{id}"));
    Ok(Webhook::Events {
        provider: "generic",
        events: vec![Event { email: email.into(), kind: Some(kind), reason, key }],
    })
}

/// An SNS envelope: a subscription to confirm, or a notification whose
/// `Message` is the SES event as a JSON string.
fn sns(v: &Value) -> Result<Webhook, WebhookError> {
    match text(v, "/Type") {
        Some("SubscriptionConfirmation") => {
            let url = text(v, "/SubscribeURL").ok_or_else(|| bad("SubscribeURL", "missing"))?;
            Ok(Webhook::ConfirmSubscription { url: url.into() })
        }
        Some("Notification") => {
            let message = text(v, "/Message").ok_or_else(|| bad("Message", "missing"))?;
            let inner: Value =
                serde_json::from_str(message).map_err(|e| bad("Message", &format!("not an SES event: {e}")))?;
            ses(&inner)
        }
        Some("UnsubscribeConfirmation") => Ok(Webhook::Events { provider: "ses", events: Vec::new() }),
        _ => Err(bad("Type", "must be SubscriptionConfirmation or Notification")),
    }
}

fn ses(v: &Value) -> Result<Webhook, WebhookError> {
    let kind = text(v, "/notificationType").or_else(|| text(v, "/eventType")).unwrap_or_default();
    let message_id = text(v, "/mail/messageId").unwrap_or_default();
    let mut events = Vec::new();
    match kind {
        "Bounce" => {
            let bounce_type = text(v, "/bounce/bounceType").unwrap_or_default();
            let feedback = text(v, "/bounce/feedbackId").unwrap_or(message_id);
            let recipients = v.pointer("/bounce/bouncedRecipients").and_then(Value::as_array);
            for r in recipients.ok_or_else(|| bad("bounce.bouncedRecipients", "missing"))? {
                let email = text(r, "/emailAddress").ok_or_else(|| bad("bouncedRecipients.emailAddress", "missing"))?;
                let status = text(r, "/status");
                let kind = match bounce_type {
                    "Permanent" => status.and_then(BounceKind::of_status).unwrap_or(BounceKind::Hard),
                    _ => BounceKind::Soft,
                };
                let reason = [Some(bounce_type), text(v, "/bounce/bounceSubType"), text(r, "/diagnosticCode")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                events.push(Event {
                    email: email.into(),
                    kind: Some(kind),
                    reason,
                    key: format!("ses/{feedback}/{email}"),
                });
            }
        }
        "Complaint" => {
            let feedback = text(v, "/complaint/feedbackId").unwrap_or(message_id);
            let feedback_type = text(v, "/complaint/complaintFeedbackType").unwrap_or("abuse");
            let kind = (feedback_type != "not-spam").then_some(BounceKind::Complaint);
            let recipients = v.pointer("/complaint/complainedRecipients").and_then(Value::as_array);
            for r in recipients.ok_or_else(|| bad("complaint.complainedRecipients", "missing"))? {
                let email =
                    text(r, "/emailAddress").ok_or_else(|| bad("complainedRecipients.emailAddress", "missing"))?;
                let reason = format!("complaint: {feedback_type}");
                events.push(Event { email: email.into(), kind, reason, key: format!("ses/{feedback}/{email}") });
            }
        }
        // Deliveries, sends, opens: nothing to do.
        _ => {}
    }
    Ok(Webhook::Events { provider: "ses", events })
}

fn postmark(v: &Value) -> Result<Webhook, WebhookError> {
    let email = text(v, "/Email").ok_or_else(|| bad("Email", "missing"))?;
    let record = text(v, "/RecordType").unwrap_or_default();
    let kind = match (record, text(v, "/Type").unwrap_or_default()) {
        ("SpamComplaint", _) | (_, "SpamComplaint" | "SpamNotification") => Some(BounceKind::Complaint),
        ("Bounce", "HardBounce" | "BadEmailAddress") => Some(BounceKind::Hard),
        ("Bounce", "SoftBounce" | "Transient" | "DnsError" | "Undeliverable") => Some(BounceKind::Soft),
        ("Bounce", "Blocked" | "ContentRelated" | "VirusNotification" | "ChallengeVerification") => {
            Some(BounceKind::Policy)
        }
        _ => None,
    };
    let id = v.pointer("/ID").map(Value::to_string).unwrap_or_else(|| body_key(v));
    let reason = [text(v, "/Type"), text(v, "/Description"), text(v, "/Details")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    let event = Event { email: email.into(), kind, reason, key: format!("postmark/{id}") };
    Ok(Webhook::Events { provider: "postmark", events: vec![event] })
}

fn mailgun(v: &Value) -> Result<Webhook, WebhookError> {
    let data = v.pointer("/event-data").ok_or_else(|| bad("event-data", "missing"))?;
    let email = text(data, "/recipient").ok_or_else(|| bad("event-data.recipient", "missing"))?;
    let kind = match (text(data, "/event"), text(data, "/severity")) {
        (Some("complained"), _) => Some(BounceKind::Complaint),
        (Some("failed"), Some("permanent")) => match text(data, "/reason") {
            // Mailgun's own suppression lists, not a new bounce.
            Some("suppress-bounce" | "suppress-complaint" | "suppress-unsubscribe") => None,
            _ => Some(
                v.pointer("/event-data/delivery-status/code")
                    .and_then(Value::as_u64)
                    .filter(|c| (400..500).contains(c))
                    .map_or(BounceKind::Hard, |_| BounceKind::Soft),
            ),
        },
        (Some("failed"), _) => Some(BounceKind::Soft),
        _ => None,
    };
    let id = text(data, "/id").map_or_else(|| body_key(v), str::to_owned);
    let reason =
        [text(data, "/reason"), text(data, "/delivery-status/message"), text(data, "/delivery-status/description")]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
    let event = Event { email: email.into(), kind, reason, key: format!("mailgun/{id}") };
    Ok(Webhook::Events { provider: "mailgun", events: vec![event] })
}

fn sendgrid(items: &[Value]) -> Result<Webhook, WebhookError> {
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let email = text(item, "/email").ok_or_else(|| bad(&format!("[{i}].email"), "missing"))?;
        let kind = match (text(item, "/event"), text(item, "/type")) {
            (Some("spamreport"), _) => Some(BounceKind::Complaint),
            (Some("bounce"), Some("blocked")) => Some(BounceKind::Policy),
            (Some("bounce"), _) => {
                Some(text(item, "/status").and_then(BounceKind::of_status).unwrap_or(BounceKind::Hard))
            }
            _ => None,
        };
        let id = text(item, "/sg_event_id").map_or_else(|| body_key(item), str::to_owned);
        let reason = [text(item, "/event"), text(item, "/status"), text(item, "/reason")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        events.push(Event { email: email.into(), kind, reason, key: format!("sendgrid/{id}") });
    }
    Ok(Webhook::Events { provider: "sendgrid", events })
}

/// A key for an event that carries no id of its own: its content.
fn body_key(v: &Value) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(v.to_string().as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(body: &str) -> (&'static str, Vec<(String, Option<BounceKind>)>) {
        match parse(body.as_bytes()).unwrap() {
            Webhook::Events { provider, events } => (provider, events.into_iter().map(|e| (e.email, e.kind)).collect()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn generic_events_name_their_faults() {
        assert_eq!(
            events(r#"{"email":"a@example.com","type":"hard","reason":"550"}"#),
            ("generic", vec![("a@example.com".into(), Some(BounceKind::Hard))])
        );
        let e = parse(br#"{"email":"a@example.com","type":"maybe"}"#).unwrap_err();
        assert_eq!(e.field, "type");
        assert_eq!(parse(b"nope").unwrap_err().field, "body");
        assert_eq!(parse(br#"{"x":1}"#).unwrap_err().field, "body");
    }

    #[test]
    fn provider_shapes() {
        let ses = r#"{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
            "bouncedRecipients":[{"emailAddress":"a@example.com","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1"}],
            "feedbackId":"f1"},"mail":{"messageId":"m1"}}"#;
        assert_eq!(events(ses), ("ses", vec![("a@example.com".into(), Some(BounceKind::Hard))]));
        let wrapped = serde_json::json!({"Type":"Notification","TopicArn":"arn:aws:sns:x","Message":ses}).to_string();
        assert_eq!(events(&wrapped).0, "ses");
        let confirm = r#"{"Type":"SubscriptionConfirmation","TopicArn":"t","SubscribeURL":"https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"}"#;
        assert!(matches!(parse(confirm.as_bytes()).unwrap(), Webhook::ConfirmSubscription { .. }));
        let postmark = r#"{"RecordType":"Bounce","ID":42,"Type":"SoftBounce","Email":"b@example.com"}"#;
        assert_eq!(events(postmark), ("postmark", vec![("b@example.com".into(), Some(BounceKind::Soft))]));
        let mailgun = r#"{"signature":{},"event-data":{"id":"x","event":"complained","recipient":"c@example.com"}}"#;
        assert_eq!(events(mailgun), ("mailgun", vec![("c@example.com".into(), Some(BounceKind::Complaint))]));
        let sendgrid = r#"[{"email":"d@example.com","event":"bounce","type":"blocked","sg_event_id":"1"},
            {"email":"e@example.com","event":"deferred","sg_event_id":"2"}]"#;
        assert_eq!(
            events(sendgrid),
            ("sendgrid", vec![("d@example.com".into(), Some(BounceKind::Policy)), ("e@example.com".into(), None)])
        );
    }
}
