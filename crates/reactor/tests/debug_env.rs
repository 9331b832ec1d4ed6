//! `EVLOOP_DEBUG` turns debug mode on for new loops (asyncio's `PYTHONASYNCIODEBUG`); an
//! explicit `Builder::debug` wins. Each case runs in a child process with its own environment.

use std::process::Command;

use evloop_reactor::EventLoop;

const EXPECT_ENV: &str = "EVLOOP_DEBUG_TEST_EXPECT";

#[test]
fn evloop_debug_in_the_environment_sets_debug_mode() {
    if let Ok(expect) = std::env::var(EXPECT_ENV) {
        assert_eq!(EventLoop::new().unwrap().get_debug().to_string(), expect);
        assert!(
            !EventLoop::builder()
                .debug(false)
                .build()
                .unwrap()
                .get_debug()
        );
        assert!(
            EventLoop::builder()
                .debug(true)
                .build()
                .unwrap()
                .get_debug()
        );
        return;
    }
    for (value, expect) in [("1", true), ("yes", true), ("0", false), ("", false)] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "evloop_debug_in_the_environment_sets_debug_mode",
                "--exact",
                "--test-threads=1",
            ])
            .env("EVLOOP_DEBUG", value)
            .env(EXPECT_ENV, expect.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "EVLOOP_DEBUG={value:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
