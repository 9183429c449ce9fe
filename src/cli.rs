//! Helpers the binaries share: argument parsers and logging setup. Nothing here runs a server
//! or a client.

use std::time::Duration;

/// Parses the command line. Usage errors exit with status 2 (clap 2 would use 1), `--help` and
/// `--version` print to stdout and exit 0.
pub fn parse_args<T: structopt::StructOpt>() -> T {
    match T::from_args_safe() {
        Ok(args) => args,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", e.message);
            std::process::exit(2);
        }
        Err(e) => {
            println!("{}", e.message);
            std::process::exit(0);
        }
    }
}

/// Parses a duration given in (possibly fractional) seconds: `10`, `0.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is not a valid duration"))
}

/// Diagnostics are off unless asked for: femme writes to stdout, which carries the transcript.
/// `-v` warnings, `-vv` info, `-vvv` debug.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => return,
        1 => log::LevelFilter::Warn,
        2 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    femme::with_level(level);
}

/// Sets the number of async-std executor threads; must run before the runtime's first use.
/// Without it async-std uses one per core.
pub fn set_executor_threads(threads: Option<usize>) {
    if let Some(n) = threads.filter(|&n| n > 0) {
        // Read once by async-std when its runtime starts; nothing else is running yet.
        std::env::set_var("ASYNC_STD_THREAD_COUNT", n.to_string());
    }
}

/// Raises this process's soft limit on open files to its hard limit, and the hard limit too where
/// the process may (root), up to `want`. Returns the soft limit in force afterwards. Holding
/// thousands of connections needs more than the common default of 1024.
// `rlim_t` is not `u64` on every platform, so the casts are kept.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_files(want: u64) -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur as u64 >= want {
        return Ok(lim.rlim_cur as u64);
    }
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max.max(want as libc::rlim_t),
    };
    // SAFETY: as above; asking for more than allowed fails without side effects.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(want);
    }
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        return Ok(lim.rlim_max as u64);
    }
    Ok(lim.rlim_cur as u64)
}

/// Labels for `n` parties: `X`, `Y`, `Z`, then `A` to `W`; beyond 26, `P1` to `Pn`.
pub fn labels_for(n: usize) -> Vec<String> {
    if n <= 26 {
        "XYZABCDEFGHIJKLMNOPQRSTUVW"
            .chars()
            .take(n)
            .map(String::from)
            .collect()
    } else {
        (1..=n).map(|i| format!("P{i}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(labels_for(2), ["X", "Y"]);
        assert_eq!(labels_for(4), ["X", "Y", "Z", "A"]);
        assert_eq!(labels_for(27)[26], "P27");
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("ten").is_err());
    }
}
