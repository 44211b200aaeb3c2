//! Just enough PromQL reading to say which metrics and labels an expression needs, and of the
//! Prometheus text format to say which a scrape shows.

use std::collections::{BTreeMap, BTreeSet};

/// Metric names and, for each, the label names a scrape showed.
pub type Exposed = BTreeMap<String, BTreeSet<String>>;

/// Adds what a `/metrics` text shows to `exposed`.
pub fn expose(text: &str, exposed: &mut Exposed) {
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => continue,
        };
        let labels = exposed.entry(name.to_owned()).or_default();
        if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.split_once('}')).map(|(inner, _)| inner) {
            for token in tokens(&format!("{{{inner}}}")) {
                if let Token::Ident(label) = token {
                    labels.insert(label);
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str,
    Number,
    Punct(char),
}

fn tokens(expr: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Str);
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // Numbers and durations (5m, 1h30m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Number);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '$' {
            // A Grafana variable: `$service`, `$__rate_interval`, `${x}`; never a name.
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_{}".contains(chars[i])) {
                i += 1;
            }
            out.push(Token::Number);
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

const AGGREGATIONS: [&str; 12] =
    ["sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group"];
const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];

/// What an expression reads: metric names with the labels it matches on them, and the labels
/// it groups or joins by (which some metric of the expression must have).
#[derive(Debug, Default, PartialEq)]
pub struct Uses {
    pub metrics: BTreeMap<String, BTreeSet<String>>,
    pub grouping: BTreeSet<String>,
}

pub fn uses(expr: &str) -> Uses {
    let tokens = tokens(expr);
    let mut uses = Uses::default();
    let mut i = 0;
    let next_is = |i: usize, c: char| tokens.get(i + 1) == Some(&Token::Punct(c));
    while i < tokens.len() {
        let Token::Ident(word) = &tokens[i] else {
            i += 1;
            continue;
        };
        let lower = word.to_ascii_lowercase();
        if GROUPING.contains(&lower.as_str()) && next_is(i, '(') {
            i += 2;
            while i < tokens.len() && tokens[i] != Token::Punct(')') {
                if let Token::Ident(label) = &tokens[i] {
                    uses.grouping.insert(label.clone());
                }
                i += 1;
            }
        } else if word == "label_values" && next_is(i, '(') {
            // Grafana: label_values(metric, label).
            if let (Some(Token::Ident(metric)), Some(Token::Ident(label))) = (tokens.get(i + 2), tokens.get(i + 4)) {
                uses.metrics.entry(metric.clone()).or_default().insert(label.clone());
            }
            i += 6;
        } else if next_is(i, '(')
            || AGGREGATIONS.contains(&lower.as_str())
            || GROUPING.contains(&lower.as_str())
            || KEYWORDS.contains(&lower.as_str())
        {
            i += 1;
        } else {
            let labels = uses.metrics.entry(word.clone()).or_default();
            i += 1;
            if next_is(i - 1, '{') {
                i += 1;
                while i < tokens.len() && tokens[i] != Token::Punct('}') {
                    if let Token::Ident(label) = &tokens[i] {
                        labels.insert(label.clone());
                    }
                    i += 1;
                }
            }
        }
    }
    uses
}

/// Labels Prometheus adds to every series it scrapes.
pub const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// What `expr` needs that `exposed` lacks, each said in words.
pub fn missing(expr: &str, exposed: &Exposed) -> Vec<String> {
    let uses = uses(expr);
    let mut problems = Vec::new();
    let mut labels_of_expr: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
    for (metric, labels) in &uses.metrics {
        // `up` is Prometheus's own, about the scrape.
        if metric == "up" {
            continue;
        }
        let Some(has) = exposed.get(metric) else {
            problems.push(format!("metric {metric} is not exposed"));
            continue;
        };
        labels_of_expr.extend(has.iter().map(String::as_str));
        for label in labels.iter().filter(|l| !TARGET_LABELS.contains(&l.as_str())) {
            if !has.contains(label) {
                problems.push(format!("metric {metric} has no label {label}"));
            }
        }
    }
    for label in &uses.grouping {
        if !labels_of_expr.contains(label.as_str()) {
            problems.push(format!("no metric of the expression has the label {label} it groups by"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metrics_matchers_and_grouping() {
        let u = uses(
            r#"histogram_quantile(0.99, sum by (service, le) (rate(http_server_request_duration_seconds_bucket{service=~"$service",route!~"/health/.*"}[$__rate_interval]))) > 2 or on (job, instance) up == 0"#,
        );
        assert_eq!(
            u.metrics.keys().collect::<Vec<_>>(),
            ["http_server_request_duration_seconds_bucket", "up"],
            "{u:?}"
        );
        assert_eq!(
            u.metrics["http_server_request_duration_seconds_bucket"].iter().collect::<Vec<_>>(),
            ["route", "service"]
        );
        assert_eq!(u.grouping.iter().collect::<Vec<_>>(), ["instance", "job", "le", "service"]);
        let u = uses("label_values(events_group_lag, group)");
        assert_eq!(u.metrics["events_group_lag"].iter().collect::<Vec<_>>(), ["group"]);
    }

    #[test]
    fn finds_what_a_scrape_lacks() {
        let mut exposed = Exposed::new();
        expose(
            "# HELP a_total x\n# TYPE a_total counter\na_total{service=\"h\",route=\"/{id}\"} 3\nb 1\n",
            &mut exposed,
        );
        assert!(missing(r#"sum by (service) (rate(a_total{route="/x"}[5m])) / b"#, &exposed).is_empty());
        assert_eq!(
            missing(r#"sum by (tenant) (a_total{status="5xx"}) + c"#, &exposed),
            [
                "metric a_total has no label status",
                "metric c is not exposed",
                "no metric of the expression has the label tenant it groups by"
            ]
        );
    }
}
