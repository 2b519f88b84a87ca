//! bench.png: frames/s per transport for each size (one panel a size), the
//! native stream against iceoryx2 with N readers (two panels: each reader's
//! rate, the writer's cost per frame), and wake-up latency percentiles on a
//! log axis (the native rows with N readers among them), drawn from a run's
//! results (the same `Results` that bench.json holds, so `--replot` draws
//! the same).

use std::error::Error;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::{LatencyRow, Native, Results};

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

const WIDTH: u32 = 1400;
const FONT: &str = "sans-serif";
/// Tick labels, bar names and bar values.
const LABEL_PX: u32 = 15;
const TITLE_PX: u32 = 21;
/// Room under the plot for the tick labels and, below them, the axis title.
const X_LABEL_AREA: u32 = 52;
const BAR_ROW: u32 = 27;
const LAT_BAR: u32 = 15;
/// Between a bar's name and the axis (without tick marks plotters puts none).
const GAP: &str = "  ";
const TEXT: RGBColor = RGBColor(40, 40, 40);
const MUTED: RGBColor = RGBColor(100, 100, 100);

/// plotters' ab_glyph text needs a registered font; ship none, borrow the
/// system's (Debian: fonts-dejavu-core).
fn register_font() -> Result<(), Box<dyn Error>> {
    let bytes = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no TrueType font found (apt-get install fonts-dejavu-core)")?;
    // The registry keeps a 'static reference; one leaked font per run.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes).map_err(|_| "the font file is not usable")?;
    Ok(())
}

/// What a bar's colour says: the transport it measures, with every variant
/// of shmimage in one colour and the no-transport limits in grey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Limit,
    Shmimage,
    Unix,
    Pipe,
    Tcp,
    Gst,
    Iceoryx2,
    Other,
}

impl Kind {
    const ALL: [Kind; 8] =
        [Kind::Limit, Kind::Shmimage, Kind::Unix, Kind::Pipe, Kind::Tcp, Kind::Gst, Kind::Iceoryx2, Kind::Other];

    fn of(transport: &str) -> Kind {
        let t = transport.to_ascii_lowercase();
        // "pipeline copy" is a limit, "pipe (1 MiB buffer)" a transport: test the longer name first.
        if t.starts_with("memcpy")
            || t.starts_with("read only")
            || t.starts_with("plain read")
            || t.starts_with("pipeline")
        {
            Kind::Limit
        } else if t.starts_with("shmimage") {
            Kind::Shmimage
        } else if t.starts_with("unix socket") {
            Kind::Unix
        } else if t.starts_with("pipe") {
            Kind::Pipe
        } else if t.starts_with("tcp") {
            Kind::Tcp
        } else if t.starts_with("gstreamer") {
            Kind::Gst
        } else if t.starts_with("iceoryx2") {
            Kind::Iceoryx2
        } else {
            Kind::Other
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Kind::Limit => RGBColor(150, 150, 150),
            Kind::Shmimage => RGBColor(31, 119, 180),
            Kind::Unix => RGBColor(255, 127, 14),
            Kind::Pipe => RGBColor(140, 86, 75),
            Kind::Tcp => RGBColor(227, 119, 194),
            Kind::Gst => RGBColor(188, 189, 34),
            Kind::Iceoryx2 => RGBColor(23, 190, 207),
            Kind::Other => RGBColor(60, 60, 60),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Limit => "limits, no transport (memcpy, read, pipeline copy)",
            Kind::Shmimage => "shmimage",
            Kind::Unix => "Unix socket",
            Kind::Pipe => "pipe",
            Kind::Tcp => "TCP loopback",
            Kind::Gst => "GStreamer shmsink/shmsrc",
            Kind::Iceoryx2 => "iceoryx2",
            Kind::Other => "other",
        }
    }
}

const PERCENTILES: [(&str, RGBColor); 3] =
    [("p50 (median)", RGBColor(44, 160, 44)), ("p99", RGBColor(214, 39, 40)), ("p99.9", RGBColor(148, 103, 189))];

fn percentiles(x: &LatencyRow) -> [f64; 3] {
    [x.p50_us, x.p99_us, x.p999_us]
}

/// An integer with thousands separators: 17070 -> "17,070".
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v.round() < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Tick label on an axis: integers, except below 10 where steps can be fractions.
fn tick(v: f64) -> String {
    if v.abs() < 10.0 && v.fract().abs() > 1e-9 {
        format!("{v:.1}")
    } else {
        thousands(v)
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn style(px: u32, color: RGBColor) -> TextStyle<'static> {
    let mut s = TextStyle::from((FONT, px).into_font());
    s.color = color.to_backend_color();
    s
}

/// Colour swatches with their names, left to right, centred on `y`.
fn legend(area: &Area, x0: i32, y: i32, entries: &[(&str, RGBColor)]) -> Result<(), Box<dyn Error>> {
    let font = style(LABEL_PX, TEXT).pos(Pos::new(HPos::Left, VPos::Center));
    let mut x = x0;
    for (name, color) in entries {
        area.draw(&Rectangle::new([(x, y - 7), (x + 14, y + 7)], color.filled()))?;
        area.draw_text(name, &font, (x + 20, y))?;
        let (w, _) = area.estimate_text_size(name, &font)?;
        x += 20 + w as i32 + 28;
    }
    Ok(())
}

/// A panel's title, left-aligned over the plot; returns the area below it.
fn titled<'a>(area: &Area<'a>, title: &str, x0: i32) -> Result<Area<'a>, Box<dyn Error>> {
    let (head, rest) = area.split_vertically(TITLE_PX + 16);
    head.draw_text(title, &style(TITLE_PX, TEXT), (x0, 10))?;
    Ok(rest)
}

fn value_style() -> TextStyle<'static> {
    style(LABEL_PX - 1, TEXT).pos(Pos::new(HPos::Left, VPos::Center))
}

/// Horizontal bars, one per transport, first at the top.
fn throughput(area: &Area, label_w: u32, items: &[(String, f64)]) -> Result<(), Box<dyn Error>> {
    bars(area, label_w, items, "throughput, frames per second (frames/s)", &|v| thousands(v))
}

/// Horizontal bars on a linear axis named `x_desc`, each labelled with
/// `value(v)`, first at the top.
fn bars(
    area: &Area,
    label_w: u32,
    items: &[(String, f64)],
    x_desc: &str,
    value: &dyn Fn(f64) -> String,
) -> Result<(), Box<dyn Error>> {
    // Segments count upwards; reversed, the first item reads at the top.
    let items: Vec<_> = items.iter().rev().cloned().collect();
    let n = items.len();
    // Room right of the longest bar for its value.
    let max = items.iter().map(|x| x.1).fold(1.0, f64::max) * 1.13;
    let mut chart = ChartBuilder::on(area)
        .margin_right(30)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(label_w)
        .build_cartesian_2d(0f64..max, (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        // Segment boundaries are no values: no ticks on the names' axis.
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .x_labels(10)
        .x_label_formatter(&|v| tick(*v))
        .x_desc(x_desc)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => items.get(*i).map(|x| format!("{}{GAP}", x.0)).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(style(LABEL_PX, TEXT))
        .axis_desc_style(style(LABEL_PX + 1, TEXT))
        .draw()?;
    chart.draw_series(items.iter().enumerate().map(|(i, (name, v))| {
        let mut r = Rectangle::new(
            [(0.0, SegmentValue::Exact(i)), (*v, SegmentValue::Exact(i + 1))],
            Kind::of(name).color().filled(),
        );
        r.set_margin(4, 4, 0, 0);
        r
    }))?;
    chart.draw_series(
        items
            .iter()
            .enumerate()
            .map(|(i, (_, v))| Text::new(format!(" {}", value(*v)), (*v, SegmentValue::CenterOf(i)), value_style())),
    )?;
    Ok(())
}

/// Three bars per method (p50, p99, p99.9) on a log axis, first method at the top.
fn latency(area: &Area, label_w: u32, rows: &[LatencyRow]) -> Result<(), Box<dyn Error>> {
    // Four segments a method: its three bars and a gap above them.
    let rows: Vec<&LatencyRow> = rows.iter().rev().collect();
    let n = rows.len() * 4;
    let name = |r: &LatencyRow| r.method.split(" (").next().unwrap_or(&r.method).to_owned();
    let max = rows.iter().flat_map(|r| percentiles(r)).fold(10.0, f64::max) * 2.5;
    let mut chart = ChartBuilder::on(area)
        .margin_right(30)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(label_w)
        .build_cartesian_2d((1f64..max).log_scale(), (0..n).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        // Segment boundaries are no values: no ticks on the names' axis.
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(205, 205, 205))
        .x_label_formatter(&|v| tick(*v))
        .x_desc("wake-up latency, microseconds (µs, log scale)")
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % 4 == 1 => rows.get(i / 4).map(|r| name(r) + GAP).unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(style(LABEL_PX, TEXT))
        .axis_desc_style(style(LABEL_PX + 1, TEXT))
        .draw()?;
    // Within a method: p50 on top, p99.9 at the bottom.
    let bars: Vec<(usize, f64, RGBColor)> = rows
        .iter()
        .enumerate()
        .flat_map(|(g, r)| {
            percentiles(r).into_iter().zip(PERCENTILES).enumerate().map(move |(k, (v, (_, c)))| (g * 4 + 2 - k, v, c))
        })
        .collect();
    chart.draw_series(bars.iter().map(|(seg, v, c)| {
        let mut r =
            Rectangle::new([(1.0, SegmentValue::Exact(*seg)), (v.max(1.0), SegmentValue::Exact(seg + 1))], c.filled());
        r.set_margin(1, 1, 0, 0);
        r
    }))?;
    chart.draw_series(bars.iter().map(|(seg, v, _)| {
        Text::new(
            format!(" {v:.1}"),
            (v.max(1.0), SegmentValue::CenterOf(*seg)),
            style(LABEL_PX - 2, TEXT).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    Ok(())
}

/// Named bars of one panel, first at the top.
type Bars = Vec<(String, f64)>;

/// The native panels' bars: each reader's rate (frames/s from the middle
/// reader's median), and the writer's cost of one frame (us).
fn native_bars(n: &Native) -> (Bars, Bars) {
    let (mut rate, mut cost) = (Vec::new(), Vec::new());
    let mut counts: Vec<u32> = n.fanout.iter().map(|x| x.readers).collect();
    counts.dedup();
    for k in counts {
        let rows: Vec<_> = n.fanout.iter().filter(|x| x.readers == k).collect();
        let who =
            |x: &crate::results::FanoutRow| if x.system.starts_with("iceoryx2") { "subscriber" } else { "reader" };
        let s = if k == 1 { "" } else { "s" };
        if let Some(native) = rows.iter().find(|x| x.system.starts_with("shmimage")) {
            rate.push((format!("plain read (private buffer), {k} reader{s}"), 1e6 / native.plain_us_mid()));
        }
        for x in &rows {
            rate.push((format!("{}, {k} {}{s}", x.system, who(x)), 1e6 / x.read_us_mid()));
        }
        for x in &rows {
            let what = if x.system.starts_with("iceoryx2") { "loan+send+notify" } else { "loan+commit" };
            cost.push((format!("{} {what}, {k} {}{s}", x.system, who(x)), x.publish_us));
        }
    }
    (rate, cost)
}

fn panel_h(bars: usize) -> u32 {
    if bars == 0 {
        0
    } else {
        TITLE_PX + 16 + X_LABEL_AREA + 12 + BAR_ROW * bars as u32
    }
}

pub fn draw(path: &Path, r: &Results) -> Result<(), Box<dyn Error>> {
    register_font()?;
    let sizes = r.sizes();
    let rows_of = |s: &str| r.throughput.iter().filter(|x| x.size == s).count() as u32;
    let title_h = TITLE_PX + 16;
    let header_h = 118;
    let heights: Vec<u32> = sizes.iter().map(|(s, _)| title_h + X_LABEL_AREA + 12 + BAR_ROW * rows_of(s)).collect();
    let (native_rate, native_cost) = native_bars(&r.native);
    let native_h = panel_h(native_rate.len()) + panel_h(native_cost.len());
    // The native wake-up rows join the latency panel, after the suite's own.
    let latency: Vec<LatencyRow> =
        r.latency.iter().cloned().chain(r.native.wake.iter().map(|w| w.as_latency())).collect();
    let lat_h =
        if latency.is_empty() { 0 } else { title_h + 30 + X_LABEL_AREA + 12 + LAT_BAR * 4 * latency.len() as u32 };
    let total = header_h + heights.iter().sum::<u32>() + native_h + lat_h;
    let root = BitMapBackend::new(path, (WIDTH, total)).into_drawing_area();
    root.fill(&WHITE)?;

    // One width for every panel's names, so that the plots line up.
    let names = r
        .throughput
        .iter()
        .map(|x| x.transport.clone())
        .chain(latency.iter().map(|x| x.method.clone()))
        .chain(native_rate.iter().chain(&native_cost).map(|x| x.0.clone()));
    let mut label_w = 0;
    for n in names {
        label_w = label_w.max(root.estimate_text_size(&n, &style(LABEL_PX, TEXT))?.0);
    }
    let label_w = label_w + 24;

    let (header, mut rest) = root.split_vertically(header_h);
    header.draw_text(
        "shmimage end-to-end benchmark: RGB frames between two processes",
        &style(TITLE_PX + 5, TEXT),
        (20, 12),
    )?;
    header.draw_text(
        &format!("{}; {} s per measurement; {}", r.date, r.seconds, r.machine),
        &style(LABEL_PX - 1, MUTED),
        (20, 50),
    )?;
    let kinds: Vec<(&str, RGBColor)> = Kind::ALL
        .iter()
        .filter(|k| r.throughput.iter().any(|x| Kind::of(&x.transport) == **k))
        .map(|k| (k.label(), k.color()))
        .collect();
    header.draw_text("colour:", &style(LABEL_PX, TEXT).pos(Pos::new(HPos::Left, VPos::Center)), (20, 92))?;
    legend(&header, 90, 92, &kinds)?;

    for ((size, bytes), h) in sizes.iter().zip(&heights) {
        let (panel, below) = rest.split_vertically(*h);
        let (w, hgt) = r.throughput.iter().find(|x| x.size == *size).map(|x| (x.width, x.height)).unwrap_or_default();
        let body = titled(
            &panel,
            &format!(
                "{size} ({w} x {hgt} RGB, {:.1} MB a frame): frames per second, longer is better",
                *bytes as f64 / 1e6
            ),
            20,
        )?;
        let items: Vec<(String, f64)> =
            r.throughput.iter().filter(|x| x.size == *size).map(|x| (x.transport.clone(), x.frames_per_s)).collect();
        throughput(&body, label_w, &items)?;
        rest = below;
    }
    if !native_rate.is_empty() {
        let (panel, below) = rest.split_vertically(panel_h(native_rate.len()));
        let body = titled(
            &panel,
            "Native stream vs iceoryx2, 1080p, N reader processes: each reader's rate (take + read + release), longer is better",
            20,
        )?;
        let desc = "frames per second of one reader, from its median time per frame (the middle reader)";
        bars(&body, label_w, &native_rate, desc, &|v| thousands(v))?;
        rest = below;
    }
    if !native_cost.is_empty() {
        let (panel, below) = rest.split_vertically(panel_h(native_cost.len()));
        let body = titled(
            &panel,
            "The writer's cost to publish one 1080p frame (drawing not counted), shorter is better",
            20,
        )?;
        bars(&body, label_w, &native_cost, "microseconds per frame (µs, median)", &|v| format!("{v:.2}"))?;
        rest = below;
    }
    if !latency.is_empty() {
        let body = titled(&rest, "Wake-up latency: publish to the consumer holding the frame, shorter is better", 20)?;
        let (key, plot) = body.split_vertically(30);
        legend(&key, label_w as i32, 12, &PERCENTILES)?;
        self::latency(&plot, label_w, &latency)?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_integers_with_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(5000.0), "5,000");
        assert_eq!(thousands(17070.2), "17,070");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-2500.0), "-2,500");
        assert_eq!(tick(5000.0), "5,000");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(1000.0), "1,000");
    }

    #[test]
    fn colours_follow_the_transport() {
        assert_eq!(Kind::of("pipeline copy (no shmimage)"), Kind::Limit);
        assert_eq!(Kind::of("pipe (1 MiB buffer)"), Kind::Pipe);
        assert_eq!(Kind::of("shmimage loan+commit"), Kind::Shmimage);
        assert_eq!(Kind::of("TCP 127.0.0.1"), Kind::Tcp);
        assert_eq!(Kind::of("iceoryx2 pub/sub + event"), Kind::Iceoryx2);
        assert_eq!(Kind::of("plain read (private buffer), 4 readers"), Kind::Limit);
        assert_eq!(Kind::of("shmimage native, 4 readers"), Kind::Shmimage);
        assert_eq!(Kind::of("something new"), Kind::Other);
    }
}
