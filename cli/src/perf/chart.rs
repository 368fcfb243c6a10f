//! The matrix as an SVG bar chart, written by hand: throughput and p95
//! latency side by side, one group of bars per scenario (a bar per
//! candidate) and a black tick at the baseline's value. Each scenario is
//! scaled on its own, because a gateway call and a run differ by orders of
//! magnitude; the labels carry the values.

use std::fmt::Write as _;

use super::matrix::{Change, Figures, Matrix};

const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];
const LABEL_WIDTH: f64 = 190.0;
const PANEL_WIDTH: f64 = 300.0;
const PANEL_GAP: f64 = 20.0;
/// Room right of the longest bar for its label.
const TEXT_ROOM: f64 = 110.0;
const BAR_HEIGHT: f64 = 12.0;
const GROUP_GAP: f64 = 10.0;
const TOP: f64 = 92.0;

struct Panel {
    title: &'static str,
    value: fn(&Figures) -> f64,
    change: fn(&Change) -> Option<f64>,
    unit: &'static str,
}

const PANELS: [Panel; 2] = [
    Panel {
        title: "throughput (per s), higher is better",
        value: |f| f.throughput_per_s,
        change: |c| c.throughput_pct,
        unit: "/s",
    },
    Panel {
        title: "p95 latency (ms), lower is better",
        value: |f| f.p95_ms,
        change: |c| c.p95_pct,
        unit: " ms",
    },
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Shortest readable form of a figure.
fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The chart of `matrix`, a standalone SVG document.
pub fn svg(matrix: &Matrix) -> String {
    let candidates = matrix.candidates.len().max(1) as f64;
    let group = candidates * BAR_HEIGHT + GROUP_GAP;
    let width = LABEL_WIDTH + 2.0 * PANEL_WIDTH + PANEL_GAP + 10.0;
    let height = TOP + group * matrix.rows.len() as f64 + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="10" y="20" font-size="14" font-weight="bold">Suite 7: scenarios × candidates</text>
<text x="10" y="36" fill="#555555">baseline: {} ({} mode, commit {})</text>
<text x="10" y="50" fill="#555555">Each scenario is scaled on its own; the black tick is the baseline's value, (%) the change from it.</text>"##,
        escape(&matrix.baseline.source.path),
        escape(&matrix.baseline.source.mode),
        escape(&matrix.baseline.source.commit),
    );
    let mut x = 10.0;
    for (index, candidate) in matrix.candidates.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="58" width="10" height="10" fill="{colour}"/><text x="{}" y="67">{}</text>"#,
            x + 14.0,
            escape(&candidate.name)
        );
        x += 24.0 + 7.0 * candidate.name.chars().count() as f64;
    }
    for (panel_index, panel) in PANELS.iter().enumerate() {
        let left = LABEL_WIDTH + panel_index as f64 * (PANEL_WIDTH + PANEL_GAP);
        let _ = writeln!(
            out,
            r#"<text x="{left}" y="{}" font-weight="bold">{}</text>"#,
            TOP - 8.0,
            panel.title
        );
        for (row_index, row) in matrix.rows.iter().enumerate() {
            let top = TOP + row_index as f64 * group;
            let values: Vec<Option<f64>> = row
                .cells
                .iter()
                .map(|cell| cell.figures.as_ref().map(panel.value))
                .collect();
            let changes: Vec<String> = row
                .cells
                .iter()
                .map(|cell| {
                    cell.change
                        .as_ref()
                        .and_then(panel.change)
                        .map_or_else(String::new, |pct| format!(" ({pct:+.0}%)"))
                })
                .collect();
            let base = row.baseline.as_ref().map(panel.value);
            let max = values
                .iter()
                .flatten()
                .chain(base.iter())
                .fold(0.0_f64, |max, value| max.max(*value));
            let scale = |value: f64| {
                if max > 0.0 {
                    value / max * (PANEL_WIDTH - TEXT_ROOM)
                } else {
                    0.0
                }
            };
            // Labels start right of both the bar and the tick, never under it.
            let tick = base.map(scale);
            for (index, value) in values.iter().enumerate() {
                let y = top + index as f64 * BAR_HEIGHT;
                let colour = PALETTE[index % PALETTE.len()];
                match value {
                    Some(value) => {
                        let length = scale(*value);
                        let _ = writeln!(
                            out,
                            r#"<rect x="{left}" y="{y}" width="{length:.1}" height="{}" fill="{colour}"/><text x="{:.1}" y="{:.1}">{}{}{}</text>"#,
                            BAR_HEIGHT - 2.0,
                            left + length.max(tick.unwrap_or(0.0)) + 4.0,
                            y + BAR_HEIGHT - 3.0,
                            number(*value),
                            panel.unit,
                            changes[index]
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            r##"<text x="{}" y="{:.1}" fill="#999999">–</text>"##,
                            left + 2.0,
                            y + BAR_HEIGHT - 3.0
                        );
                    }
                }
            }
            if let Some(tick) = tick {
                let tick = left + tick;
                let _ = writeln!(
                    out,
                    r##"<line x1="{tick:.1}" x2="{tick:.1}" y1="{:.1}" y2="{:.1}" stroke="#000000" stroke-width="2"/>"##,
                    top - 2.0,
                    top + candidates * BAR_HEIGHT
                );
            }
            if panel_index == 0 {
                let _ = writeln!(
                    out,
                    r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                    LABEL_WIDTH - 10.0,
                    top + candidates * BAR_HEIGHT / 2.0 + 3.0,
                    escape(&row.scenario)
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::matrix::tests::example;
    use super::*;

    #[test]
    fn every_figure_is_a_bar_and_every_baseline_a_tick() {
        let chart = svg(&example());
        assert!(chart.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(chart.ends_with("</svg>\n"));
        // 3 scenarios × 2 candidates, 4 of the 6 cells present, 2 panels;
        // plus the background and the 2 legend squares.
        assert_eq!(chart.matches("<rect").count(), 4 * 2 + 1 + 2);
        // Two scenarios of the baseline, in 2 panels.
        assert_eq!(chart.matches("<line").count(), 2 * 2);
        assert!(chart.contains(">fault_opa_unresponsive</text>"));
        assert!(chart.contains(">50.0/s (-50%)</text>"), "{chart}");
        // No baseline for run_rlm: the value alone.
        assert!(chart.contains(">10.0/s</text>"), "{chart}");
        // run_baseline: the baseline candidate is the row's longest bar (100/s).
        assert!(
            chart.contains(
                r##"width="190.0" height="10" fill="#4e79a7"/><text x="384.0" y="101.0">100/s (+0%)</text>"##
            ),
            "{chart}"
        );
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
