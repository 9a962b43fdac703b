//! The fan-out chart, written by hand as SVG: delivered messages/s (left) and
//! p99 latency (right) against the number of subscribers (log scale), one
//! line per server.

use std::fmt::Write;

/// Width and height of the whole picture.
const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 360.0;
/// One panel's plot area.
const PLOT_WIDTH: f64 = 330.0;
const PLOT_HEIGHT: f64 = 220.0;
const PLOT_TOP: f64 = 50.0;
/// Left edge of each panel's plot area.
const PANELS: [f64; 2] = [80.0, 530.0];
/// Colours given to the series in turn.
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// What a panel plots of a point.
type Measure = fn(&Point) -> f64;

/// One measured point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Subscribers.
    pub subscribers: f64,
    /// Messages delivered per second.
    pub throughput: f64,
    /// p99 latency, milliseconds.
    pub p99_ms: f64,
}

/// One server's points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, any order.
    pub points: Vec<Point>,
}

/// The SVG document.
pub fn fanout_svg(title: &str, series: &[Series]) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    let points: Vec<Point> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        svg.push_str("</svg>\n");
        return svg;
    }
    let x_range = log_range(points.iter().map(|p| p.subscribers));
    let panels: [(&str, Measure); 2] = [
        ("delivered messages/s", |p| p.throughput),
        ("p99 latency (ms)", |p| p.p99_ms),
    ];
    for ((label, value), left) in panels.into_iter().zip(PANELS) {
        let y_max = nice_max(points.iter().map(value).fold(0.0, f64::max));
        axes(&mut svg, left, label, x_range, y_max);
        for (index, one) in series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let mut sorted = one.points.clone();
            sorted.sort_by(|a, b| a.subscribers.total_cmp(&b.subscribers));
            let coordinates: Vec<(f64, f64)> = sorted
                .iter()
                .map(|p| {
                    (
                        left + scale_log(p.subscribers, x_range) * PLOT_WIDTH,
                        PLOT_TOP + PLOT_HEIGHT - value(p) / y_max * PLOT_HEIGHT,
                    )
                })
                .collect();
            if coordinates.is_empty() {
                continue;
            }
            let path: Vec<String> = coordinates
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for (x, y) in coordinates {
                let _ = writeln!(svg, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#);
            }
        }
    }
    // Legend.
    for (index, one) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let x = PANELS[0] + index as f64 * 200.0;
        let y = HEIGHT - 18.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0,
            escape(&one.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// One panel's frame, ticks and labels.
fn axes(svg: &mut String, left: f64, label: &str, x_range: (f64, f64), y_max: f64) {
    let bottom = PLOT_TOP + PLOT_HEIGHT;
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{PLOT_TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        left + PLOT_WIDTH / 2.0,
        PLOT_TOP - 8.0,
        escape(label)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">subscribers</text>"#,
        left + PLOT_WIDTH / 2.0,
        bottom + 34.0
    );
    let (low, high) = x_range;
    let mut decade = low.floor() as i32;
    while f64::from(decade) <= high + 1e-9 {
        let value = 10f64.powi(decade);
        if f64::from(decade) >= low - 1e-9 {
            let x = left + scale_log(value, x_range) * PLOT_WIDTH;
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#444"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                bottom + 5.0,
                bottom + 18.0,
                short(value)
            );
        }
        decade += 1;
    }
    for step in 0..=4 {
        let value = y_max * f64::from(step) / 4.0;
        let y = bottom - PLOT_HEIGHT * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + PLOT_WIDTH,
            left - 6.0,
            y + 4.0,
            short(value)
        );
    }
}

/// The log10 range of the values, widened when they are all equal.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| *v > 0.0)
        .map(f64::log10)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    if high - low < 1e-9 {
        (low - 0.5, high + 0.5)
    } else {
        (low, high)
    }
}

/// Where `value` falls in `range` (log10), from 0 to 1.
fn scale_log(value: f64, (low, high): (f64, f64)) -> f64 {
    ((value.max(f64::MIN_POSITIVE).log10() - low) / (high - low)).clamp(0.0, 1.0)
}

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of ten).
pub fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= max)
        .unwrap_or(10.0 * magnitude)
}

/// `1500` -> `1.5k`, `2000000` -> `2M`.
pub fn short(value: f64) -> String {
    let (scaled, suffix) = if value >= 1e6 {
        (value / 1e6, "M")
    } else if value >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: &[(f64, f64, f64)]) -> Series {
        Series {
            name: name.into(),
            points: points
                .iter()
                .map(|&(subscribers, throughput, p99_ms)| Point {
                    subscribers,
                    throughput,
                    p99_ms,
                })
                .collect(),
        }
    }

    #[test]
    fn two_series_two_panels() {
        let svg = fanout_svg(
            "fan-out <ws>",
            &[
                series(
                    "protoplex",
                    &[(1000.0, 8e5, 20.0), (1.0, 5e4, 1.0), (100.0, 6e5, 5.0)],
                ),
                series("ws-broadcast", &[(1.0, 6e4, 1.0), (1000.0, 9e5, 18.0)]),
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 10);
        assert!(svg.contains("fan-out &lt;ws&gt;"));
        assert!(svg.contains(">protoplex</text>") && svg.contains(">ws-broadcast</text>"));
        // Decade ticks 1, 10, 100, 1k on both panels.
        assert_eq!(svg.matches(">1k</text>").count(), 2, "{svg}");
    }

    #[test]
    fn points_are_placed_on_the_scales() {
        let svg = fanout_svg("t", &[series("a", &[(1.0, 0.0, 0.0), (100.0, 100.0, 10.0)])]);
        // Left panel: x from 80 to 410, y from 270 (0) to 50 (max 100).
        assert!(svg.contains(r#"points="80.0,270.0 410.0,50.0""#), "{svg}");
    }

    #[test]
    fn no_data_is_still_a_picture() {
        let svg = fanout_svg("t", &[]);
        assert!(svg.contains("no data") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn axis_helpers() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(730.0), 1000.0);
        assert_eq!(nice_max(1500.0), 2000.0);
        assert_eq!(nice_max(2000.0), 2000.0);
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2_000_000.0), "2M");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(1_250_000.0), "1.25M");
        assert_eq!(short(0.0), "0");
        assert_eq!(
            log_range([5.0, 5.0].into_iter()),
            (5f64.log10() - 0.5, 5f64.log10() + 0.5)
        );
    }
}
