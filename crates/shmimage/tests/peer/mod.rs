//! A peer process for the two-process tests: the test binary re-executes
//! its own ignored `child_role` test with a role and arguments in the
//! environment, and talks to it through the lines it prints.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    /// Run this test binary's `child_role` as `role` with `args`
    /// (`SHMIMAGE_TEST_ROLE`, `SHMIMAGE_TEST_ARGS` one per line).
    pub fn spawn(role: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_role", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("SHMIMAGE_TEST_ROLE", role)
            .env("SHMIMAGE_TEST_ARGS", args.join("\n"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer { child, lines }
    }

    /// The next line starting with `prefix` (the test harness prints others).
    pub fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
        panic!("peer ended before printing {prefix}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (std's `kill`), then reap.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn wait_ok(mut self) {
        let st = self.child.wait().unwrap();
        assert!(st.success(), "peer failed: {st}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // A failing test must not leave its peers running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `key=` in a peer's report line.
pub fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}
