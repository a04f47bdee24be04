//! Which exposition format a scrape gets, chosen from its `Accept` header as the official
//! clients choose it (client_golang's `expfmt.Negotiate`): the acceptable media types in order
//! of preference (`q`), the first one served wins; OpenMetrics for
//! `application/openmetrics-text` (Prometheus asks for it first), the classic text format for
//! `text/plain` and for everything else, a missing or unreadable header included (curl,
//! Telegraf and most agents read the classic format).

/// Content type of the OpenMetrics text (1.0.0; also what a scraper asking for 0.0.1 gets,
/// as the two differ in nothing marginal writes).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of the classic text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// The classic Prometheus text format, 0.0.4.
    Text,
}

impl Format {
    /// The format for a request with this `Accept` header (`None`: no header).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut offers: Vec<(f32, Option<Format>)> = accept
            .unwrap_or_default()
            .split(',')
            .map(offer)
            .filter(|(q, _)| *q > 0.0)
            .collect();
        // Stable: among equal preferences the header's order decides.
        offers.sort_by(|a, b| b.0.total_cmp(&a.0));
        offers
            .into_iter()
            .find_map(|(_, format)| format)
            .unwrap_or(Format::Text)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// One `Accept` entry: its preference (1 unless `q=` says otherwise; an unreadable `q` is 0,
/// as if the entry were absent) and the format it asks for, if it names one marginal serves.
fn offer(entry: &str) -> (f32, Option<Format>) {
    let mut parts = entry.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
    let mut q = 1.0;
    let mut version = None;
    for param in parts {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "q" => q = value.parse::<f32>().unwrap_or(0.0),
            "version" => version = Some(value.to_string()),
            _ => {}
        }
    }
    let format = match (media_type.as_str(), version.as_deref()) {
        ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
            Some(Format::OpenMetrics)
        }
        ("text/plain", None | Some("0.0.4")) => Some(Format::Text),
        _ => None,
    };
    (q, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for() {
        use Format::{OpenMetrics, Text};
        for (accept, expected) in [
            // Prometheus 2.x and 3.x.
            (
                Some(
                    "application/openmetrics-text;version=1.0.0;q=0.5,\
                     application/openmetrics-text;version=0.0.1;q=0.4,\
                     text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                OpenMetrics,
            ),
            (
                Some(
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                     encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;\
                     escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;\
                     q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
                ),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text"), OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; Version=\"1.0.0\""),
                OpenMetrics,
            ),
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("text/plain;version=0.0.4"), Text),
            // Preference decides, then order.
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
                Text,
            ),
            (
                Some("application/openmetrics-text;q=0.1, text/plain;q=0.1"),
                OpenMetrics,
            ),
            // Refused outright, an OpenMetrics version marginal does not write, garbage.
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("application/openmetrics-text;version=2.0.0"), Text),
            (Some("application/openmetrics-text;q=high"), Text),
            (Some(";;,,="), Text),
        ] {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
    }
}
