//! bench.png: frames/s per transport for each size (one panel a size), and
//! latency percentiles on a log axis.

use std::error::Error;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::common::*;

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// plotters' ab_glyph text needs a registered font; ship none, borrow the
/// system's (Debian: fonts-dejavu-core).
fn register_font() -> Result<(), Box<dyn Error>> {
    let bytes = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no TrueType font found (apt-get install fonts-dejavu-core)")?;
    // The registry keeps a 'static reference; one leaked font per run.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| "the font file is not usable")?;
    Ok(())
}

fn color(transport: &str) -> RGBColor {
    if transport.starts_with("memcpy") || transport.starts_with("read only") || transport.starts_with("pipeline") {
        RGBColor(140, 140, 140)
    } else if transport.starts_with("shmimage") {
        RGBColor(31, 119, 180)
    } else {
        RGBColor(255, 127, 14)
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn bars(area: &Area, title: &str, items: &[(String, f64, RGBColor)], unit: &str) -> Result<(), Box<dyn Error>> {
    // Segments count upwards; reversed, the first item reads at the top.
    let items: Vec<_> = items.iter().rev().cloned().collect();
    let n = items.len();
    let max = items.iter().map(|x| x.1).fold(1.0, f64::max) * 1.18;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(290)
        .build_cartesian_2d(0f64..max, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => items.get(*i).map(|x| x.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(items.iter().enumerate().map(|(i, (_, v, c))| {
        let mut r = Rectangle::new([(0.0, SegmentValue::Exact(i)), (*v, SegmentValue::Exact(i + 1))], c.filled());
        r.set_margin(3, 3, 0, 0);
        r
    }))?;
    chart.draw_series(items.iter().enumerate().map(|(i, (_, v, _))| {
        Text::new(format!(" {v:.0}"), (*v, SegmentValue::CenterOf(i)), ("sans-serif", 13).into_font())
    }))?;
    Ok(())
}

fn log_bars(area: &Area, title: &str, items: &[(String, f64, RGBColor)]) -> Result<(), Box<dyn Error>> {
    let items: Vec<_> = items.iter().rev().cloned().collect();
    let n = items.len();
    let max = items.iter().map(|x| x.1).fold(10.0, f64::max) * 3.0;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(330)
        .build_cartesian_2d((1f64..max).log_scale(), (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("microseconds (log scale)")
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => items.get(*i).map(|x| x.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(items.iter().enumerate().map(|(i, (_, v, c))| {
        let mut r =
            Rectangle::new([(1.0, SegmentValue::Exact(i)), (v.max(1.0), SegmentValue::Exact(i + 1))], c.filled());
        r.set_margin(2, 2, 0, 0);
        r
    }))?;
    chart.draw_series(items.iter().enumerate().map(|(i, (_, v, _))| {
        Text::new(format!(" {v:.1}"), (v.max(1.0), SegmentValue::CenterOf(i)), ("sans-serif", 13).into_font())
    }))?;
    Ok(())
}

pub fn draw(path: &Path, t: &[Tput], l: &[Latency]) -> Result<(), Box<dyn Error>> {
    register_font()?;
    let mut sizes: Vec<Size> = Vec::new();
    for x in t {
        if !sizes.contains(&x.size) {
            sizes.push(x.size);
        }
    }
    let rows_of = |s: &Size| t.iter().filter(|x| x.size == *s).count();
    let heights: Vec<u32> = sizes.iter().map(|s| 70 + 30 * rows_of(s) as u32).collect();
    let lat_h = if l.is_empty() { 0 } else { 70 + 24 * 3 * l.len() as u32 };
    let total = heights.iter().sum::<u32>() + lat_h;
    let root = BitMapBackend::new(path, (1200, total.max(200))).into_drawing_area();
    root.fill(&WHITE)?;
    let mut rest = root.clone();
    for (s, h) in sizes.iter().zip(&heights) {
        let (panel, below) = rest.split_vertically(*h);
        let items: Vec<(String, f64, RGBColor)> =
            t.iter().filter(|x| x.size == *s).map(|x| (x.transport.clone(), x.fps(), color(&x.transport))).collect();
        bars(
            &panel,
            &format!("{} RGB ({:.1} MB/frame): frames/s, two processes", s.name, s.bytes() as f64 / 1e6),
            &items,
            "frames/s",
        )?;
        rest = below;
    }
    if !l.is_empty() {
        let shades = [RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189)];
        let mut items = Vec::new();
        for x in l {
            let short = x.method.split(" (").next().unwrap_or(&x.method);
            for (k, (q, name)) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")].iter().enumerate() {
                items.push((format!("{short} {name}"), x.p(*q) / 1e3, shades[k]));
            }
        }
        log_bars(&rest, "wake-up latency: publish -> consumer holds the frame", &items)?;
    }
    root.present()?;
    Ok(())
}
