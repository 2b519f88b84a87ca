//! Between a stream's capture times and a pipeline's running time.
//!
//! Both directions go through "how long ago": the age of a frame is the same
//! in every clock domain, so no domain needs converting into another.

use gst::prelude::*;
use std::time::Duration;

/// The element's running time now, when it has a clock (PAUSED/PLAYING).
pub(crate) fn running_time_now(element: &impl IsA<gst::Element>) -> Option<gst::ClockTime> {
    let clock = element.clock()?;
    let base = element.base_time()?;
    clock.time()?.checked_sub(base)
}

/// The running time of something that happened `age` ago.
pub(crate) fn running_time_of_age(element: &impl IsA<gst::Element>, age: Duration) -> Option<gst::ClockTime> {
    let now = running_time_now(element)?;
    Some(now.saturating_sub(gst::ClockTime::from_nseconds(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX))))
}

/// How long ago running time `rt` was (zero for a time in the future).
pub(crate) fn age_of_running_time(element: &impl IsA<gst::Element>, rt: gst::ClockTime) -> Option<Duration> {
    let now = running_time_now(element)?;
    Some(Duration::from_nanos(now.saturating_sub(rt).nseconds()))
}
