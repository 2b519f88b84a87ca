//! `shmimage demo` (placeholder; being written).
use clap::Args;

#[derive(Debug, Args)]
pub struct DemoArgs {}
#[derive(Debug, Args)]
pub struct RoleArgs {}

pub fn run(_: DemoArgs) -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
pub fn server(_: RoleArgs) -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
pub fn client(_: RoleArgs) -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
