//! A list's growth as an inline SVG bar chart, drawn on the server: new
//! confirmations per day above the line, unsubscribes below, on one scale.
//! No script and no chart library; the page also gives the numbers as a
//! table, and the chart's title and description say what it shows. The
//! chart stretches to the page's width, so its date labels are the page's
//! text, not the SVG's (stretched text would be distorted).

use std::fmt::Write as _;

use handlebars::html_escape;

use crate::store::overview::DayGrowth;

const BAR: u32 = 6;
const GAP: u32 = 1;
const UP: u32 = 80;
const DOWN: u32 = 40;

/// The chart of `days`, whose element ids start with `id`.
pub fn growth_svg(id: &str, list_name: &str, days: &[DayGrowth]) -> String {
    let top = days.iter().map(|d| d.confirmed.max(d.unsubscribed)).max().unwrap_or(0).max(1);
    let (joined, left): (i64, i64) = days.iter().fold((0, 0), |(j, l), d| (j + d.confirmed, l + d.unsubscribed));
    let width = u32::try_from(days.len()).unwrap_or(0).max(1) * (BAR + GAP);
    let height = UP + DOWN;
    let scale = |n: i64, room: u32| -> u32 {
        let h = (n as f64 / top as f64 * f64::from(room)).round() as u32;
        if n > 0 { h.max(1) } else { 0 }
    };
    let name = html_escape(list_name);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" aria-labelledby="{id}-t {id}-d" viewBox="0 0 {width} {height}" preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{name}: growth over {n} days</title><desc id="{id}-d">{joined} new confirmations and {left} unsubscribes; the busiest day had {top}.</desc>"#,
        n = days.len(),
    );
    for (i, day) in days.iter().enumerate() {
        let x = u32::try_from(i).unwrap_or(0) * (BAR + GAP);
        let up = scale(day.confirmed, UP);
        let down = scale(day.unsubscribed, DOWN);
        if up > 0 {
            let _ = write!(svg, r##"<rect x="{x}" y="{}" width="{BAR}" height="{up}" fill="#1d4ed8"/>"##, UP - up);
        }
        if down > 0 {
            let _ = write!(svg, r##"<rect x="{x}" y="{UP}" width="{BAR}" height="{down}" fill="#b91c1c"/>"##);
        }
    }
    let _ = write!(svg, r##"<line x1="0" y1="{UP}" x2="{width}" y2="{UP}" stroke="#6b7280" stroke-width="1"/>"##);
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    #[test]
    fn bars_follow_the_numbers_and_text_is_escaped() {
        let day = |d, confirmed, unsubscribed| DayGrowth {
            day: NaiveDate::from_ymd_opt(2026, 11, d).unwrap(),
            confirmed,
            unsubscribed,
        };
        let svg = growth_svg("g1", "<Ortho & co>", &[day(1, 10, 0), day(2, 0, 5), day(3, 0, 0)]);
        assert!(svg.contains("&lt;Ortho &amp; co&gt;: growth over 3 days"), "{svg}");
        assert!(svg.contains("10 new confirmations and 5 unsubscribes"));
        assert!(svg.contains(r#"<rect x="0" y="0" width="6" height="80""#), "the busiest day is full height: {svg}");
        assert!(svg.contains(r#"<rect x="7" y="80" width="6" height="20""#), "5 of 10 is half of the lower room");
        assert_eq!(svg.matches("<rect").count(), 2, "an empty day draws nothing");
    }
}
