//! One error type for the JSON API, mapped to HTTP answers. A 500 logs the
//! whole cause and shows the caller a plain sentence.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::store::StoreError;

/// The body of every refusal: what went wrong and what to do, and the
/// field at fault when one is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        Self { error: error.into(), field: None }
    }

    pub fn on(field: &str, error: impl Into<String>) -> Self {
        Self { error: error.into(), field: Some(field.to_owned()) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("the request body is larger than {0} KiB")]
    TooLarge(usize),
    #[error("the request body did not arrive within {0} seconds; send it in one go and try again")]
    BodyTimeout(f64),
    #[error("send application/json or application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error("missing or wrong admin token")]
    Unauthorized,
    #[error("missing or wrong webhook secret: send Authorization: Bearer SECRET (or Basic with SECRET as password)")]
    WebhookUnauthorized,
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the service is briefly unavailable, please try again in a moment")]
    Unavailable,
    #[error("something went wrong on our side; please try again later")]
    Internal,
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl ToString) -> Self {
        Self::Invalid { field, message: message.to_string() }
    }
}

impl From<crate::author::FieldError> for ApiError {
    fn from(e: crate::author::FieldError) -> Self {
        Self::Invalid { field: e.field, message: e.message }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Self::Unavailable
        } else {
            tracing::error!(error = ?e, "database error");
            Self::Internal
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unauthorized | Self::WebhookUnauthorized => StatusCode::UNAUTHORIZED,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut answer = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized | Self::WebhookUnauthorized => {
                answer.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Self::Unavailable => {
                answer.insert_header(("Retry-After", "5"));
            }
            // The rest of a late body may still come: the connection cannot
            // carry another request.
            Self::BodyTimeout(_) => {
                answer.force_close();
            }
            _ => {}
        }
        let body = match self {
            Self::Invalid { field, message } => ErrorBody::on(field, message.as_str()),
            other => ErrorBody::new(other.to_string()),
        };
        answer.json(body)
    }
}
