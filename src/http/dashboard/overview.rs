//! `GET /admin`: each list's readers by state, and its growth over the last
//! 30 and 90 days as charts and as tables.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{Days, Utc};
use serde_json::{Value, json};

use super::chart::growth_svg;
use super::session::SignedIn;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::overview::DayGrowth;

const WINDOWS: [u64; 2] = [30, 90];

pub async fn page(author: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let today = Utc::now().date_naive();
    let since = today.checked_sub_days(Days::new(WINDOWS[1] - 1)).unwrap_or(today);
    let lists = state.store.overview(since, today).await?;
    let lists: Vec<Value> = lists
        .iter()
        .map(|list| {
            let charts: Vec<Value> = WINDOWS
                .iter()
                .map(|&days| {
                    let skip = list.growth.len().saturating_sub(usize::try_from(days).unwrap_or(usize::MAX));
                    let window = &list.growth[skip..];
                    let id = format!("growth-{}-{days}", list.counts.slug);
                    window_view(&id, &list.counts.name, days, window)
                })
                .collect();
            json!({
                "slug": list.counts.slug,
                "name": list.counts.name,
                "confirmed": list.counts.confirmed,
                "pending": list.counts.pending,
                "unsubscribed": list.counts.unsubscribed,
                "suppressed": list.suppressed,
                "charts": charts,
            })
        })
        .collect();
    let data = json!({ "title": "Overview", "lists": lists });
    Ok(author.page(&state, StatusCode::OK, "dash_overview", "overview", &data))
}

fn window_view(id: &str, name: &str, days: u64, window: &[DayGrowth]) -> Value {
    let rows: Vec<Value> = window
        .iter()
        .rev()
        .map(|d| json!({ "day": d.day.format("%-d %B %Y").to_string(), "confirmed": d.confirmed, "unsubscribed": d.unsubscribed }))
        .collect();
    json!({
        "days": days,
        "svg": growth_svg(id, name, window),
        "joined": window.iter().map(|d| d.confirmed).sum::<i64>(),
        "left": window.iter().map(|d| d.unsubscribed).sum::<i64>(),
        "rows": rows,
        "from": window.first().map(|d| d.day.format("%-d %b").to_string()),
        "to": window.last().map(|d| d.day.format("%-d %b").to_string()),
    })
}
