//! Bar charts drawn on the server: the geometry is worked out here and
//! `admin/bar_chart.html` turns it into SVG, so the dashboard needs no
//! script and no chart library to show a trend.

use serde::Serialize;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 220.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const MAX_BAR: f64 = 48.0;

/// One kind of bar, with the CSS class that colours it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
}

/// One position on the x axis: a label and one value per series.
#[derive(Debug, Clone)]
pub struct Column {
    pub label: String,
    /// What a pointer over the column (or a screen reader) is told.
    pub description: String,
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub class: &'static str,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Label {
    pub x: f64,
    pub y: f64,
    pub text: String,
}

/// Everything the template needs to draw the chart.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub title: String,
    pub series: Vec<Series>,
    pub bars: Vec<Rect>,
    pub labels: Vec<Label>,
    pub grid: Vec<Label>,
    pub axis_y: f64,
    pub plot_left: f64,
    pub plot_right: f64,
}

/// Lays out grouped bars. `max` fixes the top of the scale (100 for
/// percentages); otherwise it follows the largest value.
pub fn bar_chart(title: &str, series: &[Series], columns: &[Column], max: Option<f64>) -> Chart {
    let largest = columns
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .fold(0.0_f64, f64::max);
    let top = max.unwrap_or_else(|| nice_ceiling(largest));
    let plot_height = HEIGHT - TOP - BOTTOM;
    let axis_y = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT - RIGHT) / columns.len().max(1) as f64;
    // A lone report should not fill the chart with one slab.
    let bar_width = (slot * 0.7 / series.len().max(1) as f64).min(MAX_BAR);
    let group = bar_width * series.len() as f64;

    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let slot_left = LEFT + slot * i as f64;
        let group_left = slot_left + (slot - group) / 2.0;
        for (j, (value, s)) in column.values.iter().zip(series).enumerate() {
            let height = if top > 0.0 {
                (value / top).clamp(0.0, 1.0) * plot_height
            } else {
                0.0
            };
            bars.push(Rect {
                x: round(group_left + bar_width * j as f64),
                y: round(axis_y - height),
                width: round(bar_width - 1.0),
                height: round(height),
                class: s.class,
                title: format!("{}: {}", column.description, s.name),
            });
        }
        labels.push(Label {
            x: round(slot_left + slot / 2.0),
            y: axis_y + 16.0,
            text: column.label.clone(),
        });
    }
    let grid = (0..=4)
        .map(|k| {
            let value = top * k as f64 / 4.0;
            Label {
                x: LEFT - 6.0,
                y: round(axis_y - plot_height * k as f64 / 4.0),
                text: format_tick(value),
            }
        })
        .collect();
    Chart {
        width: WIDTH,
        height: HEIGHT,
        title: title.to_string(),
        series: series.to_vec(),
        bars,
        labels,
        grid,
        axis_y,
        plot_left: LEFT,
        plot_right: WIDTH - RIGHT,
    }
}

/// A round number at or above `value` for the top of the scale, so the
/// grid lines fall on readable values.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 4.0 {
        return 4.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 4.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn format_tick(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [Series; 1] = [Series {
        name: "helpful",
        class: "bar-yes",
    }];

    fn column(label: &str, value: f64) -> Column {
        Column {
            label: label.into(),
            description: label.into(),
            values: vec![value],
        }
    }

    #[test]
    fn bar_heights_follow_the_values() {
        let chart = bar_chart(
            "t",
            &ONE,
            &[column("a", 50.0), column("b", 100.0)],
            Some(100.0),
        );
        let (a, b) = (&chart.bars[0], &chart.bars[1]);
        assert_eq!(b.height, 2.0 * a.height);
        assert_eq!(a.y + a.height, chart.axis_y);
        assert!(a.x < b.x);
    }

    #[test]
    fn the_scale_rounds_up_to_a_readable_number() {
        assert_eq!(nice_ceiling(0.0), 4.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(400.0), 400.0);
    }

    #[test]
    fn an_empty_chart_still_lays_out() {
        let chart = bar_chart("t", &ONE, &[], None);
        assert!(chart.bars.is_empty());
        assert_eq!(chart.grid.len(), 5);
    }
}
